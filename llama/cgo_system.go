//go:build llama_system

package llama

// Build flags of the llama_system mode: `go build -tags llama_system` links
// the llama.cpp installed on the system, found through pkg-config, instead
// of compiling the sources of the pinned github.com/ollama/ollama module.
// Its llama.pc gives the include path and the libraries (upstream's
// -lggml -lggml-base -lllama; a distribution's may say Requires: ggml).
// See docs/gpu.md and scripts/build-system-llama.sh.
//
// The headers must be those of the library: leave the pinned module's
// include paths out of CGO_CPPFLAGS (scripts/cgo-env.sh puts them there;
// scripts/cgo-env-system.sh prints the environment of this mode).

/*
#cgo pkg-config: llama
#cgo CXXFLAGS: -std=c++17
#cgo CPPFLAGS: -DLLAMAGO_SYSTEM
#cgo linux LDFLAGS: -lm
#include <stdlib.h>
#include "llama.h"
*/
import "C"
