// C side of the projector binding (mtmd.go): llama.cpp's multimodal
// library behind C++ exception barriers, and a decode of embeddings.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "llama.h"
#include "tools/mtmd/mtmd.h"

#ifdef __cplusplus
extern "C" {
#endif

// Loads a projector for model; NULL on failure (the reason is logged).
mtmd_context * llamago_mtmd_init(const char * path, const struct llama_model * model,
                                 bool use_gpu, int n_threads, bool warmup, int image_min_tokens,
                                 int image_max_tokens);

// mtmd_tokenize behind an exception barrier: -1 when it threw, with the
// message in err.
int32_t llamago_mtmd_tokenize(mtmd_context * ctx, mtmd_input_chunks * out, const char * text,
                              bool add_special, bool parse_special, const mtmd_bitmap ** bitmaps,
                              size_t n_bitmaps, char * err, size_t err_len);

// mtmd_encode_chunk behind an exception barrier: -1 when it threw.
int32_t llamago_mtmd_encode(mtmd_context * ctx, const mtmd_input_chunk * chunk, char * err, size_t err_len);

// Decodes n_tokens embeddings of n_embd floats into sequence seq, at
// positions pos (n_pos_per_tok per token, section by section, as M-RoPE
// takes them), none of them with outputs. Returns llama_decode's code.
int32_t llamago_decode_embd(struct llama_context * ctx, const float * embd, int32_t n_tokens,
                            const llama_pos * pos, llama_seq_id seq);

#ifdef __cplusplus
}
#endif
