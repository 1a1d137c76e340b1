// Package chat holds conversations with the models of package llama:
// chat templates, and sessions that stream replies while reusing the KV
// cache from turn to turn.
//
// # Templates
//
// A Template turns messages (system, user, assistant, tool) into the
// prompt text a model was trained on. FromModel uses the model's own
// tokenizer.chat_template, a Jinja template as published with the model on
// Hugging Face; Builtin uses one of llama.cpp's built-in templates by name
// (chatml, llama3, phi3, gemma, mistral-v7, ...), for models that ship
// none; Resolve picks between them as llama.cpp does (the model's own,
// else chatml).
//
// Jinja templates are rendered in Go the way transformers'
// apply_chat_template renders them: trim_blocks and lstrip_blocks,
// loop controls, the variables messages, tools, add_generation_prompt,
// bos_token and eos_token, the functions raise_exception (a *RaiseError)
// and strftime_now, and tojson as Python's json.dumps. The test suite
// compares the output for the templates of a dozen model families byte for
// byte with Jinja2 itself (testdata/hf_reference.py).
//
// # The Jinja engine
//
// The engine is github.com/ardanlabs/jinja (v1.8.0, the last release that
// builds with Go 1.26). It was chosen over github.com/nikolalohinski/gonja/v2,
// the other maintained candidate, because it is written for chat templates:
// it follows transformers' settings, has the Python string and dict methods
// templates call (strip, split, startswith, items, get, ...), namespace(),
// loop controls and the generation tag, keeps dict order, has no
// dependencies, and rendered every real template tried. gonja v2 failed to
// parse Gemma 3's template (an inline if in parentheses), formats tojson
// compactly where Python puts spaces, and brings logrus, pkg/errors and
// x/text with it.
//
// The engine has gaps this package covers: before compiling, a template is
// rewritten with Jinja2's exact lexer rules for whitespace (the engine's
// trimming removed text between expressions inside blocks), tojson is
// replaced by a json.dumps-compatible filter (the engine sorted keys with
// indent and escaped <, > and &), and raise_exception, strftime_now and
// range are replaced. Some differences remain, none used by the templates
// tested: 2 in [1, 2] is false for numbers, none prints as "" and floats
// print without ".0", '%' string formatting and 1e3 literals are
// unsupported.
//
// Templates come from model files and must be treated as untrusted code.
// Render recovers from engine panics, limits macro recursion (the engine
// would overflow the stack) and range() sizes, refuses templates larger
// than 256 KiB or nested deeper than 200 blocks, and gives up after a
// timeout (RenderOptions.Timeout, 10 s by default). The engine offers no
// cancellation and no memory limit: a timed-out render runs on in the
// background, and a template that repeats a string ('x' * n) can still
// exhaust memory.
//
// # Sessions
//
// A Session holds a conversation on a llama.Sequence: the system prompt,
// the history and the token stream the sequence's KV cache holds. The
// sessions on the sequences of one llama.Context reply at once, their
// tokens decoded together in shared batches. Send renders the
// whole conversation and tokenizes only the text after the longest prefix
// the stream already holds, so that llama's longest-common-prefix reuse
// decodes only the new message and the generation prompt; the reply's
// tokens join the stream as generated. Templates that render earlier
// replies differently (Qwen3 drops their thinking, Llama 3 trims them)
// make the reuse stop where that reply begins.
//
// Replies stream as Chunks, with a reasoning model's thinking (between
// <think> and </think>, or the template's own markers) marked apart from
// the answer, or hidden. When the conversation outgrows the context, Send
// fails with llama.ErrContextFull, or with ShiftContext drops the oldest
// turns. Save and Load keep a session in a file with its KV cache; the
// file records the model's fingerprint and another model refuses it.
//
// # Tools
//
// Templates that render tools (NativeTools) get tools, assistant tool
// calls and tool results as transformers passes them; the others get them
// in a generic format, as text (ToolFormatGeneric, GenericToolsPrompt).
// DetectToolFormat names the format the model writes calls in, from its
// template's markers: Llama 3.x, Hermes (Qwen 2.5 and 3), Mistral,
// Command-R, Command R7B, DeepSeek R1, Phi-4, or generic. ParseToolCalls
// and ToolParser parse replies in any of them, streamed in pieces too:
// text that could begin a call marker is held back until it is clear,
// and a call that does not parse stays text. ToolFormat.Grammar makes a
// grammar of the tools' parameters schemas in the format: the whole reply
// for a required or named call, or lazily from the call marker for auto,
// so that calls always parse and their arguments match their schemas.
//
// A Session given tools (WithTools, or Go functions with WithFunctions
// and NewFunction, whose parameters schema is their argument type's)
// streams a reply's text without its calls, which become the reply
// message's ToolCalls; WithToolChoice sets the grammar. Run sends a
// message, calls the functions the reply asks for, sends their results
// back (SendMessages) and goes on until the model answers in text.
package chat
