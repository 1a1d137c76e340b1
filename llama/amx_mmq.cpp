//go:build !llama_system

// See amx.cpp: the AMX matrix kernels that go with the buffer type.
#include "amx/mmq.cpp"
