package llama

/*
#include <stdlib.h>
#include "ggml-backend.h"

// llamago_cpu_features returns the features ggml's CPU backend in use was
// compiled with (its "ggml_backend_get_features", a list ending with a
// NULL name), or NULL if there is no CPU backend or it does not say.
static struct ggml_backend_feature * llamago_cpu_features(void) {
	ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
	if (dev == NULL) {
		return NULL;
	}
	ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
	if (reg == NULL) {
		return NULL;
	}
	ggml_backend_get_features_t get = (ggml_backend_get_features_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
	return get != NULL ? get(reg) : NULL;
}
*/
import "C"

import (
	"context"
	"log/slog"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// cpuFeature is a CPU feature ggml's CPU backend can be compiled to use:
// its name in ggml's feature list, and whether this CPU has it.
type cpuFeature struct {
	name string
	has  bool
}

// simdFeatures lists, in ggml's order, the instruction set extensions
// ggml's CPU code uses when compiled for them (ggml-cpu.cpp's features),
// with this CPU's support as golang.org/x/sys/cpu reads it (which counts
// the operating system's support of the registers too). Features ggml
// uses that x/sys/cpu does not detect (SME, ARM_FMA) are left out: a CPU
// never appears to lack what the build has.
func simdFeatures() []cpuFeature {
	switch runtime.GOARCH {
	case "amd64", "386":
		x := cpu.X86
		return []cpuFeature{
			{"SSE3", x.HasSSE3},
			{"SSSE3", x.HasSSSE3},
			{"AVX", x.HasAVX},
			{"AVX_VNNI", x.HasAVXVNNI},
			{"AVX2", x.HasAVX2},
			{"F16C", x.HasF16C},
			{"FMA", x.HasFMA},
			{"BMI2", x.HasBMI2},
			{"AVX512", x.HasAVX512F},
			{"AVX512_VBMI", x.HasAVX512VBMI},
			{"AVX512_VNNI", x.HasAVX512VNNI},
			{"AVX512_BF16", x.HasAVX512BF16},
			{"AMX_INT8", x.HasAMXInt8},
		}
	case "arm64":
		a := cpu.ARM64
		return []cpuFeature{
			{"NEON", a.HasASIMD},
			{"FP16_VA", a.HasASIMDHP},
			{"MATMUL_INT8", a.HasI8MM},
			{"SVE", a.HasSVE},
			{"DOTPROD", a.HasASIMDDP},
		}
	}
	return nil
}

// missingCPUFeatures returns the names of the features of cpu that
// compiled (the names in the CPU backend's feature list) lacks, in cpu's
// order.
func missingCPUFeatures(cpu []cpuFeature, compiled map[string]bool) []string {
	var missing []string
	for _, f := range cpu {
		if f.has && !compiled[f.name] {
			missing = append(missing, f.name)
		}
	}
	return missing
}

// compiledCPUFeatures returns the names in the feature list of the CPU
// backend in use (the compiled-in one, or the library CPUVariant loaded),
// and false if there is no such list.
func compiledCPUFeatures() (map[string]bool, bool) {
	f := C.llamago_cpu_features()
	if f == nil {
		return nil, false
	}
	names := map[string]bool{}
	for p := f; p.name != nil; p = (*C.struct_ggml_backend_feature)(unsafe.Add(unsafe.Pointer(p), unsafe.Sizeof(*p))) {
		if v := C.GoString(p.value); v != "" && v != "0" {
			names[C.GoString(p.name)] = true
		}
	}
	return names, true
}

// cpuMissing is what checkCPUBuild found: the features of this CPU that
// ggml's CPU backend in use was built without.
var cpuMissing []string

// MissingCPUFeatures returns the SIMD instruction set extensions this CPU
// has that ggml's CPU backend in use was compiled without, by ggml's names
// ("AVX2", "FMA", "DOTPROD"...), or nil if it uses all that it could. A
// program built by a plain `go build` gets the C compiler's default
// target, without them, and runs matrix products several times slower:
// see SystemInfo, and the README's "Building from your own module" for
// the fix.
func MissingCPUFeatures() []string {
	initBackend()
	return append([]string(nil), cpuMissing...)
}

// checkCPUBuild is part of initBackend, after the CPU backend is chosen:
// it compares the features the CPU backend was compiled for with the
// CPU's and, if the CPU has more, says so once, at slog.LevelWarn, to
// SetLogger's logger or else slog's default one (a nil logger discards
// llama.cpp's chatter, not this).
func checkCPUBuild() {
	compiled, ok := compiledCPUFeatures()
	if !ok {
		return
	}
	cpuMissing = missingCPUFeatures(simdFeatures(), compiled)
	if len(cpuMissing) == 0 {
		return
	}
	l := logger.Load()
	if l == nil {
		l = slog.Default()
	}
	l.LogAttrs(context.Background(), slog.LevelWarn, cpuWarning(),
		slog.String("source", "llamago"), slog.String("missing", strings.Join(cpuMissing, " ")))
}

// cpuWarning is checkCPUBuild's message, which SystemInfo ends with too.
func cpuWarning() string {
	return "ggml's CPU code in this program was built without " + strings.Join(cpuMissing, " ") +
		", which this CPU has, and runs several times slower than it could; " + cpuBuildFix
}
