// Small C helpers of our own: callback trampolines and C++ exception
// barriers. llama.cpp throws on some bad input (a grammar that does not
// parse, an invalid trigger regex); an exception that crosses into Go
// would terminate the process.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

// Log callback installed with llama_log_set; forwards to Go.
void llamago_log(enum ggml_log_level level, const char * text, void * user_data);

// Progress callback for model loading; user_data holds a cgo.Handle.
bool llamago_progress(float progress, void * user_data);

// Abort callback for llama_decode: user_data points at an int flag that Go
// sets when the caller's context is done.
bool llamago_abort(void * user_data);

// Creates a grammar sampler (lazy when n_patterns or n_tokens is nonzero).
// Returns NULL and writes a message to err on failure.
struct llama_sampler * llamago_sampler_init_grammar(
    const struct llama_vocab * vocab, const char * grammar, const char * root,
    bool lazy, const char ** patterns, size_t n_patterns,
    const llama_token * tokens, size_t n_tokens, char * err, size_t err_len);

// llama_tokenize behind a C++ exception barrier: llama.cpp throws when a
// vocabulary lacks a token it looks up (an SPM vocabulary without the byte
// token of a character, say). On an exception it returns 0 and writes its
// message to err.
int32_t llamago_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
                         llama_token * tokens, int32_t n_tokens_max, bool add_special, bool parse_special,
                         char * err, size_t err_len);

// llama_sampler_accept behind a C++ exception barrier: returns false if
// llama.cpp threw.
bool llamago_sampler_accept(struct llama_sampler * smpl, llama_token token);

// llama_sampler_sample behind an exception barrier; returns -1 on failure.
llama_token llamago_sampler_sample(struct llama_sampler * smpl, struct llama_context * ctx, int32_t idx);

// Reports whether the sampler would give token a finite logit, i.e. whether
// a grammar still allows it.
bool llamago_sampler_allows(struct llama_sampler * smpl, llama_token token);

#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif

// A cgo.Handle carried through a void* user-data argument.
static inline void * llamago_handle(uintptr_t h) { return (void *) h; }

// Fill one KV metadata override; kind is 0 int, 1 float, 2 bool, 3 string.
void llamago_kv_override_set(struct llama_model_kv_override * o, const char * key, int kind,
                             int64_t i, double f, bool b, const char * s);

#ifdef __cplusplus
}
#endif
