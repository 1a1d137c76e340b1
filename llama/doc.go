// Package llama runs GGUF language models with llama.cpp, compiled into the
// program through cgo.
//
// The objects follow llama.cpp's own, with database/sql's split between a
// shared owner and the single-owner objects it hands out:
//
//   - Load opens a GGUF file as a *Model: weights, hyperparameters and
//     vocabulary. A Model is safe for concurrent use; tokenization is
//     available on it directly.
//   - Model.NewContext makes a *Context: the KV cache and compute buffers
//     for one or more sequences (WithSequences). A Context is safe for
//     concurrent use: the generations running in its sequences, from any
//     number of goroutines, are decoded together, a batch at a time
//     (continuous batching).
//   - Context.NewSequence hands out a *Sequence, held by one owner: a
//     sequence's KV cells, the tokens they hold (a prompt that extends
//     them decodes only what is new) and one generation at a time. Close
//     gives it back, its cells emptied. A desktop app or a service runs
//     one conversation per Sequence, all on one Context.
//   - Sequence.Generate streams tokens as an iter.Seq2[Token, error];
//     Sequence.Complete collects them. Context.Generate and
//     Context.Complete do the same in a free sequence of the context, the
//     one whose cache shares the longest prefix with the prompt, as
//     database/sql's DB.Query takes a free connection.
//   - Model.NewSampler makes a *Sampler, a chain of llama.cpp samplers;
//     Generate builds one from WithSampling's options unless given one
//     (WithSampler).
//   - Model.LoadAdapter loads a LoRA *Adapter, which contexts apply from
//     their creation (WithAdapter).
//   - Model.LoadProjector loads a vision *Projector (an mmproj file), with
//     llama.cpp's multimodal library (mtmd); WithImages gives a prompt
//     images (*Image: DecodeImage decodes PNG, JPEG, GIF and WebP in Go,
//     its declared size checked first). A sequence recognises the images
//     it holds by the hash of their pixels, as it does text.
//   - For full control, fill a *Batch and call Context.Decode, then read
//     Context.Logits or sample.
//   - Context.Perplexity measures a model's perplexity over a text with
//     llama-perplexity's method, streaming the running estimate per chunk;
//     WithScoredLogits hands out the logits it scores, which package bench
//     compares across quantizations (KL divergence).
//
// Each step of the batching decodes the next token of every generating
// sequence together with chunks of the prompts being read; a generation
// joins at the next step. A generation's own text stream holds back
// partial UTF-8 characters and possible stop strings (the earliest match
// wins) and ends at an end-of-generation token (see WithIgnoreEOS).
// Cancelling a generation's context.Context drops its sequence from the
// next batch and ends it with ctx.Err(); the decode in progress is aborted
// only if it serves no other generation. Greedy output is the same in a
// batch as alone, but where the two best tokens are nearly tied: llama.cpp
// computes one token and several with differently rounded kernels.
//
// Speculative decoding drafts a few tokens cheaply and has the model check
// them in one batch: with a small draft model of the same vocabulary, which
// the context runs next to the model (WithDraftModel), or from n-grams of
// the sequence's own text (prompt lookup, WithSpeculation). It runs inside
// the shared batches: a speculating sequence puts its last token and its
// drafts into the step's batch with the other sequences' tokens, its
// sampler picks a token at each drafted position in turn, the drafts it
// agrees with are kept and the cells of the others removed. The sampler is
// called once per emitted token on the model's logits after the same
// tokens, so the output is the generation's without speculation (greedy,
// or sampled with a fixed seed), near ties aside as in any batch; stop
// strings, WithMaxTokens, the end of the context and cancellation end it
// at the same token. Stats counts the drafted and accepted tokens.
//
// Every object that owns C memory has an idempotent Close; closing a Model
// closes its contexts and samplers first, and closing a Context ends the
// generations running in it with ErrClosed. After Close, methods that
// return an error return ErrClosed; the others report fixed properties as
// before and zero values for the rest (see ErrClosed). Calls that can block take a context.Context: cancelling it
// stops a load between tensors and a decode between graph nodes.
//
// Input from callers is checked in Go before it reaches llama.cpp, which
// aborts the process on much bad input: model files are parsed and
// validated with package gguf, token and sequence ids are range-checked,
// batches are bounded by the context's batch size, text that llama.cpp's
// tokenizers or grammar parser throw on becomes an error, grammars and
// JSON Schemas are parsed and measured for the work and memory llama.cpp
// would spend on them, penalty windows are bounded, and saved
// states carry a checksum and are walked for sizes before llama.cpp
// allocates for them. A context whose KV cache and compute buffers, as
// the fit planner estimates them, exceed the memory available is refused
// with ErrOutOfMemory before llama.cpp allocates anything.
//
// llama.cpp's log goes to a log/slog Logger set with SetLogger; it is
// discarded by default.
//
// A module that requires llamago builds with plain go build: the include
// paths of llama.cpp inside the pinned github.com/ollama/ollama module are
// relative to this package's directory in the module cache (cgo.go). From
// a checkout (a replace directive, go.work) they come from
// scripts/cgo-env.sh, which the repository's Makefile uses. llama.cpp's
// JSON Schema converter also needs the nlohmann/json headers from the
// system (Debian: nlohmann-json3-dev; `make deps` installs them). Without
// scripts/cgo-env.sh's -march=native, ggml's CPU code is generic and
// several times slower: the package warns at its initialisation when the
// CPU has SIMD features the build left out (MissingCPUFeatures).
package llama
