//go:build !llama_system

// Compiles llama.cpp's mtmd.cpp from the pinned module (see mtmdlib.go).
#include "tools/mtmd/mtmd.cpp"
