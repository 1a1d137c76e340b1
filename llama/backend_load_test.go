package llama_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llamago/llamago/llama"
)

// The backend loader is tested in child processes of the test binary (the
// loading happens once per process): a directory of bad libraries must
// leave the CPU working, and a fake GPU backend, built here with the C
// compiler, must be listed by Devices with its memory.

// fakeBackendC is a ggml backend with one GPU device that reports 3 GiB
// free of 8 GiB. API_VERSION and STAMP select the faults; with BASE, it
// logs through ggml_log_internal of its own libggml-base (fakeBaseC), as
// a real backend does, to check that its messages reach SetLogger's
// logger.
const fakeBackendC = `
#include <string.h>
#include "ggml-backend-impl.h"

#ifdef BASE
void fake_base_log(const char * text);
#endif

static struct ggml_backend_reg reg;
static struct ggml_backend_device dev;

static const char * dev_name(ggml_backend_dev_t d) { (void) d; return "FAKE0"; }
static const char * dev_desc(ggml_backend_dev_t d) { (void) d; return "Fake GPU of the llamago tests"; }
static void dev_memory(ggml_backend_dev_t d, size_t * free, size_t * total) {
	(void) d;
	*free = (size_t) 3 << 30;
	*total = (size_t) 8 << 30;
}
static enum ggml_backend_dev_type dev_type(ggml_backend_dev_t d) { (void) d; return GGML_BACKEND_DEVICE_TYPE_GPU; }
static void dev_props(ggml_backend_dev_t d, struct ggml_backend_dev_props * p) {
	memset(p, 0, sizeof(*p));
	p->name = dev_name(d);
	p->description = dev_desc(d);
	dev_memory(d, &p->memory_free, &p->memory_total);
	p->type = dev_type(d);
}
static const char * reg_name(ggml_backend_reg_t r) { (void) r; return "Fake"; }
static size_t reg_count(ggml_backend_reg_t r) { (void) r; return 1; }
static ggml_backend_dev_t reg_device(ggml_backend_reg_t r, size_t i) { (void) r; (void) i; return &dev; }

ggml_backend_reg_t ggml_backend_init(void) {
	reg.api_version = API_VERSION;
	reg.iface.get_name = reg_name;
	reg.iface.get_device_count = reg_count;
	reg.iface.get_device = reg_device;
	dev.iface.get_name = dev_name;
	dev.iface.get_description = dev_desc;
	dev.iface.get_memory = dev_memory;
	dev.iface.get_type = dev_type;
	dev.iface.get_props = dev_props;
	dev.reg = &reg;
#ifdef BASE
	fake_base_log("fake backend initialised\n");
#endif
	return &reg;
}

#ifdef STAMP
const char * llamago_ggml_source(void) { return STAMP; }
#endif
`

// fakeBaseC stands for the libggml-base.so.0 a real backend links with:
// its own copy of ggml's logger, which prints to stderr until it is set.
const fakeBaseC = `
#include <stdio.h>
#include "ggml.h"

static ggml_log_callback cb;
static void * cb_data;

void ggml_log_set(ggml_log_callback c, void * data) { cb = c; cb_data = data; }

void fake_base_log(const char * text) {
	if (cb != NULL) {
		cb(GGML_LOG_LEVEL_WARN, text, cb_data);
	} else {
		fprintf(stderr, "UNROUTED: %s", text);
	}
}
`

func ggmlDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Skipf("cannot find the ollama module's sources: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "ml", "backend", "ggml", "ggml")
}

func cc(t *testing.T) string {
	t.Helper()
	c := os.Getenv("CC")
	if c == "" {
		c = "gcc"
	}
	if _, err := exec.LookPath(c); err != nil {
		t.Skipf("no C compiler: %v", err)
	}
	return c
}

// buildSO compiles a shared library from C source.
func buildSO(t *testing.T, out, src string, args ...string) {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, "src.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ggml := ggmlDir(t)
	cmd := exec.Command(cc(t), append([]string{"-shared", "-fPIC", "-o", out, c,
		"-I" + filepath.Join(ggml, "include"), "-I" + filepath.Join(ggml, "src")}, args...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
}

// helperResult is what the child process reports.
type helperResult struct {
	Build    llama.Build
	Dirs     []string
	Loads    []llama.BackendLoad
	Devices  []llama.Device
	Offload  bool
	Log      []string
	Generate string
}

// runBackendHelper runs TestBackendLoadHelper in a child process with
// LLAMAGO_BACKEND_PATH set to dirs.
func runBackendHelper(t *testing.T, generate bool, dirs ...string) helperResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "result.json")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBackendLoadHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"LLAMAGO_TEST_BACKEND_HELPER="+out,
		llama.BackendPathEnv+"="+strings.Join(dirs, string(os.PathListSeparator)),
		llama.BackendUncheckedEnv+"=",
		// The CPU variant libraries (a portable build's) would join
		// BackendLoads, which the tests compare whole.
		"LLAMAGO_CPU_VARIANTS=off")
	if generate {
		cmd.Env = append(cmd.Env, "LLAMAGO_TEST_BACKEND_MODEL="+modelPath(t, "stories260K.gguf"))
	}
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, b)
	}
	if bytes.Contains(b, []byte("UNROUTED")) {
		t.Errorf("a backend's log went to stderr instead of the logger:\n%s", b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("helper wrote no result: %v\n%s", err, b)
	}
	var r helperResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Loads {
		t.Logf("load %+v", l)
	}
	for _, d := range r.Devices {
		t.Logf("device %+v", d)
	}
	for _, m := range r.Log {
		if strings.Contains(m, "backend") || strings.Contains(m, "llamago") {
			t.Logf("log %s", m)
		}
	}
	return r
}

// recordHandler keeps the messages logged.
type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// TestBackendLoadHelper is the child process of the tests below.
func TestBackendLoadHelper(t *testing.T) {
	out := os.Getenv("LLAMAGO_TEST_BACKEND_HELPER")
	if out == "" {
		t.Skip("run by the backend loading tests")
	}
	h := &recordHandler{}
	llama.SetLogger(slog.New(h))
	defer llama.SetLogger(nil)
	r := helperResult{
		Build:   llama.BuildInfo(),
		Loads:   llama.BackendLoads(),
		Dirs:    llama.BackendSearchPath(),
		Devices: llama.Devices(),
		Offload: llama.SupportsGPUOffload(),
	}
	if path := os.Getenv("LLAMAGO_TEST_BACKEND_MODEL"); path != "" {
		m, err := llama.Load(context.Background(), path, llama.WithGPULayers(-1))
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Complete(context.Background(), "Once upon a time", llama.WithMaxTokens(8),
			llama.WithSampling(llama.WithGreedy()))
		if err != nil {
			t.Fatal(err)
		}
		r.Generate = s.Text
		m.Close()
	}
	h.mu.Lock()
	r.Log = h.msgs
	h.mu.Unlock()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func loadOf(r helperResult, file string) (llama.BackendLoad, bool) {
	for _, l := range r.Loads {
		if filepath.Base(l.Path) == file {
			return l, true
		}
	}
	return llama.BackendLoad{}, false
}

// TestBackendLoadFallback: libraries that cannot be loaded are reported,
// and the program runs on the CPU.
func TestBackendLoadFallback(t *testing.T) {
	dir := t.TempDir()
	// Not a library at all.
	if err := os.WriteFile(filepath.Join(dir, "libggml-cuda.so"), bytes.Repeat([]byte("not an ELF file "), 64), 0o644); err != nil {
		t.Fatal(err)
	}
	// A real library that is not a ggml backend.
	buildSO(t, filepath.Join(dir, "libggml-vulkan.so"), "int llamago_not_a_backend = 1;\n")
	// A backend whose dependency is missing.
	other := t.TempDir()
	buildSO(t, filepath.Join(other, "libllamago-missing.so"), "int llamago_missing = 1;\n")
	buildSO(t, filepath.Join(dir, "libggml-missingdep.so"), "extern int llamago_missing; int f(void) { return llamago_missing; }\n",
		"-L"+other, "-lllamago-missing")
	// CPU backends and ggml-base are never loaded from the search path.
	if err := os.WriteFile(filepath.Join(dir, "libggml-cpu-haswell.so"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "libggml-base.so"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := runBackendHelper(t, true, dir, filepath.Join(dir, "does-not-exist"))
	if len(r.Dirs) != 2 || r.Dirs[0] != dir {
		t.Errorf("search path %q, want %q first", r.Dirs, dir)
	}
	for file, want := range map[string]string{
		"libggml-cuda.so":       "", // dlopen's message varies: "invalid ELF header", "file too short"
		"libggml-vulkan.so":     "no ggml_backend_init",
		"libggml-missingdep.so": "libllamago-missing.so",
	} {
		l, ok := loadOf(r, file)
		if !ok {
			t.Errorf("%s: not tried; loads: %+v", file, r.Loads)
			continue
		}
		if l.Loaded || l.Err == "" || !strings.Contains(l.Err, want) {
			t.Errorf("%s: %+v, want an error with %q", file, l, want)
		}
	}
	for _, file := range []string{"libggml-cpu-haswell.so", "libggml-base.so"} {
		if l, ok := loadOf(r, file); ok {
			t.Errorf("%s was tried: %+v", file, l)
		}
	}
	if len(r.Devices) == 0 || r.Devices[0].Type != llama.DeviceCPU {
		t.Errorf("devices %+v, want the CPU", r.Devices)
	}
	for _, d := range r.Devices {
		if d.Type != llama.DeviceCPU && d.Type != llama.DeviceAccelerator {
			t.Errorf("unexpected device %+v", d)
		}
	}
	if r.Offload {
		t.Error("SupportsGPUOffload is true without a GPU backend")
	}
	if r.Generate == "" {
		t.Error("no text generated on the CPU")
	}
	warned := 0
	for _, m := range r.Log {
		if strings.HasPrefix(m, "WARN cannot load backend library") {
			warned++
		}
	}
	if warned != 3 {
		t.Errorf("%d warnings logged, want 3: %q", warned, r.Log)
	}
}

// TestBackendLoadFake loads a fake GPU backend, with its own stand-in
// for libggml-base beside it (found through $ORIGIN), among libraries
// ggml or the stamp check refuses.
func TestBackendLoadFake(t *testing.T) {
	stamp := llama.BuildInfo().Source
	system := llama.BuildInfo().System
	q := func(s string) string { return `-DSTAMP="` + s + `"` }

	bad := t.TempDir()
	buildSO(t, filepath.Join(bad, "libggml-old.so"), fakeBackendC, "-DAPI_VERSION=1", q(stamp))
	if !system {
		// Linked with an installed llama.cpp, the package checks no
		// stamp, and these would load.
		buildSO(t, filepath.Join(bad, "libggml-nostamp.so"), fakeBackendC, "-DAPI_VERSION=GGML_BACKEND_API_VERSION")
		buildSO(t, filepath.Join(bad, "libggml-foreign.so"), fakeBackendC, "-DAPI_VERSION=GGML_BACKEND_API_VERSION", q("github.com/ollama/ollama@v0.0.1"))
	}

	good := t.TempDir()
	// Not named libggml-base.so.0: an installed one (-tags llama_system)
	// is loaded already, and the dynamic loader would take it for this.
	base := filepath.Join(good, "libllamago-fake-base.so.0")
	buildSO(t, base, fakeBaseC, "-Wl,-soname,libllamago-fake-base.so.0")
	buildSO(t, filepath.Join(good, "libggml-fake.so"), fakeBackendC, "-DAPI_VERSION=GGML_BACKEND_API_VERSION", "-DBASE", q(stamp),
		base, "-Wl,-rpath,$ORIGIN")
	// A second fake library in a later directory: the first one wins.
	later := t.TempDir()
	buildSO(t, filepath.Join(later, "libggml-fake.so"), fakeBackendC, "-DAPI_VERSION=GGML_BACKEND_API_VERSION", q(stamp))

	r := runBackendHelper(t, false, bad, good, later)

	if l, _ := loadOf(r, "libggml-old.so"); l.Loaded || !strings.Contains(l.Err, "incompatible API version") {
		t.Errorf("API version 1: %+v", l)
	}
	for file, want := range map[string]string{
		"libggml-nostamp.so": "not built by scripts/build-cuda.sh",
		"libggml-foreign.so": "built from the ggml of github.com/ollama/ollama@v0.0.1",
	} {
		if l, _ := loadOf(r, file); !system && (l.Loaded || !strings.Contains(l.Err, want)) {
			t.Errorf("%s: %+v, want an error with %q", file, l, want)
		}
	}

	var fake []llama.BackendLoad
	for _, l := range r.Loads {
		if filepath.Base(l.Path) == "libggml-fake.so" {
			fake = append(fake, l)
		}
	}
	if len(fake) != 2 || !fake[0].Loaded || fake[0].Backend != "Fake" || fake[0].Devices != 1 ||
		fake[1].Loaded || !strings.Contains(fake[1].Err, "already loaded") {
		t.Errorf("fake backends: %+v", fake)
	}

	var gpus []llama.Device
	for _, d := range r.Devices {
		if d.Type == llama.DeviceGPU {
			gpus = append(gpus, d)
		}
	}
	if len(gpus) != 1 || gpus[0].Name != "FAKE0" || gpus[0].Description != "Fake GPU of the llamago tests" ||
		gpus[0].FreeMemory != 3<<30 || gpus[0].TotalMemory != 8<<30 {
		t.Errorf("GPU devices %+v, want FAKE0 with 3 GiB free of 8 GiB", gpus)
	}
	if r.Devices[0].Type == llama.DeviceGPU {
		// ggml orders devices by the score of their library; the fake
		// has none, and ranks with the CPU in registration order.
		t.Logf("devices: %+v", r.Devices)
	}
	if !r.Offload {
		t.Error("SupportsGPUOffload is false with a GPU device")
	}
	logged := false
	for _, m := range r.Log {
		if strings.Contains(m, "fake backend initialised") {
			logged = true
		}
	}
	if !logged {
		t.Errorf("the backend's own log did not reach the logger: %q", r.Log)
	}
}

// TestBackendSearchPathOff: an empty LLAMAGO_BACKEND_PATH loads nothing.
func TestBackendSearchPathOff(t *testing.T) {
	r := runBackendHelper(t, false)
	if len(r.Dirs) != 0 || len(r.Loads) != 0 {
		t.Errorf("dirs %q, loads %+v; want none", r.Dirs, r.Loads)
	}
}
