// The C baseline loop of `llamago bench --native`; see native.c.
#pragma once
#include <stdint.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t ns;     // elapsed nanoseconds, when status is 0
    int32_t status; // llama_decode's nonzero status, or -100 for no memory
} llamago_bench_result;

// Runs one repetition of llama-bench's timed loop on ctx: n_prompt random
// tokens (BOS first, if the vocabulary adds one) decoded in batches of
// n_batch, then n_gen tokens decoded one at a time, each followed by
// llama_synchronize, continuing sequence 0 from its end.
llamago_bench_result llamago_native_bench(struct llama_context * ctx, int32_t n_prompt, int32_t n_gen,
                                          int32_t n_batch, uint64_t seed);

#ifdef __cplusplus
}
#endif
