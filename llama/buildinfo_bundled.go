//go:build !llama_system

package llama

/*
#include <stddef.h>

// The build information of llama.cpp's CMake build (build-info.cpp), which
// the package defines for common.cpp's sake (jsonschema.cpp); weak, so that
// BuildInfo falls back on the constants below without them.
extern int LLAMA_BUILD_NUMBER __attribute__((weak));
extern const char * LLAMA_COMMIT __attribute__((weak));
extern const char * LLAMA_COMPILER __attribute__((weak));
extern const char * LLAMA_BUILD_TARGET __attribute__((weak));

static int llamago_build_number(void) { return &LLAMA_BUILD_NUMBER != NULL ? LLAMA_BUILD_NUMBER : -1; }
static const char * llamago_commit(void) { return &LLAMA_COMMIT != NULL ? LLAMA_COMMIT : NULL; }
static const char * llamago_build_compiler(void) { return &LLAMA_COMPILER != NULL ? LLAMA_COMPILER : NULL; }
static const char * llamago_build_target(void) { return &LLAMA_BUILD_TARGET != NULL ? LLAMA_BUILD_TARGET : NULL; }

static const char * llamago_cc(void) {
#if defined(__clang__)
	return "clang " __clang_version__;
#elif defined(__GNUC__)
	return "gcc " __VERSION__;
#else
	return "";
#endif
}
*/
import "C"

import "runtime"

// ggmlSource identifies the ggml sources compiled into the program: the
// pinned github.com/ollama/ollama module. A GPU backend library must have
// been built from the same (scripts/build-cuda.sh stamps it with this
// string); a test checks it against go.mod.
const ggmlSource = "github.com/ollama/ollama@v0.17.4"

// llamaCommit is the commit of the llama.cpp sources in the pinned module
// (its llama/build-info.cpp).
const llamaCommit = "ec98e2002"

func buildInfo() Build {
	b := Build{Commit: llamaCommit, Source: ggmlSource, Target: runtime.GOOS + "/" + runtime.GOARCH}
	if s := C.llamago_commit(); s != nil && C.GoString(s) != "" {
		b.Commit = C.GoString(s)
	}
	if n := int(C.llamago_build_number()); n > 0 {
		b.Number = n
	}
	if s := C.llamago_build_compiler(); s != nil && C.GoString(s) != "" {
		b.Compiler = C.GoString(s)
	} else {
		b.Compiler = C.GoString(C.llamago_cc())
	}
	if s := C.llamago_build_target(); s != nil && C.GoString(s) != "" {
		b.Target = C.GoString(s)
	}
	return b
}

// loadSystemBackends has nothing to do with the compiled-in ggml: its CPU
// backend (and Metal on Apple Silicon) is registered statically.
func loadSystemBackends() []BackendLoad { return nil }

// defaultBackendDirs: the compiled-in ggml loads libraries from the
// default directories too, which scripts/build-cuda.sh fills.
const defaultBackendDirs = true

// cpuBuildFix ends the warning of checkCPUBuild: how to build ggml's CPU
// code for this CPU.
const cpuBuildFix = `build with the C flags of llamago's scripts/cgo-env.sh (-O3 -march=native): ` +
	`eval "$(sh "$(go list -m -f '{{.Dir}}' github.com/llamago/llamago)/scripts/cgo-env.sh")" before go build ` +
	`(llamago's README, "Building from your own module")`

// stateFormatKnown says that checkSequenceState knows this llama.cpp's
// sequence state layout: the pinned one.
const stateFormatKnown = true
