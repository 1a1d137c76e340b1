// Package testvulkan prepares the environment of a child process that runs
// on ggml's Vulkan backend: the library make test builds (in
// $LLAMAGO_TEST_VULKAN_DIR), or make vulkan's (lib/llamago/libggml-vulkan.so
// in the repository), on Mesa's lavapipe, a
// Vulkan device that computes on the CPU, so that the GPU path is tested on
// machines without a GPU.
//
// Without the library or lavapipe the tests skip, saying what to run —
// unless $LLAMAGO_TEST_VULKAN is 1, as make test sets it when it has built
// the library (in CI, always): then they fail.
package testvulkan

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/llamago/llamago/internal/testmodels"
)

// unameArch maps GOARCH to the machine names of driver manifests.
var unameArch = map[string]string{"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x", "loong64": "loongarch64"}

// RequireEnv names the variable that, set to 1, makes a missing library or
// lavapipe a test failure instead of a skip.
const RequireEnv = "LLAMAGO_TEST_VULKAN"

// DirEnv names the variable of the directory that holds the library and
// its libggml-base.so.0: make test's build of it; lib/llamago of the
// repository (make vulkan's) if it is not set.
const DirEnv = "LLAMAGO_TEST_VULKAN_DIR"

// Lavapipe runs on one device, so the tests ask for index 0 of the one
// driver they let the Vulkan loader see.
const visibleDevices = "0"

// managed are the variables Env sets or leaves out, whatever the test's
// own environment says.
var managed = []string{"LLAMAGO_BACKEND_PATH", "LLAMAGO_BACKEND_UNCHECKED", "LLAMAGO_CPU_VARIANTS",
	"GGML_VK_VISIBLE_DEVICES", "VK_DRIVER_FILES", "VK_ICD_FILENAMES", "LP_NUM_THREADS"}

// Env returns the environment of a child process that loads only the
// Vulkan backend (from a directory of its own, so other libraries beside
// it, CUDA's say, stay out), sees only lavapipe's driver, and uses that
// device although it is a CPU: the test's environment with those
// variables set.
func Env(t testing.TB) []string {
	t.Helper()
	return env(t, true, "")
}

// NoDriverEnv is Env with no Vulkan driver to be found: the library loads,
// but the Vulkan loader finds no device driver.
func NoDriverEnv(t testing.TB) []string {
	t.Helper()
	return env(t, true, filepath.Join(t.TempDir(), "no-such-driver.json"))
}

// NoDevicesEnv is Env without GGML_VK_VISIBLE_DEVICES: lavapipe, a CPU,
// is then skipped, and the backend has no device.
func NoDevicesEnv(t testing.TB) []string {
	t.Helper()
	return env(t, false, "")
}

func env(t testing.TB, visible bool, icd string) []string {
	t.Helper()
	lib, lavapipe := find(t)
	if icd == "" {
		icd = lavapipe
	}
	dir := t.TempDir()
	for _, name := range []string{"libggml-vulkan.so", "libggml-base.so.0"} {
		if err := os.Symlink(filepath.Join(filepath.Dir(lib), name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	out := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return slices.Contains(managed, k)
	})
	out = append(out,
		"LLAMAGO_BACKEND_PATH="+dir,
		// The Vulkan loader's list of drivers (and its older name).
		"VK_DRIVER_FILES="+icd, "VK_ICD_FILENAMES="+icd,
		// Debian 12's lavapipe (Mesa 22.3), with its default threads, got
		// batches of several sequences (Embed's) wrong in about half the
		// runs, NaN at times; with one thread, never (docs/gpu.md).
		"LP_NUM_THREADS=1",
		// A portable build's CPU variant libraries would join the loads.
		"LLAMAGO_CPU_VARIANTS=off")
	if visible {
		out = append(out, "GGML_VK_VISIBLE_DEVICES="+visibleDevices)
	}
	return out
}

// Lib returns the path of the Vulkan backend library, skipping or failing
// the test as the package says if it or lavapipe is missing.
func Lib(t testing.TB) string {
	t.Helper()
	lib, _ := find(t)
	return lib
}

func find(t testing.TB) (lib, icd string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf(format+" ("+RequireEnv+"=1: make test built the backend, so the Vulkan tests must run)", args...)
		}
		t.Skipf(format+" (make test builds it where it can; "+RequireEnv+"=1 makes this a failure)", args...)
	}
	dir := os.Getenv(DirEnv)
	if dir == "" {
		root, err := testmodels.RepoRoot()
		if err != nil {
			t.Fatalf("the repository's root: %v", err)
		}
		dir = filepath.Join(root, "lib", "llamago")
	}
	lib = filepath.Join(dir, "libggml-vulkan.so")
	if _, err := os.Stat(lib); err != nil {
		missing("no Vulkan backend: %v; make vulkan builds it (or set %s)", err, DirEnv)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(lib), "libggml-base.so.0")); err != nil {
		missing("the Vulkan backend's libggml-base.so.0 is missing: %v; make vulkan copies it beside the backend", err)
	}
	icd = Lavapipe()
	if icd == "" {
		missing("no lavapipe, Mesa's Vulkan driver on the CPU: install mesa-vulkan-drivers (Debian, Ubuntu)")
	}
	return lib, icd
}

// Lavapipe returns the path of lavapipe's driver manifest, "" if it is not
// installed.
func Lavapipe() string {
	for _, dir := range []string{"/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"} {
		m, _ := filepath.Glob(filepath.Join(dir, "lvp_icd.*.json"))
		// Debian names them by architecture (lvp_icd.x86_64.json); with
		// multiarch, another architecture's can be there too.
		for _, p := range m {
			if strings.Contains(filepath.Base(p), "."+unameArch[runtime.GOARCH]+".") {
				return p
			}
		}
		if len(m) == 1 {
			return m[0]
		}
	}
	return ""
}
