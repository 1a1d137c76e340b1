package models

import (
	"bytes"
	"context"
	"fmt"
	"github.com/llamago/llamago/internal/testmodels"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain keeps the tests away from the real model cache, the real hub and
// any real token: the default store is a temporary directory, and the
// default endpoint a closed port on the loopback interface.
func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "llamago-models-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(EnvModels, filepath.Join(tmp, "default-store"))
	os.Setenv(EnvEndpoint, "http://127.0.0.1:1")
	os.Unsetenv(EnvToken)
	os.Setenv("XDG_CACHE_HOME", filepath.Join(tmp, "cache"))
	retryBase = 5 * time.Millisecond
	removeWait = 200 * time.Millisecond
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// testModelsDir returns the directory of the shared test models:
// $LLAMAGO_TEST_MODELS, or ../../shared/models from this package.
func testModelsDir(t testing.TB) string {
	t.Helper()
	return testmodels.Dir(t)
}

// readModel returns the bytes of a shared test model.
func readModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testModelsDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stories returns the bytes of stories260K.gguf, a real GGUF model of 1.1 MB.
func stories(t testing.TB) []byte { return readModel(t, "stories260K.gguf") }

// testCtx returns a context that ends with the test or after 15 seconds.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// writeFile writes data to dir/rel, creating directories.
func writeFile(t testing.TB, dir, rel string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// filesUnder returns the slash-separated paths of the files under dir.
func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return files
}

// A request is what the fake hub saw of a request.
type request struct {
	Path, Range, Auth, UserAgent string
}

// A fakeHub is a Hugging Face hub on the loopback interface. It serves
// files (with Range support, through http.ServeContent) and API responses.
type fakeHub struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	files map[string][]byte // "OWNER/REPO/FILE" -> content
	api   map[string]string // "OWNER/REPO" -> JSON
	reqs  []request
	// hook, if not nil, may handle a request for a file instead of the
	// default handler; n counts the requests for that file, from 1. It
	// returns whether it handled the request.
	hook func(w http.ResponseWriter, r *http.Request, data []byte, n int) bool
	// fail, if set, makes any request fail the test.
	fail bool
}

func newHub(t *testing.T) *fakeHub {
	h := &fakeHub{t: t, files: map[string][]byte{}, api: map[string]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.fail {
		h.t.Errorf("unexpected request: %s %s", r.Method, r.URL)
	}
	h.reqs = append(h.reqs, request{Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization"), UserAgent: r.UserAgent()})
	n := 0
	for _, q := range h.reqs {
		if q.Path == r.URL.Path {
			n++
		}
	}
	hook := h.hook
	h.mu.Unlock()

	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if repo, ok := strings.CutPrefix(r.URL.Path, "/api/models/"); ok {
		h.mu.Lock()
		body, ok := h.api[repo]
		h.mu.Unlock()
		if !ok {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			http.Error(w, `{"error":"Repository not found"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
		return
	}
	owner, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	repo, file, ok := strings.Cut(rest, "/resolve/main/")
	h.mu.Lock()
	data, found := h.files[owner+"/"+repo+"/"+file]
	h.mu.Unlock()
	if !ok || !found {
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	if hook != nil && hook(w, r, data, n) {
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// requests returns the requests seen so far.
func (h *fakeHub) requests() []request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]request(nil), h.reqs...)
}

// count returns how many requests had a path ending in suffix.
func (h *fakeHub) count(suffix string) int {
	n := 0
	for _, r := range h.requests() {
		if strings.HasSuffix(r.Path, suffix) {
			n++
		}
	}
	return n
}

// store returns a Store on a fresh temporary directory that talks to h.
func (h *fakeHub) store(t *testing.T) *Store {
	return &Store{Dirs: []string{t.TempDir()}, Endpoint: h.srv.URL, Client: h.srv.Client()}
}

// storiesPath is where the stories260k alias is stored.
const storiesPath = "ggml-org/models/tinyllamas/stories260K.gguf"

// checkClean fails the test if a .partial or .lock file is left in dir.
func checkClean(t *testing.T, dir string) {
	t.Helper()
	for _, f := range filesUnder(t, dir) {
		if strings.HasSuffix(f, ".partial") || strings.HasSuffix(f, ".lock") {
			t.Errorf("left behind: %s", f)
		}
	}
}

// checkSame fails the test if the file at p does not hold want.
func checkSame(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d expected", p, len(got), len(want))
	}
}
