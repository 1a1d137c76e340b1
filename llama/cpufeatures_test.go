package llama

import (
	"slices"
	"strings"
	"testing"
)

func TestMissingCPUFeaturesCompare(t *testing.T) {
	cpu := []cpuFeature{{"SSE3", true}, {"AVX", true}, {"AVX2", true}, {"AVX512", false}, {"FMA", true}}
	for _, tc := range []struct {
		compiled map[string]bool
		want     []string
	}{
		{map[string]bool{"SSE3": true, "AVX": true, "AVX2": true, "FMA": true, "AVX512": true}, nil},
		{map[string]bool{"SSE3": true, "AVX": true, "AVX2": true, "FMA": true}, nil},
		{map[string]bool{"LLAMAFILE": true}, []string{"SSE3", "AVX", "AVX2", "FMA"}},
		{map[string]bool{"SSE3": true, "AVX": true}, []string{"AVX2", "FMA"}},
	} {
		if got := missingCPUFeatures(cpu, tc.compiled); !slices.Equal(got, tc.want) {
			t.Errorf("compiled %v: missing %q, want %q", tc.compiled, got, tc.want)
		}
	}
}

// TestMissingCPUFeatures checks the running build against llama.cpp's own
// report: a feature this CPU has is missing exactly when SystemInfo does
// not list it, and SystemInfo warns exactly when one is missing. The
// Makefile's -march=native build misses none.
func TestMissingCPUFeatures(t *testing.T) {
	missing := MissingCPUFeatures()
	info := SystemInfo()
	t.Logf("missing %q; %s", missing, info)
	for _, f := range simdFeatures() {
		if !f.has {
			continue
		}
		listed := strings.Contains(info, " "+f.name+" = 1 ")
		if slices.Contains(missing, f.name) == listed {
			t.Errorf("%s: in MissingCPUFeatures %v, in SystemInfo %v", f.name, slices.Contains(missing, f.name), listed)
		}
	}
	if warned := strings.Contains(info, "WARNING: ggml's CPU code in this program was built without "+strings.Join(missing, " ")+", "); warned != (len(missing) > 0) {
		t.Errorf("SystemInfo warns %v with %d features missing: %s", warned, len(missing), info)
	}
}
