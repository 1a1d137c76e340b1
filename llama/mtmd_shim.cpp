//go:build !llama_system

#include "mtmd_shim.h"

#include <cstdio>
#include <exception>
#include <vector>

extern "C" {

mtmd_context * llamago_mtmd_init(const char * path, const struct llama_model * model,
                                 bool use_gpu, int n_threads, bool warmup, int image_min_tokens,
                                 int image_max_tokens) {
    mtmd_context_params p = mtmd_context_params_default();
    p.use_gpu = use_gpu;
    p.print_timings = false;
    p.n_threads = n_threads;
    p.warmup = warmup;
    p.image_min_tokens = image_min_tokens;
    p.image_max_tokens = image_max_tokens;
    try {
        return mtmd_init_from_file(path, model, p);
    } catch (const std::exception &) {
        return nullptr;
    }
}

int32_t llamago_mtmd_tokenize(mtmd_context * ctx, mtmd_input_chunks * out, const char * text,
                              bool add_special, bool parse_special, const mtmd_bitmap ** bitmaps,
                              size_t n_bitmaps, char * err, size_t err_len) {
    mtmd_input_text in = {text, add_special, parse_special};
    try {
        return mtmd_tokenize(ctx, out, &in, bitmaps, n_bitmaps);
    } catch (const std::exception & e) {
        snprintf(err, err_len, "%s", e.what());
        return -1;
    }
}

int32_t llamago_mtmd_encode(mtmd_context * ctx, const mtmd_input_chunk * chunk, char * err, size_t err_len) {
    try {
        return mtmd_encode_chunk(ctx, chunk);
    } catch (const std::exception & e) {
        snprintf(err, err_len, "%s", e.what());
        return -1;
    }
}

int32_t llamago_decode_embd(struct llama_context * ctx, const float * embd, int32_t n_tokens,
                            const llama_pos * pos, llama_seq_id seq) {
    std::vector<int32_t> n_seq_id(n_tokens, 1);
    std::vector<llama_seq_id> seq_id0 = {seq};
    std::vector<llama_seq_id *> seq_ids(n_tokens + 1, seq_id0.data());
    seq_ids[n_tokens] = nullptr;
    std::vector<int8_t> logits(n_tokens, 0);
    llama_batch b = {
        /*n_tokens =*/ n_tokens,
        /*token    =*/ nullptr,
        /*embd     =*/ const_cast<float *>(embd),
        /*pos      =*/ const_cast<llama_pos *>(pos),
        /*n_seq_id =*/ n_seq_id.data(),
        /*seq_id   =*/ seq_ids.data(),
        /*logits   =*/ logits.data(),
    };
    return llama_decode(ctx, b);
}

}
