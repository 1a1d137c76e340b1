// Loading ggml backends (CUDA, Vulkan, ...) built as dynamically loadable
// libraries (ggml's GGML_BACKEND_DL), with checks that turn a library that
// cannot work into an error message instead of a crash. See backend_load.go.
#pragma once
#include <stddef.h>

#include "ggml-backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// Opens the library at path and checks it before ggml registers it: it
// must load (all its dependencies found), export ggml_backend_init, and,
// when want_source is not empty, export llamago_ggml_source() returning
// want_source (the stamp scripts/build-cuda.sh builds in: the ggml sources
// it was compiled from). The library's own copy of ggml's log, if it has
// one (libggml-base.so), is pointed at ours. *score is the library's
// ggml_backend_score() (-1 without one); a score of 0 means the backend
// does not support this machine and is an error. On success it returns
// the library's handle, to release with llamago_backend_close once ggml
// holds its own; on failure NULL, with the reason in err.
void * llamago_backend_open(const char * path, const char * want_source, int * score, char * err, size_t err_len);

void llamago_backend_close(void * handle);

// ggml_backend_load, with ggml's error messages of the attempt (those at
// GGML_LOG_LEVEL_ERROR) copied into err as well as logged as usual.
ggml_backend_reg_t llamago_backend_load(const char * path, char * err, size_t err_len);

#ifdef __cplusplus
}
#endif
