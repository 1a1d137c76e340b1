//go:build !llama_system

// Compiles ggml's AMX buffer type from the pinned module's sources (the
// module's own cgo packages leave it out). Without it, a -march=native build
// on an AMX CPU fails to link; on other CPUs the source compiles to nothing.
#include "amx/amx.cpp"
