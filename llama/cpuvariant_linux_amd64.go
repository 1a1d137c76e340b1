//go:build !llama_system

package llama

// Run-time selection of the CPU backend (see CPUVariant): the libraries of
// scripts/cpu-variants.sh hold only ggml-cpu and call ggml's base functions
// in this executable, which therefore exports its symbols.

/*
#cgo LDFLAGS: -Wl,--export-dynamic
#include <stdlib.h>
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "backend_load.h"

// The score ggml_backend_score (ggml-cpu/arch/x86/cpu-feats.cpp) would give
// the compiled-in CPU backend: the same features, with the same weights,
// read from the compiler's macros. cgo compiles this package with the
// CGO_CFLAGS of the ggml-cpu package, so the macros are ggml-cpu's.
static int llamago_builtin_cpu_score(void) {
	int score = 1;
#ifdef __FMA__
	score += 1;
#endif
#ifdef __F16C__
	score += 1<<1;
#endif
#ifdef __SSE4_2__
	score += 1<<2;
#endif
#ifdef __BMI2__
	score += 1<<3;
#endif
#ifdef __AVX__
	score += 1<<4;
#endif
#ifdef __AVX2__
	score += 1<<5;
#endif
#ifdef __AVXVNNI__
	score += 1<<6;
#endif
#if defined(__AVX512F__) && defined(__AVX512CD__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__AVX512BW__)
	score += 1<<7;
#endif
#ifdef __AVX512VBMI__
	score += 1<<8;
#endif
#ifdef __AVX512BF16__
	score += 1<<9;
#endif
#ifdef __AVX512VNNI__
	score += 1<<10;
#endif
#ifdef __AMX_INT8__
	score += 1<<11;
#endif
	return score;
}

// llamago_drop_builtin_cpu unregisters the compiled-in CPU backend once
// the library's is registered.
static void llamago_drop_builtin_cpu(void) {
	ggml_backend_unload(ggml_backend_cpu_reg());
}
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"
)

// loadCPUVariant is part of initBackend: it replaces the compiled-in CPU
// backend with the best library of cpuVariantDirs that uses more of this
// CPU's features, if there is one. The libraries go through the checks of
// the GPU backends' (llamago_backend_open: loadable, a ggml backend, built
// from the program's ggml sources unless $LLAMAGO_BACKEND_UNCHECKED=1),
// and what came of each is added to BackendLoads and logged.
func loadCPUVariant() {
	dirs := cpuVariantDirs()
	if len(dirs) == 0 {
		return
	}
	want := ggmlSource
	if os.Getenv(BackendUncheckedEnv) == "1" {
		want = ""
	}
	cwant := C.CString(want)
	defer C.free(unsafe.Pointer(cwant))
	builtin := int(C.llamago_builtin_cpu_score())
	var errBuf [1024]C.char
	var loads []BackendLoad
	var scores []int
	best, bestScore := -1, builtin
	seen := map[string]bool{}
	for _, dir := range dirs {
		libs, _ := filepath.Glob(filepath.Join(dir, "libggml-cpu-*.so"))
		for _, lib := range libs {
			if abs, err := filepath.Abs(lib); err == nil {
				lib = abs
			}
			if st, err := os.Stat(lib); seen[lib] || err != nil || !st.Mode().IsRegular() {
				continue
			}
			seen[lib] = true
			l := BackendLoad{Path: lib, Backend: "cpu"}
			clib := C.CString(lib)
			var score C.int
			h := C.llamago_backend_open(clib, cwant, &score, &errBuf[0], C.size_t(len(errBuf)))
			C.free(unsafe.Pointer(clib))
			switch {
			case h == nil && score == 0:
				l.Err = "skipped: this CPU lacks instructions it needs (its ggml_backend_score is 0)"
			case h == nil:
				// The checks are the GPU backends'; so is the advice.
				l.Err = strings.ReplaceAll(C.GoString(&errBuf[0]), "scripts/build-cuda.sh", "scripts/cpu-variants.sh")
			default:
				C.llamago_backend_close(h)
				if int(score) > bestScore {
					best, bestScore = len(loads), int(score)
				}
			}
			loads = append(loads, l)
			scores = append(scores, int(score))
		}
	}
	for i := range loads {
		switch {
		case loads[i].Err != "" || i == best:
		case best >= 0:
			loads[i].Err = fmt.Sprintf("skipped: %s scores higher (%d, this one %d)", filepath.Base(loads[best].Path), bestScore, scores[i])
		default:
			loads[i].Err = fmt.Sprintf("skipped: the built-in CPU backend uses at least as many of this CPU's features (score %d, this one %d)", builtin, scores[i])
		}
	}
	if best >= 0 {
		clib := C.CString(loads[best].Path)
		reg := C.llamago_backend_load(clib, &errBuf[0], C.size_t(len(errBuf)))
		C.free(unsafe.Pointer(clib))
		if reg == nil {
			loads[best].Err = "ggml could not register it: " + C.GoString(&errBuf[0])
		} else {
			C.llamago_drop_builtin_cpu()
			loads[best].Loaded = true
			loads[best].Backend = C.GoString(C.ggml_backend_reg_name(reg))
			loads[best].Devices = int(C.ggml_backend_reg_dev_count(reg))
			cpuVariant = loads[best].Path
		}
	}
	backendLoads.Lock()
	backendLoads.loads = append(backendLoads.loads, loads...)
	backendLoads.Unlock()
	for _, l := range loads {
		logBackendLoad(l)
	}
}
