// A ggml threadpool per context: ggml's CPU threads belong to the pool,
// not to whichever OS thread calls llama_decode. See threadpool.go.
#pragma once
#include <stdint.h>
#include "llama.h"

#ifdef __cplusplus
extern "C" {
#endif

// Creates a threadpool of n_threads (the caller of a decode is one of
// them) whose idle workers poll for new work at level poll (0-100, as
// llama.cpp's --poll) before they sleep. NULL if the CPU backend has no
// threadpools.
struct ggml_threadpool * llamago_threadpool_new(int32_t n_threads, uint32_t poll);

// Frees a pool made by llamago_threadpool_new; NULL is allowed.
void llamago_threadpool_free(struct ggml_threadpool * tp);

#ifdef __cplusplus
}
#endif
