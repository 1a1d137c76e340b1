//go:build !llama_system

// Compiles llama.cpp's mtmd-audio.cpp from the pinned module (see mtmdlib.go).
#include "tools/mtmd/mtmd-audio.cpp"
