//go:build !llama_system

// Package mtmdlib compiles llama.cpp's multimodal library (clip and mtmd)
// from the pinned github.com/ollama/ollama module, for package llama's
// projector binding. It has no Go API.
//
// The module's own package (llama/llama.cpp/tools/mtmd) cannot be built
// here: its mtmd-helper.cpp includes miniaudio and stb_image from llama.cpp's
// vendor directory, which the module leaves out. The translation units of
// this package #include the module's clip.cpp, mtmd.cpp and mtmd-audio.cpp
// instead, as llama/amx.cpp does for ggml's AMX sources; the helper, which
// decodes image files and evaluates chunks, is replaced by Go code in
// package llama. Being a package of its own, the library is compiled once
// and kept in the build cache while package llama changes.
package mtmdlib

// The include paths come from CGO_CPPFLAGS (scripts/cgo-env.sh), or, in
// the module cache, from the pinned ollama module beside this one, as in
// package llama's cgo.go (keep the version the same as there).

/*
#cgo CXXFLAGS: -std=c++17
#cgo CPPFLAGS: -DGGML_USE_CPU
#cgo CPPFLAGS: -I${SRCDIR}/../../../../../ollama/ollama@v0.17.4/llama/llama.cpp/include
#cgo CPPFLAGS: -I${SRCDIR}/../../../../../ollama/ollama@v0.17.4/llama/llama.cpp
#cgo CPPFLAGS: -I${SRCDIR}/../../../../../ollama/ollama@v0.17.4/ml/backend/ggml/ggml/include
*/
import "C"

import (
	// The projector graphs (clip's models/*.cpp).
	_ "github.com/ollama/ollama/llama/llama.cpp/tools/mtmd/models"
)
