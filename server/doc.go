// Package server serves a model of package llama over HTTP with the
// OpenAI API, as `llamago serve` does.
//
// # API
//
// POST /v1/chat/completions and POST /v1/completions take the request
// fields of OpenAI's API that clients use: model, messages or prompt (a
// string, strings, token ids or arrays of them), max_tokens (and
// max_completion_tokens), temperature, top_p, n, stop, seed,
// presence_penalty, frequency_penalty, logit_bias, logprobs and
// top_logprobs, response_format (json_object, or json_schema converted
// with llama.JSONSchemaGrammar), stream with stream_options.include_usage,
// and echo for text completions; and llama.cpp's extras top_k, min_p,
// repeat_penalty, repeat_last_n (-1: the slot's context, which bounds
// it), grammar (GBNF) and ignore_eos. Sampling
// fields left out keep llama.cpp's defaults, as llama-server does. A text
// completion without max_tokens generates 16 tokens (OpenAI's default); a
// chat completion goes on to the end of the reply, Config.MaxTokens or
// the slot's context. Responses carry usage (with the prompt tokens reused
// from the cache as prompt_tokens_details.cached_tokens, and with
// speculative decoding, Config.Draft or Config.Speculation, the drafted
// tokens the model accepted and rejected as completion_tokens_details'
// accepted_prediction_tokens and rejected_prediction_tokens) and a
// finish_reason of stop or length. Streams are server-sent events ending
// with "data: [DONE]".
//
// The pre-1.0 OpenAI libraries call POST /v1/engines/{engine}/completions
// with the model in the path; it answers as /v1/completions. A request
// may name the model by its ID or an alias (Config.Aliases, such as
// "davinci" for legacy code), or not at all; another name gets 404.
//
// POST /v1/embeddings returns L2-normalised embeddings, pooled as the
// model says, or by the mean for a generative model; GET /v1/models lists
// the model; GET /health and GET /metrics (Prometheus text) report on the
// server; POST /tokenize and POST /detokenize are llama-server's.
//
// Errors are answered in OpenAI's shape, {"error": {"message", "type",
// "param", "code"}}: 400 for malformed JSON, a field of the wrong type or
// out of range, or a prompt over the limit (code context_length_exceeded);
// 401 without the API key; 404 for an unknown model or route; 405; 413 for
// a body over the limit; 503 when the queue is full or the server is
// shutting down; 500 when decoding fails.
//
// # Engine
//
// Every choice of every request is a generation in the model's context of
// Config.Parallel sequences (slots), run by package llama's scheduler,
// which decodes them together, one batch per step: the next token of each
// generating sequence and chunks of new prompts (continuous batching). A
// slot's cache outlives its request: a later request goes to the free
// slot with the longest common prefix, so a conversation's next turn
// decodes only what is new. The choices of a request with n > 1 start
// once the first has read the prompt, from its cache where a copy pays. A
// client that disconnects frees its slot at the next step. The server
// adds what is its own: requests beyond the slots wait in a bounded queue,
// and are admitted whole, first come first served.
//
// # Security
//
// Serve binds where the caller's listener does (`llamago serve` uses
// 127.0.0.1 unless told otherwise). Config.APIKey requires a bearer token,
// compared in constant time; request bodies, prompts, max_tokens, and the
// time to read a request and to write each part of a response are bounded;
// CORS headers are sent only for Config.CORSOrigins.
package server
