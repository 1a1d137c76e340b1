// A second, independent implementation of llama-perplexity's method in C,
// straight on llama.h, for the tests: Context.Perplexity must agree with
// it to the printed precision. It is written from the description of the
// method (windows of n_window tokens from an empty cache, BOS first, the
// logits of the second half scored), not from the Go code, and keeps the
// logits of every token, as a naive loop would.
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "llama.h"
#include "perplexity_check.h"

llamago_ppl_result llamago_check_perplexity(struct llama_context * ctx, const char * text, int32_t text_len,
                                            int32_t n_window, int32_t n_batch, int32_t max_chunks, double * ppl) {
    llamago_ppl_result res = { 0, 0, 0, 0, 0 };
    const struct llama_model * model = llama_get_model(ctx);
    const struct llama_vocab * vocab = llama_model_get_vocab(model);
    const int32_t n_vocab = llama_vocab_n_tokens(vocab);

    int32_t cap = text_len + 2;
    llama_token * tokens = malloc(sizeof(llama_token) * (size_t) cap);
    float * window_logits = malloc(sizeof(float) * (size_t) n_window * (size_t) n_vocab);
    llama_batch batch = llama_batch_init(n_batch, 0, 1);
    if (tokens == NULL || window_logits == NULL) {
        res.status = -100;
        goto done;
    }
    const int32_t n_tokens = llama_tokenize(vocab, text, text_len, tokens, cap, true, false);
    if (n_tokens < 0) {
        res.status = -102;
        goto done;
    }
    if (n_tokens < 2 * n_window) {
        res.status = -101;
        goto done;
    }
    int32_t n_chunks = n_tokens / n_window;
    if (max_chunks > 0 && max_chunks < n_chunks) {
        n_chunks = max_chunks;
    }
    for (int32_t c = 0; c < n_chunks; c++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        for (int32_t p0 = 0; p0 < n_window; p0 += n_batch) {
            const int32_t n = n_window - p0 < n_batch ? n_window - p0 : n_batch;
            batch.n_tokens = n;
            for (int32_t k = 0; k < n; k++) {
                const int32_t p = p0 + k;
                batch.token[k] = p == 0 && llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : tokens[c * n_window + p];
                batch.pos[k] = p;
                batch.n_seq_id[k] = 1;
                batch.seq_id[k][0] = 0;
                batch.logits[k] = 1;
            }
            const int32_t rc = llama_decode(ctx, batch);
            if (rc != 0) {
                res.status = rc;
                goto done;
            }
            for (int32_t k = 0; k < n; k++) {
                const float * l = llama_get_logits_ith(ctx, k);
                for (int32_t v = 0; v < n_vocab; v++) {
                    window_logits[(size_t) (p0 + k) * n_vocab + v] = l[v];
                }
            }
        }
        // The logits at position p predict the token at p+1; score the
        // predictions from the middle of the window on.
        for (int32_t p = n_window / 2; p < n_window - 1; p++) {
            const float * l = window_logits + (size_t) p * n_vocab;
            float top = l[0];
            for (int32_t v = 1; v < n_vocab; v++) {
                if (l[v] > top) {
                    top = l[v];
                }
            }
            double z = 0;
            for (int32_t v = 0; v < n_vocab; v++) {
                z += exp((double) (l[v] - top));
            }
            const double nll = log(z) - (double) (l[tokens[c * n_window + p + 1]] - top);
            res.nll += nll;
            res.nll2 += nll * nll;
            res.count++;
        }
        res.chunks++;
        if (ppl != NULL) {
            ppl[c] = exp(res.nll / res.count);
        }
    }
done:
    llama_batch_free(batch);
    free(window_logits);
    free(tokens);
    return res;
}
