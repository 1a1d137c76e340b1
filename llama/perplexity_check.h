// An independent C computation of llama-perplexity's perplexity, which the
// tests compare Context.Perplexity with; see perplexity_check.c.
#pragma once
#include <stdint.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double  nll, nll2; // sums over the scored tokens of -log p and its square
    int32_t count;     // scored tokens
    int32_t chunks;    // chunks evaluated
    int32_t status;    // 0; llama_decode's nonzero status; -100 no memory; -101 text too short; -102 tokenizer failed
} llamago_ppl_result;

// Tokenizes text (BOS added as the vocabulary asks) and computes the
// perplexity over at most max_chunks windows of n_window tokens, each
// decoded from an empty cache in sequence 0 in batches of n_batch,
// scoring the second half. ppl, when not NULL, receives the running
// perplexity after each chunk (room for max_chunks values).
llamago_ppl_result llamago_check_perplexity(struct llama_context * ctx, const char * text, int32_t text_len,
                                            int32_t n_window, int32_t n_batch, int32_t max_chunks, double * ppl);

#ifdef __cplusplus
}
#endif
