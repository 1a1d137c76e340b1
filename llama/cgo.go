//go:build !llama_system

package llama

// Build flags for the binding. llama.h and ggml.h live in the pinned
// github.com/ollama/ollama module. Where the go command extracts modules
// (the module cache, as `go get` leaves it, on every system), that module
// is a sibling of this one: this directory is
// $GOMODCACHE/github.com/llamago/llamago@VERSION/llama, and the include
// paths below, relative to it, find the headers with no environment at all.
// Elsewhere (this repository's checkout, a replace directive pointing to
// one, a vendor directory) they name nothing, which the C compiler ignores,
// and the include paths come from CGO_CPPFLAGS, as scripts/cgo-env.sh (used
// by the Makefile) prints them; the go command puts CGO_CPPFLAGS first, so
// those win where both apply. The version in the paths is the one in
// go.mod; TestBuildInfo checks that they agree. With the build tag
// llama_system, cgo_system.go links an installed llama.cpp instead, and
// none of this file is compiled.
//
// The pinned module's cgo packages compile ggml's CPU code with the
// C flags of the environment: without -march, generic code. checkCPUBuild
// says so at run time.

/*
#cgo CXXFLAGS: -std=c++17
#cgo CPPFLAGS: -DGGML_USE_CPU
#cgo CPPFLAGS: -I${SRCDIR}/../../../ollama/ollama@v0.17.4/llama/llama.cpp/include
#cgo CPPFLAGS: -I${SRCDIR}/../../../ollama/ollama@v0.17.4/llama/llama.cpp
#cgo CPPFLAGS: -I${SRCDIR}/../../../ollama/ollama@v0.17.4/ml/backend/ggml/ggml/include
#cgo CPPFLAGS: -I${SRCDIR}/../../../ollama/ollama@v0.17.4/ml/backend/ggml/ggml/src
#cgo CPPFLAGS: -I${SRCDIR}/../../../ollama/ollama@v0.17.4/ml/backend/ggml/ggml/src/ggml-cpu
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
