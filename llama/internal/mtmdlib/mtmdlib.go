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

/*
#cgo CXXFLAGS: -std=c++17
#cgo CPPFLAGS: -DGGML_USE_CPU
*/
import "C"

import (
	// The projector graphs (clip's models/*.cpp).
	_ "github.com/ollama/ollama/llama/llama.cpp/tools/mtmd/models"
)
