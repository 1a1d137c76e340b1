package llama

import (
	"os"
	"path/filepath"
)

// cpuVariant is the path of the CPU backend library loaded at start-up
// (see CPUVariant); "" while the compiled-in CPU backend is in use.
var cpuVariant string

// CPUVariant returns the path of the ggml CPU backend library that replaced
// the compiled-in CPU backend at start-up, or "" if the compiled-in one is
// in use.
//
// A build with generic CPU code (make PORTABLE=1) looks, on Linux x86-64,
// for libggml-cpu-<variant>.so libraries built for particular
// microarchitectures by scripts/cpu-variants.sh: in the directories of
// $LLAMAGO_CPU_VARIANTS (a path list; "off" disables the search), or by
// default next to the executable, in its lib and in its ../lib/llamago
// (where GPU backends are looked for too, see BackendSearchPath). It asks
// each library for its score on this CPU (ggml_backend_score), and if the
// best one uses more CPU features than the compiled-in backend it loads
// that one and unregisters the compiled-in one. A -march=native build uses
// all of the CPU's features and never loads a library.
func CPUVariant() string {
	initBackend()
	return cpuVariant
}

// cpuVariantDirs are the directories searched for CPU backend libraries.
func cpuVariantDirs() []string {
	spec, ok := os.LookupEnv("LLAMAGO_CPU_VARIANTS")
	switch {
	case spec == "off" || spec == "0":
		return nil
	case ok && spec != "":
		return filepath.SplitList(spec)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	dir := filepath.Dir(exe)
	return []string{dir, filepath.Join(dir, "lib"), filepath.Join(dir, "..", "lib", "llamago")}
}
