//go:build llama_system

package llama

/*
#cgo linux CPPFLAGS: -D_GNU_SOURCE
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"

// ggml_version and ggml_commit appeared in 2025: weak, for older libraries.
extern const char * ggml_version(void) __attribute__((weak));
extern const char * ggml_commit(void) __attribute__((weak));

static const char * llamago_ggml_version(void) { return ggml_version != NULL ? ggml_version() : NULL; }
static const char * llamago_ggml_commit(void) { return ggml_commit != NULL ? ggml_commit() : NULL; }

// The file libllama was loaded from, resolved (libllama.so.0 is a link to
// libllama.so.0.0.N); the caller frees it.
static char * llamago_llama_library(void) {
	Dl_info info;
	if (dladdr((void *) llama_backend_init, &info) == 0 || info.dli_fname == NULL) {
		return NULL;
	}
	char * p = realpath(info.dli_fname, NULL);
	return p != NULL ? p : strdup(info.dli_fname);
}

static int llamago_has_cpu_device(void) {
	return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) != NULL;
}
*/
import "C"

import (
	"path/filepath"
	"regexp"
	"strconv"
	"unsafe"
)

// ggmlSource is empty: the backend libraries of an installed llama.cpp
// are not built by scripts/build-cuda.sh, and are not checked for its
// stamp.
const ggmlSource = ""

// defaultBackendDirs is false: the default directories hold libraries
// built from the pinned module's ggml for the compiled-in one, which need
// not match the installed ggml. Only $LLAMAGO_BACKEND_PATH is searched,
// besides the installed ggml's own places (loadSystemBackends).
const defaultBackendDirs = false

var libVersionRE = regexp.MustCompile(`\.so\.\d+\.\d+\.(\d+)$|\.(\d+)\.dylib$`)

func buildInfo() Build {
	b := Build{System: true, Commit: "unknown"}
	if s := C.llamago_ggml_commit(); s != nil && C.GoString(s) != "" {
		b.Commit = C.GoString(s)
	}
	if s := C.llamago_ggml_version(); s != nil {
		b.GGMLVersion = C.GoString(s)
	}
	if p := C.llamago_llama_library(); p != nil {
		b.Source = C.GoString(p)
		C.free(unsafe.Pointer(p))
		if m := libVersionRE.FindStringSubmatch(filepath.Base(b.Source)); m != nil {
			n, _ := strconv.Atoi(m[1] + m[2])
			b.Number = n
		}
	}
	return b
}

// loadSystemBackends loads the backends of an installed ggml built with
// GGML_BACKEND_DL, where even the CPU backend is a library: as llama.cpp's
// tools do, with ggml_backend_load_all (its GGML_BACKEND_DIR, the
// executable's directory, the current directory). A ggml with its backends
// linked in has registered them already, CPU included, and is left alone.
func loadSystemBackends() []BackendLoad {
	if C.llamago_has_cpu_device() != 0 {
		return nil
	}
	before := int(C.ggml_backend_reg_count())
	C.ggml_backend_load_all()
	var loads []BackendLoad
	for i := before; i < int(C.ggml_backend_reg_count()); i++ {
		reg := C.ggml_backend_reg_get(C.size_t(i))
		loads = append(loads, BackendLoad{
			Path:    "ggml_backend_load_all",
			Backend: C.GoString(C.ggml_backend_reg_name(reg)),
			Loaded:  true,
			Devices: int(C.ggml_backend_reg_dev_count(reg)),
		})
	}
	if C.llamago_has_cpu_device() == 0 {
		loads = append(loads, BackendLoad{Path: "ggml_backend_load_all", Backend: "cpu",
			Err: "the installed ggml has no CPU backend, and ggml_backend_load_all found none"})
	}
	return loads
}

// cpuBuildFix ends the warning of checkCPUBuild: how to build ggml's CPU
// code for this CPU.
const cpuBuildFix = "rebuild the installed llama.cpp with -DGGML_NATIVE=ON, or with -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"

// stateFormatKnown says that checkSequenceState knows this llama.cpp's
// sequence state layout: an installed llama.cpp may be another version,
// whose own checks apply.
const stateFormatKnown = false
