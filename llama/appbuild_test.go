package llama_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llamago/llamago/llama"
)

// appMain is the application TestApplicationBuild builds: greedy text
// from stories260K on stdout, and on stderr what the package says of the
// CPU code it was built with.
const appMain = `package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/llamago/llamago/llama"
)

func main() {
	m, err := llama.Load(context.Background(), os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	out, err := c.Complete(context.Background(), "Once upon a time", llama.WithMaxTokens(60), llama.WithSampling(llama.WithGreedy()))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(out.Text)
	fmt.Fprintf(os.Stderr, "missing: %s\nsystem info: %s\n", strings.Join(llama.MissingCPUFeatures(), " "), llama.SystemInfo())
}
`

// TestApplicationBuild builds and runs an application that imports the
// package as a user's module does: in a module of its own outside this
// repository, with this checkout served as a version of
// github.com/llamago/llamago by a file-based module proxy, so that `go get`
// extracts it into a module cache beside github.com/ollama/ollama, and with
// no CGO_* variables (nor anything else of this process's environment but
// PATH, HOME and the Go build cache). It must build with plain `go get`
// and `go build`, generate the library's greedy text, and warn that ggml's
// CPU code is generic on a CPU that has more (AVX2, on x86-64).
//
// The module cache it extracts modules into is a fixed directory,
// $XDG_CACHE_HOME/llamago/appbuild/modcache (the modules come from this process's
// module cache, offline), so that Go's build cache keeps llama.cpp compiled
// with cgo's default flags: the first run compiles it (minutes), later
// ones only what changed.
func TestApplicationBuild(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	goEnv := func(name string) string {
		out, err := exec.Command(goTool, "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	modCache, buildCache := goEnv("GOMODCACHE"), goEnv("GOCACHE")
	cacheDir, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	appCache := filepath.Join(cacheDir, "llamago", "appbuild", "modcache")

	// The checkout as a module version: the files git would commit, in a
	// module zip named by a hash of their contents, so that two checkouts
	// (or two states of one) never share a version.
	version, zipData := moduleZip(t, root)
	proxy := t.TempDir()
	at := filepath.Join(proxy, "github.com", "llamago", "llamago", "@v")
	goMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	writeAppFile(t, filepath.Join(at, "list"), version+"\n")
	writeAppFile(t, filepath.Join(at, version+".info"), fmt.Sprintf(`{"Version":%q,"Time":"2000-01-01T00:00:00Z"}`, version))
	writeAppFile(t, filepath.Join(at, version+".mod"), string(goMod))
	writeAppFile(t, filepath.Join(at, version+".zip"), string(zipData))
	pruneAppCache(t, appCache, version)

	// The application: its go.sum starts as this repository's, so that
	// the other modules are checked against the hashes we build with and
	// no checksum database is needed.
	app := t.TempDir()
	writeAppFile(t, filepath.Join(app, "go.mod"), "module example.com/llamagoapp\n\ngo 1.26.0\n")
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	writeAppFile(t, filepath.Join(app, "go.sum"), string(sum))
	writeAppFile(t, filepath.Join(app, "main.go"), appMain)

	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"GOCACHE=" + buildCache,
		"GOMODCACHE=" + appCache,
		"GOPROXY=" + fileURL(proxy) + "," + fileURL(filepath.Join(modCache, "cache", "download")) + ",off",
		"GONOSUMDB=github.com/llamago/llamago",
		"GOFLAGS=-modcacherw",
		"GOTOOLCHAIN=local",
		"GOENV=off", // nor a go env -w file
	}
	if d := os.Getenv("TMPDIR"); d != "" {
		env = append(env, "TMPDIR="+d)
	}
	run := func(timeout time.Duration, name string, args ...string) (stdout, stderr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = app, env
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, o.String(), e.String())
		}
		t.Logf("%s %s: %v", filepath.Base(name), strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
		return o.String(), e.String()
	}
	run(2*time.Minute, goTool, "get", "github.com/llamago/llamago/llama@"+version)
	run(20*time.Minute, goTool, "build", "-o", "app", ".")
	model := modelPath(t, "stories260K.gguf")
	got, stderr := run(2*time.Minute, filepath.Join(app, "app"), model)
	t.Logf("application's stderr:\n%s", stderr)

	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithContextSize(256), llama.WithThreads(1))
	want, err := c.Complete(t.Context(), "Once upon a time", llama.WithMaxTokens(60), llama.WithSampling(llama.WithGreedy()))
	if err != nil {
		t.Fatal(err)
	}
	if got != want.Text || !strings.HasPrefix(got, ", there was a little girl") {
		t.Errorf("the application generated %q, the library %q", got, want.Text)
	}
	if runtime.GOARCH == "amd64" && strings.Contains(llama.SystemInfo(), " AVX2 = 1 ") {
		// This process is built for this CPU (the Makefile's -march=native)
		// and sees AVX2, which cgo's default flags leave out.
		_, missing, _ := strings.Cut(stderr, "missing: ")
		missing, _, _ = strings.Cut(missing, "\n")
		if !slices.Contains(strings.Fields(missing), "AVX2") {
			t.Errorf("MissingCPUFeatures() in the application = %q, want AVX2 among them", missing)
		}
		for _, w := range []string{
			"WARN ggml's CPU code in this program was built without ",       // the log line, by slog's default logger
			"| WARNING: ggml's CPU code in this program was built without ", // SystemInfo
			"scripts/cgo-env.sh", // the fix
		} {
			if !strings.Contains(stderr, w) {
				t.Errorf("the application's stderr lacks %q", w)
			}
		}
	}
}

// moduleZip returns a pseudo-version of github.com/llamago/llamago and a
// module zip of the files of the checkout at root that git would commit
// (tracked, or untracked and not ignored), as `go mod download` expects it.
func moduleZip(t *testing.T, root string) (version string, data []byte) {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files in %s (the test needs the checkout's git): %v", root, err)
	}
	type file struct {
		name string
		data []byte
	}
	var files []file
	h := sha256.New()
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		st, err := os.Lstat(filepath.Join(root, name))
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted, or a link: not in a module zip either
		}
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file{filepath.ToSlash(name), b})
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(b))
		h.Write(b)
	}
	version = "v0.0.0-20000101000000-" + hex.EncodeToString(h.Sum(nil))[:12]
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create("github.com/llamago/llamago@" + version + "/" + f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return version, buf.Bytes()
}

// pruneAppCache removes from the application's module cache the versions
// of llamago that no run extracted or used for a day (each state of a
// checkout is a version of its own), keeping the others, which concurrent
// runs from other checkouts may be using. keep's, if there, is marked used.
func pruneAppCache(t *testing.T, cache, keep string) {
	t.Helper()
	now := time.Now()
	os.Chtimes(filepath.Join(cache, "github.com", "llamago", "llamago@"+keep), now, now)
	for _, pattern := range []string{
		filepath.Join(cache, "github.com", "llamago", "llamago@*"),
		filepath.Join(cache, "cache", "download", "github.com", "llamago", "llamago", "@v", "*"),
	} {
		old, _ := filepath.Glob(pattern)
		for _, p := range old {
			st, err := os.Stat(p)
			if err != nil || strings.Contains(filepath.Base(p), keep) || time.Since(st.ModTime()) < 24*time.Hour {
				continue
			}
			if err := os.RemoveAll(p); err != nil {
				t.Logf("pruning %s: %v", p, err)
			}
		}
	}
}

func fileURL(dir string) string {
	return "file://" + filepath.ToSlash(dir)
}

func writeAppFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
