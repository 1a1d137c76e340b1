package llama

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCPUVariantDirs(t *testing.T) {
	t.Setenv("LLAMAGO_CPU_VARIANTS", "off")
	if d := cpuVariantDirs(); d != nil {
		t.Errorf("off: %q, want none", d)
	}
	t.Setenv("LLAMAGO_CPU_VARIANTS", "a"+string(os.PathListSeparator)+"b")
	if d := cpuVariantDirs(); !slices.Equal(d, []string{"a", "b"}) {
		t.Errorf("a, b: %q", d)
	}
	os.Unsetenv("LLAMAGO_CPU_VARIANTS")
	d := cpuVariantDirs()
	if len(d) != 3 || d[1] != filepath.Join(d[0], "lib") || d[2] != filepath.Join(d[0], "..", "lib", "llamago") {
		t.Errorf("default: %q, want the executable's directory, its lib and its ../lib/llamago", d)
	}
}

// TestCPUVariant checks which CPU backend is in use: with
// LLAMAGO_WANT_CPU_VARIANT=zen4 (say) the library libggml-cpu-zen4.so of
// $LLAMAGO_CPU_VARIANTS, with LLAMAGO_WANT_CPU_VARIANT=builtin the
// compiled-in one. docs/portable.md runs the package's tests so.
func TestCPUVariant(t *testing.T) {
	got := CPUVariant()
	t.Logf("CPU variant %q; %s", got, SystemInfo())
	switch want := os.Getenv("LLAMAGO_WANT_CPU_VARIANT"); want {
	case "":
	case "builtin":
		if got != "" {
			t.Errorf("CPUVariant() = %q, want the built-in CPU backend", got)
		}
	default:
		if filepath.Base(got) != "libggml-cpu-"+want+".so" {
			t.Errorf("CPUVariant() = %q, want libggml-cpu-%s.so", got, want)
		}
	}
}
