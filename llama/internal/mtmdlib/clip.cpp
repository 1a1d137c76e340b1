//go:build !llama_system

// Compiles llama.cpp's clip.cpp from the pinned module (see mtmdlib.go).
#include "tools/mtmd/clip.cpp"
