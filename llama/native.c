// The C baseline of `llamago bench --native`: llama-bench's timed loop
// (test_prompt then test_gen, tools/llama-bench/llama-bench.cpp) compiled
// in the same build against the same llama.cpp, so that the cost of the Go
// binding is the difference between it and the same loop written in Go.
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "llama.h"
#include "native.h"

static int64_t llamago_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// xorshift64: llama-bench draws with std::rand; any cheap generator does.
static inline llama_token llamago_rand_token(uint64_t * s, int32_t n_vocab) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (llama_token) (x % (uint64_t) n_vocab);
}

llamago_bench_result llamago_native_bench(struct llama_context * ctx, int32_t n_prompt, int32_t n_gen,
                                          int32_t n_batch, uint64_t seed) {
    llamago_bench_result res = { 0, 0 };
    const struct llama_model * model   = llama_get_model(ctx);
    const struct llama_vocab * vocab   = llama_model_get_vocab(model);
    const int32_t              n_vocab = llama_vocab_n_tokens(vocab);
    const bool                 add_bos = llama_vocab_get_add_bos(vocab);
    const llama_token          bos     = llama_vocab_bos(vocab);
    uint64_t                   s       = seed | 1;

    llama_token * tokens = malloc(sizeof(llama_token) * (size_t) (n_batch > 0 ? n_batch : 1));
    if (tokens == NULL) {
        res.status = -100;
        return res;
    }

    const int64_t t_start = llamago_now_ns();

    // test_prompt: n_prompt tokens in batches of n_batch, logits of the
    // last token of each batch only.
    if (n_prompt > 0) {
        int32_t n_processed = 0;
        while (n_processed < n_prompt) {
            const int32_t n_tokens = n_prompt - n_processed < n_batch ? n_prompt - n_processed : n_batch;
            tokens[0] = n_processed == 0 && add_bos ? bos : llamago_rand_token(&s, n_vocab);
            for (int32_t i = 1; i < n_tokens; i++) {
                tokens[i] = llamago_rand_token(&s, n_vocab);
            }
            const int32_t rc = llama_decode(ctx, llama_batch_get_one(tokens, n_tokens));
            if (rc != 0) {
                res.status = rc;
                goto done;
            }
            n_processed += n_tokens;
        }
        llama_synchronize(ctx);
    }

    // test_gen: n_gen tokens one at a time, synchronizing after each.
    if (n_gen > 0) {
        llama_token token = add_bos ? bos : llamago_rand_token(&s, n_vocab);
        for (int32_t i = 0; i < n_gen; i++) {
            const int32_t rc = llama_decode(ctx, llama_batch_get_one(&token, 1));
            if (rc != 0) {
                res.status = rc;
                goto done;
            }
            llama_synchronize(ctx);
            token = llamago_rand_token(&s, n_vocab);
        }
    }

    res.ns = llamago_now_ns() - t_start;
done:
    free(tokens);
    return res;
}
