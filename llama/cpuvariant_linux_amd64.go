//go:build !llama_system

package llama

// Run-time selection of the CPU backend (see CPUVariant): the libraries of
// scripts/cpu-variants.sh hold only ggml-cpu and call ggml's base functions
// in this executable, which therefore exports its symbols.

/*
#cgo LDFLAGS: -Wl,--export-dynamic
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include "ggml-backend.h"
#include "ggml-cpu.h"

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

// llamago_cpu_library_score opens a CPU backend library and returns its
// ggml_backend_score on this CPU, -1 with *err set (free it) if it cannot
// be opened, -2 if it has no score function.
static int llamago_cpu_library_score(const char * path, char ** err) {
	void * h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char * e = dlerror();
		*err = strdup(e != NULL ? e : "dlopen failed");
		return -1;
	}
	int (*score)(void) = (int (*)(void)) dlsym(h, "ggml_backend_score");
	int s = score != NULL ? score() : -2;
	dlclose(h);
	return s;
}

// llamago_use_cpu_library registers the CPU backend of a library and
// unregisters the compiled-in one; 0 if ggml could not load the library.
static int llamago_use_cpu_library(const char * path) {
	ggml_backend_reg_t reg = ggml_backend_load(path);
	if (reg == NULL) {
		return 0;
	}
	ggml_backend_unload(ggml_backend_cpu_reg());
	return 1;
}
*/
import "C"

import (
	"context"
	"log/slog"
	"path/filepath"
	"unsafe"
)

// loadCPUVariant is part of initBackend: it replaces the compiled-in CPU
// backend with the best library of cpuVariantDirs that uses more of this
// CPU's features, if there is one.
func loadCPUVariant() {
	dirs := cpuVariantDirs()
	if len(dirs) == 0 {
		return
	}
	builtin := int(C.llamago_builtin_cpu_score())
	best, bestScore := "", builtin
	seen := map[string]bool{}
	for _, dir := range dirs {
		libs, _ := filepath.Glob(filepath.Join(dir, "libggml-cpu-*.so"))
		for _, lib := range libs {
			if abs, err := filepath.Abs(lib); err == nil {
				lib = abs
			}
			if seen[lib] {
				continue
			}
			seen[lib] = true
			clib := C.CString(lib)
			var cerr *C.char
			s := int(C.llamago_cpu_library_score(clib, &cerr))
			C.free(unsafe.Pointer(clib))
			switch s {
			case -1:
				warnCPUVariant("cannot open CPU backend library", lib, C.GoString(cerr))
				C.free(unsafe.Pointer(cerr))
				continue
			case -2:
				warnCPUVariant("CPU backend library has no ggml_backend_score", lib, "")
				continue
			}
			if l := logger.Load(); l != nil {
				l.Log(context.Background(), LevelInfo, "CPU backend library", "path", lib, "score", s, "builtin", builtin, "source", "llamago")
			}
			if s > bestScore {
				best, bestScore = lib, s
			}
		}
	}
	if best == "" {
		return
	}
	clib := C.CString(best)
	defer C.free(unsafe.Pointer(clib))
	if C.llamago_use_cpu_library(clib) == 0 {
		warnCPUVariant("ggml could not load CPU backend library", best, "")
		return
	}
	cpuVariant = best
}

func warnCPUVariant(msg, lib, err string) {
	l := logger.Load()
	if l == nil {
		return
	}
	attrs := []any{"path", lib, "source", "llamago"}
	if err != "" {
		attrs = append(attrs, "error", err)
	}
	l.Log(context.Background(), slog.LevelWarn, msg, attrs...)
}
