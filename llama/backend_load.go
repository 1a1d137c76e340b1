package llama

/*
#cgo linux LDFLAGS: -ldl
#include <stdlib.h>
#include "ggml-backend.h"
#include "backend_load.h"
*/
import "C"

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"
)

// GPU backends are ggml libraries loaded at run time (ggml's GGML_BACKEND_DL
// mechanism): scripts/build-cuda.sh builds libggml-cuda.so, and
// scripts/build-vulkan.sh libggml-vulkan.so, from the same pinned sources as
// the ggml compiled into the program. The package's
// one-time initialisation (initBackend) loads them from the directories of
// BackendSearchPath; a library that cannot be loaded is logged and
// recorded in BackendLoads, and the program goes on with the backends it
// has (at least the CPU).

// BackendPathEnv names the environment variable that lists the directories
// to load GPU backends from, separated as in PATH (os.PathListSeparator).
// When it is set, and only then, the default directories are not searched;
// set to the empty string, it turns the loading off.
const BackendPathEnv = "LLAMAGO_BACKEND_PATH"

// BackendUncheckedEnv, set to 1, loads backend libraries that lack the
// stamp of scripts/build-cuda.sh and scripts/build-vulkan.sh (see
// BackendLoad). A library built from
// other ggml sources than the program's can crash the process.
const BackendUncheckedEnv = "LLAMAGO_BACKEND_UNCHECKED"

// BackendLoad is the outcome of loading one backend library.
type BackendLoad struct {
	Path    string `json:"path"`    // the library file
	Backend string `json:"backend"` // the backend's name: from the file name (cuda), once loaded ggml's (CUDA)
	Loaded  bool   `json:"loaded"`
	Devices int    `json:"devices"`         // devices the backend registered, once loaded
	Err     string `json:"error,omitempty"` // why it was not loaded; "skipped: ..." for a library not tried
	Note    string `json:"note,omitempty"`  // for a backend loaded without devices, why it may have none
}

// backendScripts are the scripts that build the backend libraries, by
// backend name, for the advice of a library that fails the checks.
var backendScripts = map[string]string{"cuda": "scripts/build-cuda.sh", "vulkan": "scripts/build-vulkan.sh"}

// noDeviceNotes explain, per backend, why a backend that loaded may have
// found no device. ggml-vulkan offers only GPUs unless told otherwise: a
// CPU-type Vulkan device, such as Mesa's lavapipe, is used only when
// GGML_VK_VISIBLE_DEVICES names it.
var noDeviceNotes = map[string]string{
	"vulkan": "no Vulkan GPU found; a CPU Vulkan device such as Mesa's lavapipe is used only when GGML_VK_VISIBLE_DEVICES names it (GGML_VK_VISIBLE_DEVICES=0; vulkaninfo --summary lists the devices)",
}

// initFailureHints say, per backend, what most often makes its
// initialisation fail once the library itself has loaded.
var initFailureHints = map[string]string{
	"vulkan": "no usable Vulkan driver, or a GGML_VK_VISIBLE_DEVICES index it does not have: install one (Mesa's, Debian's mesa-vulkan-drivers, or the GPU vendor's; vulkaninfo --summary lists what the Vulkan loader finds)",
}

var backendLoads struct {
	sync.Mutex
	dirs  []string
	loads []BackendLoad
}

// BackendSearchPath returns the directories GPU backends are loaded from,
// in order: those of $LLAMAGO_BACKEND_PATH if it is set, otherwise lib/
// beside the executable and ../lib/llamago from the executable's
// directory (where scripts/build-cuda.sh puts them for bin/llamago, and
// where an install puts them for /usr/local/bin/llamago). The first
// library found for a backend wins. A program linked with an installed
// llama.cpp (build tag llama_system) searches $LLAMAGO_BACKEND_PATH only,
// then lets the installed ggml load its own backends.
func BackendSearchPath() []string {
	initBackend()
	backendLoads.Lock()
	defer backendLoads.Unlock()
	return slices.Clone(backendLoads.dirs)
}

// BackendLoads reports every backend library the package found and what
// came of it, in the order they were tried.
func BackendLoads() []BackendLoad {
	initBackend()
	backendLoads.Lock()
	defer backendLoads.Unlock()
	return slices.Clone(backendLoads.loads)
}

// backendDirs computes the search path from the environment and the
// executable's location (exe, "" if unknown); without the environment
// variable, the default directories if defaults is true, none otherwise.
func backendDirs(env func(string) (string, bool), exe string, defaults bool) []string {
	if v, ok := env(BackendPathEnv); ok {
		var dirs []string
		for _, d := range filepath.SplitList(v) {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
		return dirs
	}
	if exe == "" || !defaults {
		return nil
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	dir := filepath.Dir(exe)
	return []string{filepath.Join(dir, "lib"), filepath.Join(filepath.Dir(dir), "lib", "llamago")}
}

// backendFileRE matches the file names of ggml backend libraries, as ggml's
// own loader does: libggml-NAME.so, or a variant libggml-NAME-VARIANT.so
// (ggml-NAME.dll on Windows). ggml names them .so on macOS too.
var backendFileRE = func() *regexp.Regexp {
	if runtime.GOOS == "windows" {
		return regexp.MustCompile(`(?i)^ggml-([a-z0-9]+)(-[^.]+)?\.dll$`)
	}
	return regexp.MustCompile(`^libggml-([a-z0-9]+)(-[^.]+)?\.so$`)
}()

// skippedBackends are the names of libraries that are not backends to
// load: ggml's base library (the loaded backends' dependency) and the
// CPU backend, which is built into the program.
var skippedBackends = map[string]bool{"base": true, "cpu": true}

type backendCandidate struct {
	path, name string
	variant    bool
}

// backendCandidates lists the backend libraries of dir, sorted by name,
// then the plain libggml-NAME.so before its variants.
func backendCandidates(dir string) ([]backendCandidate, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []backendCandidate
	for _, e := range ents {
		m := backendFileRE.FindStringSubmatch(e.Name())
		if m == nil || skippedBackends[strings.ToLower(m[1])] {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			continue
		}
		out = append(out, backendCandidate{path: p, name: strings.ToLower(m[1]), variant: m[2] != ""})
	}
	slices.SortFunc(out, func(a, b backendCandidate) int {
		if c := cmp.Compare(a.name, b.name); c != 0 {
			return c
		}
		if a.variant != b.variant {
			if a.variant {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.path, b.path)
	})
	return out, nil
}

// loadBackends loads the backend libraries of the search path. It runs
// once, from initBackend, after llama.cpp's log is routed to Go.
func loadBackends() {
	exe, _ := os.Executable()
	dirs := backendDirs(os.LookupEnv, exe, defaultBackendDirs)
	want := ggmlSource
	if os.Getenv(BackendUncheckedEnv) == "1" {
		want = ""
	}
	var loads []BackendLoad
	done := map[string]string{} // backend name: the library it came from
	for _, dir := range dirs {
		cands, err := backendCandidates(dir)
		if err != nil {
			if !os.IsNotExist(err) {
				loads = append(loads, BackendLoad{Path: dir, Err: err.Error()})
			}
			continue
		}
		for i := 0; i < len(cands); {
			name := cands[i].name
			j := i
			for j < len(cands) && cands[j].name == name {
				j++
			}
			loads = append(loads, loadBackendGroup(cands[i:j], want, done)...)
			i = j
		}
	}
	loads = append(loads, loadSystemBackends()...)

	backendLoads.Lock()
	backendLoads.dirs, backendLoads.loads = dirs, loads
	backendLoads.Unlock()
	for _, l := range loads {
		logBackendLoad(l)
	}
}

// loadBackendGroup loads the best library of one backend: the one with the
// highest ggml_backend_score among those that pass the checks, as ggml's
// loader picks among CPU variants.
func loadBackendGroup(cands []backendCandidate, want string, done map[string]string) []BackendLoad {
	name := cands[0].name
	var loads []BackendLoad
	if from, ok := done[name]; ok {
		for _, c := range cands {
			loads = append(loads, BackendLoad{Path: c.path, Backend: name, Err: "skipped: " + name + " is already loaded from " + from})
		}
		return loads
	}
	if builtin := registeredBackend(name); builtin {
		for _, c := range cands {
			loads = append(loads, BackendLoad{Path: c.path, Backend: name, Err: "skipped: " + name + " is built into the program"})
		}
		return loads
	}
	var errBuf [1024]C.char
	best, bestScore := -1, 0
	handles := make([]unsafe.Pointer, len(cands))
	defer func() {
		for _, h := range handles {
			C.llamago_backend_close(h)
		}
	}()
	loads = make([]BackendLoad, len(cands))
	for i, c := range cands {
		loads[i] = BackendLoad{Path: c.path, Backend: name}
		cpath := C.CString(c.path)
		cwant := C.CString(want)
		var score C.int
		handles[i] = C.llamago_backend_open(cpath, cwant, &score, &errBuf[0], C.size_t(len(errBuf)))
		C.free(unsafe.Pointer(cpath))
		C.free(unsafe.Pointer(cwant))
		if handles[i] == nil {
			loads[i].Err = C.GoString(&errBuf[0])
			if script, ok := backendScripts[name]; ok {
				// The C checks name the CUDA script; say which builds this one.
				loads[i].Err = strings.ReplaceAll(loads[i].Err, "scripts/build-cuda.sh", script)
			}
			continue
		}
		if best < 0 || int(score) > bestScore {
			best, bestScore = i, int(score)
		}
	}
	if best < 0 {
		return loads
	}
	for i := range cands {
		if i != best && handles[i] != nil {
			loads[i].Err = "skipped: " + filepath.Base(cands[best].path) + " scores higher"
		}
	}
	cpath := C.CString(cands[best].path)
	defer C.free(unsafe.Pointer(cpath))
	reg := C.llamago_backend_load(cpath, &errBuf[0], C.size_t(len(errBuf)))
	if reg == nil {
		msg := strings.Join(strings.Fields(C.GoString(&errBuf[0])), " ")
		if msg == "" {
			msg = "ggml could not register it"
		}
		if hint := initFailureHints[name]; hint != "" && strings.Contains(msg, "failed to initialize") {
			msg += ": " + hint
		}
		loads[best].Err = msg
		return loads
	}
	loads[best].Loaded = true
	loads[best].Backend = C.GoString(C.ggml_backend_reg_name(reg))
	loads[best].Devices = int(C.ggml_backend_reg_dev_count(reg))
	if loads[best].Devices == 0 {
		loads[best].Note = cmp.Or(noDeviceNotes[name], "the backend found no device")
	}
	done[name] = cands[best].path
	return loads
}

// registeredBackend reports whether ggml already has a backend of that
// name (compared without case: the file says cuda, ggml CUDA).
func registeredBackend(name string) bool {
	for i := range int(C.ggml_backend_reg_count()) {
		if strings.EqualFold(C.GoString(C.ggml_backend_reg_name(C.ggml_backend_reg_get(C.size_t(i)))), name) {
			return true
		}
	}
	return false
}

func logBackendLoad(l BackendLoad) {
	lg := logger.Load()
	if lg == nil {
		return
	}
	attrs := []slog.Attr{slog.String("source", "llamago"), slog.String("path", l.Path)}
	switch {
	case l.Loaded && l.Devices == 0:
		lg.LogAttrs(context.Background(), slog.LevelWarn, fmt.Sprintf("loaded the %s backend, without devices: %s", l.Backend, l.Note), attrs...)
	case l.Loaded:
		lg.LogAttrs(context.Background(), slog.LevelInfo, fmt.Sprintf("loaded the %s backend (%d devices)", l.Backend, l.Devices), attrs...)
	case strings.HasPrefix(l.Err, "skipped: "):
		lg.LogAttrs(context.Background(), LevelInfo, "backend library "+l.Err, attrs...)
	default:
		lg.LogAttrs(context.Background(), slog.LevelWarn, "cannot load backend library, continuing without it: "+l.Err, attrs...)
	}
}
