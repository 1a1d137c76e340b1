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
// tools, tool_choice and parallel_tool_calls (see Tools below), and echo
// for text completions (with logprobs, the prompt's tokens come first
// with theirs, the first null, as OpenAI returns them; max_tokens 0 then
// scores the prompt alone); and llama.cpp's extras top_k, min_p,
// repeat_penalty, repeat_last_n (-1: the slot's context, which bounds
// it), grammar (GBNF) and ignore_eos. Sampling
// fields left out keep llama.cpp's defaults, as llama-server does. A text
// completion without max_tokens generates 16 tokens (OpenAI's default); a
// chat completion goes on to the end of the reply, Config.MaxTokens or
// the slot's context. A max_tokens above Config.MaxTokens is clamped to it
// and generation stops where the slot's context ends, with finish_reason
// length, as llama-server does. n may exceed Config.Parallel, up to
// MaxChoices: the choices beyond the slots wait in the queue for them.
// A chat whose last message is the assistant's (without tool calls) is
// continued: that text is a prefill, and the reply is what follows it.
// Responses carry usage (with the prompt tokens reused from the cache as
// prompt_tokens_details.cached_tokens), a finish_reason of stop, length
// or tool_calls, and a system_fingerprint (of the model and llama.cpp's
// build). Streams are server-sent events ending with "data: [DONE]".
// Every response has an X-Request-Id header: the client's, when it sends
// a usable one, else a new id.
//
// A chat message's content may be an array of text and image_url parts:
// with Config.Projector, each image (a data: URL, or an http(s) one where
// Config.FetchImage allows) stands where its part is, decoded with its
// declared size bounded by Config.MaxImagePixels; without a projector, or
// for a bad image, the request gets 400. Usage then counts the images'
// positions among the prompt tokens.
//
// With speculative decoding (Config.Draft or Config.Speculation), usage
// also counts the drafted tokens the model accepted and rejected, as
// completion_tokens_details' accepted_prediction_tokens and
// rejected_prediction_tokens.
//
// The pre-1.0 OpenAI libraries call POST /v1/engines/{engine}/completions
// with the model in the path; it answers as /v1/completions. As with
// llama-server, a request naming any model is served by the one model,
// and the response names that model (Config.ModelID); with
// Config.StrictModel only the ID and the aliases (Config.Aliases) are
// served and another name gets 404.
//
// # Tools
//
// A chat request may carry tools (at most chat.MaxTools functions, each
// with a name of at most 64 letters, digits, '_', '-' or '.', a
// description of at most 8 KiB and a parameters schema of at most
// 64 KiB, checked before the template or llama.cpp see them). When the
// chat template renders tools itself (chat.Template.NativeTools: Qwen
// 2.5 and 3, Hermes, Llama 3.1 to 3.3, Mistral's recent ones...), tools,
// assistant tool_calls and tool messages are passed to it as transformers
// passes them, and replies are parsed in its family's format
// (chat.DetectToolFormat); other templates get them in chat's generic
// format, as text (see chat.GenericToolsPrompt). The reply's calls come
// back as the message's tool_calls, each with an id, its arguments as a
// JSON string, and finish_reason tool_calls; streamed, each call is a
// delta with its index, id, type and function name (and empty
// arguments), then a delta with its arguments. Malformed calls stay text.
//
// tool_choice "required" or a named function constrain the whole reply
// with a grammar: calls of the tools (that one) whose arguments match
// their parameters schemas (converted with llama.JSONSchemaGrammar), one
// with parallel_tool_calls false, else at most chat.MaxParallelCalls.
// "auto" (the default) leaves the reply free until the model writes its
// format's call marker as a token (as the models of these families do:
// <tool_call>, [TOOL_CALLS], <|python_tag|>...) or, in the generic and
// Llama 3 formats, begins the reply with "{"; from there the same grammar
// holds (a lazy grammar, as llama.cpp's). A model whose vocabulary lacks
// the marker token gets its replies parsed but not constrained: markers
// are not matched as regular expressions over the reply, on which
// llama.cpp's std::regex recurses once per character. "none" shows the tools but neither constrains nor parses.
// Tools cannot be combined with grammar or response_format, except with
// "none".
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
// CORS headers are sent only for Config.CORSOrigins; a preflight allows
// the headers the page asks for (the official SDKs send x-stainless-*
// headers), when they are a well-formed list of names, and responses
// expose X-Request-Id. Prompt logprobs (echo) are computed in a context
// of their own, of one slot's size, made on first use.
package server
