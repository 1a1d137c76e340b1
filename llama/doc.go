// Package llama runs GGUF language models with llama.cpp, compiled into the
// program through cgo.
//
// The objects follow llama.cpp's own:
//
//   - Load opens a GGUF file as a *Model: weights, hyperparameters and
//     vocabulary. A Model is safe for concurrent use; tokenization is
//     available on it directly.
//   - Model.NewContext makes a *Context: the KV cache and compute buffers
//     for one or more sequences. A Context serves one goroutine at a time.
//   - Model.NewSampler makes a *Sampler, a chain of llama.cpp samplers.
//   - Model.LoadAdapter loads a LoRA *Adapter, which contexts apply from
//     their creation (WithAdapter).
//   - Context.Generate streams tokens as an iter.Seq2[Token, error];
//     Context.Complete collects them. For full control, fill a *Batch and
//     call Context.Decode, then read Context.Logits or sample.
//
// Every object that owns C memory has an idempotent Close; closing a Model
// closes its contexts and samplers first. After Close, methods that return
// an error return ErrClosed; the others report fixed properties as before
// and zero values for the rest (see ErrClosed). Calls that can block take a context.Context: cancelling it
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
// Building needs the include paths of llama.cpp inside the pinned
// github.com/ollama/ollama module: run the repository's Makefile, or
// eval "$(scripts/cgo-env.sh)" before go build. llama.cpp's JSON Schema
// converter also needs the nlohmann/json headers from the system (Debian:
// nlohmann-json3-dev; `make deps` installs them).
package llama
