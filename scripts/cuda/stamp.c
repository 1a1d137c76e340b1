// Compiled into the backend library by scripts/cuda/CMakeLists.txt: the
// ggml sources it was built from, which the llama package compares with
// its own before it loads the library (see llama/backend_load.go).
#ifndef LLAMAGO_GGML_SOURCE
#error "LLAMAGO_GGML_SOURCE is not defined"
#endif

#if defined(_WIN32)
#define LLAMAGO_EXPORT __declspec(dllexport)
#else
#define LLAMAGO_EXPORT __attribute__((visibility("default")))
#endif

LLAMAGO_EXPORT const char * llamago_ggml_source(void);

const char * llamago_ggml_source(void) {
    return LLAMAGO_GGML_SOURCE;
}
