package server

// maxTopLogprobs is the most alternatives a request may ask for per token,
// as OpenAI's top_logprobs.
const maxTopLogprobs = 20
