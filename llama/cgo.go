//go:build !llama_system

package llama

// Build flags for the binding. The include paths for llama.h and ggml.h live
// in the pinned github.com/ollama/ollama module, whose directory only the go
// command knows; the Makefile (or scripts/cgo-env.sh) passes them through
// CGO_CPPFLAGS. With the build tag llama_system, cgo_system.go links an
// installed llama.cpp instead, and none of this file is compiled.

/*
#cgo CXXFLAGS: -std=c++17
#cgo CPPFLAGS: -DGGML_USE_CPU
#cgo linux LDFLAGS: -lm
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	// libllama and ggml with its CPU backend, compiled by cgo from the
	// pinned module's sources.
	_ "github.com/ollama/ollama/llama/llama.cpp/src"
	_ "github.com/ollama/ollama/ml/backend/ggml/ggml/src"

	// llama.cpp's multimodal library (clip, mtmd), for projectors.
	_ "github.com/llamago/llamago/llama/internal/mtmdlib"
)
