package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llamago/llamago/gguf"
)

func TestPull(t *testing.T) {
	data := stories(t)
	tests := []struct {
		name, ref string
	}{
		{"alias", "stories260k"},
		{"alias any case", "STORIES260K"},
		{"hf file", "hf://ggml-org/models/tinyllamas/stories260K.gguf"},
		{"store layout name", storiesPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newHub(t)
			hub.files[storiesPath] = data
			s := hub.store(t)
			s.UserAgent = "llamago-test/1"
			ctx := testCtx(t)

			var last Progress
			calls := 0
			p, err := s.Pull(ctx, tt.ref, &PullOptions{Progress: func(p Progress) {
				if p.Done < last.Done {
					t.Errorf("progress went back from %d to %d", last.Done, p.Done)
				}
				last = p
				calls++
			}})
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(s.Dirs[0], filepath.FromSlash(storiesPath))
			if p != want {
				t.Errorf("path %s, want %s", p, want)
			}
			checkSame(t, p, data)
			checkClean(t, s.Dirs[0])
			if calls < 2 || last.Done != int64(len(data)) || last.Total != int64(len(data)) || last.File != want || last.Part != 1 || last.Parts != 1 {
				t.Errorf("%d progress calls, last %+v", calls, last)
			}
			reqs := hub.requests()
			if len(reqs) != 1 || reqs[0].Path != "/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf" || reqs[0].UserAgent != "llamago-test/1" || reqs[0].Range != "" || reqs[0].Auth != "" {
				t.Errorf("requests: %+v", reqs)
			}

			// Present now: no request, no progress, from Pull or Resolve.
			calls = 0
			for _, f := range []func() (string, error){
				func() (string, error) {
					return s.Pull(ctx, tt.ref, &PullOptions{Progress: func(Progress) { calls++ }})
				},
				func() (string, error) { return s.Resolve(tt.ref) },
			} {
				if p, err := f(); err != nil || p != want {
					t.Errorf("again: %s, %v", p, err)
				}
			}
			if n := len(hub.requests()); n != 1 || calls != 0 {
				t.Errorf("pulling a present model made %d requests, %d progress calls", n-1, calls)
			}
		})
	}
}

func TestPullDefaultUserAgent(t *testing.T) {
	hub := newHub(t)
	hub.files[storiesPath] = stories(t)
	if _, err := hub.store(t).Pull(testCtx(t), "stories260k", nil); err != nil {
		t.Fatal(err)
	}
	if ua := hub.requests()[0].UserAgent; ua != DefaultUserAgent || !strings.HasPrefix(ua, "llamago/") {
		t.Errorf("User-Agent %q, want %q", ua, DefaultUserAgent)
	}
}

// cutAfter returns a hook that answers the first request for a file with
// its full Content-Length but only n bytes, then drops the connection.
func cutAfter(n int) func(http.ResponseWriter, *http.Request, []byte, int) bool {
	return func(w http.ResponseWriter, r *http.Request, data []byte, count int) bool {
		if count != 1 {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:n])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
}

func TestPullResume(t *testing.T) {
	data := stories(t)
	const cut = 300_000
	tests := []struct {
		name    string
		retries int
	}{
		{"second pull resumes", 0},
		{"retry resumes", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newHub(t)
			hub.files[storiesPath] = data
			hub.hook = cutAfter(cut)
			s := hub.store(t)
			s.Retries = tt.retries
			ctx := testCtx(t)
			dest := filepath.Join(s.Dirs[0], filepath.FromSlash(storiesPath))

			p, err := s.Pull(ctx, "stories260k", nil)
			if tt.retries == 0 {
				if err == nil {
					t.Fatal("interrupted download succeeded")
				}
				if !strings.Contains(err.Error(), "kept for resuming") {
					t.Errorf("error %q does not say the download is kept", err)
				}
				if st, err := os.Stat(dest + ".partial"); err != nil || st.Size() != cut {
					t.Fatalf("partial file: %v, %v; want %d bytes", st, err, cut)
				}
				if isFile(dest) {
					t.Fatal("incomplete file moved into place")
				}
				var first Progress
				p, err = s.Pull(ctx, "stories260k", &PullOptions{Progress: func(p Progress) {
					if first.Total == 0 {
						first = p
					}
				}})
				if first.Done != cut || first.Total != int64(len(data)) {
					t.Errorf("first progress of the resumed pull %+v, want Done %d", first, cut)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, p, data)
			checkClean(t, s.Dirs[0])
			reqs := hub.requests()
			if len(reqs) != 2 || reqs[0].Range != "" || reqs[1].Range != fmt.Sprintf("bytes=%d-", cut) {
				t.Errorf("requests %+v, want the second with Range bytes=%d-", reqs, cut)
			}
		})
	}
}

func TestPullRestart(t *testing.T) {
	data := stories(t)
	junk := []byte(strings.Repeat("junk", 1000))
	tests := []struct {
		name string
		hook func(http.ResponseWriter, *http.Request, []byte, int) bool
		reqs int
	}{
		{"server ignores Range", func(w http.ResponseWriter, r *http.Request, data []byte, _ int) bool {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Write(data)
			return true
		}, 1},
		{"server sends another range", func(w http.ResponseWriter, r *http.Request, data []byte, _ int) bool {
			if r.Header.Get("Range") == "" {
				return false
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(data)-1, len(data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data)
			return true
		}, 2},
		{"server has a shorter file", nil, 2}, // 416 for a partial file longer than the real one
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newHub(t)
			hub.files[storiesPath] = data
			hub.hook = tt.hook
			s := hub.store(t)
			s.Catalog = []CatalogEntry{{Alias: "m", Ref: HFScheme + storiesPath}} // size not known
			dest := filepath.Join(s.Dirs[0], filepath.FromSlash(storiesPath))
			partial := junk
			if tt.hook == nil {
				partial = append(append([]byte(nil), data...), junk...)
			}
			writeFile(t, filepath.Dir(dest), filepath.Base(dest)+".partial", partial)

			p, err := s.Pull(testCtx(t), "m", nil)
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, p, data)
			checkClean(t, s.Dirs[0])
			reqs := hub.requests()
			if len(reqs) != tt.reqs || reqs[0].Range != fmt.Sprintf("bytes=%d-", len(partial)) {
				t.Errorf("requests %+v, want %d, the first with Range bytes=%d-", reqs, tt.reqs, len(partial))
			}
			if len(reqs) > 1 && reqs[1].Range != "" {
				t.Errorf("restart sent Range %q", reqs[1].Range)
			}
		})
	}
}

// A partial file that is already complete is finished without downloading
// it again: the server answers 416 with its size.
func TestPullCompletePartial(t *testing.T) {
	data := stories(t)
	hub := newHub(t)
	hub.files[storiesPath] = data
	s := hub.store(t)
	dest := filepath.Join(s.Dirs[0], filepath.FromSlash(storiesPath))
	writeFile(t, filepath.Dir(dest), filepath.Base(dest)+".partial", data)
	p, err := s.Pull(testCtx(t), "stories260k", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, p, data)
	checkClean(t, s.Dirs[0])
	if reqs := hub.requests(); len(reqs) != 1 || reqs[0].Range != fmt.Sprintf("bytes=%d-", len(data)) {
		t.Errorf("requests %+v", reqs)
	}
}

func TestPullRejected(t *testing.T) {
	data := stories(t)
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	tests := []struct {
		name    string
		serve   []byte
		size    int64
		sha     string
		is      error
		what    string // ChecksumError.What
		partial []byte // left by an earlier pull
	}{
		{name: "wrong sha256", serve: data, size: int64(len(data)), sha: strings.Repeat("0", 64), is: ErrChecksum, what: "sha256"},
		{name: "wrong sha256 after resume", serve: data, sha: strings.Repeat("ab", 32), is: ErrChecksum, what: "sha256", partial: data[:1000]},
		{name: "resumed onto other bytes", serve: data, size: int64(len(data)), sha: good, is: ErrChecksum, what: "sha256", partial: make([]byte, 1000)},
		{name: "wrong size", serve: data, size: int64(len(data)) + 1, sha: good, is: ErrChecksum, what: "size"},
		{name: "not GGUF", serve: []byte(strings.Repeat("<html>not a model</html>", 100)), is: gguf.ErrNotGGUF},
		{name: "truncated GGUF", serve: data[:len(data)/2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newHub(t)
			hub.files["o/r/m.gguf"] = tt.serve
			s := hub.store(t)
			s.Catalog = []CatalogEntry{{Alias: "m", Ref: "hf://o/r/m.gguf", Size: tt.size, SHA256: tt.sha}}
			if tt.partial != nil {
				writeFile(t, s.Dirs[0], "o/r/m.gguf.partial", tt.partial)
			}
			_, err := s.Pull(testCtx(t), "m", nil)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not match %v", err, tt.is)
			}
			var ce *ChecksumError
			if errors.As(err, &ce) != (tt.what != "") || ce != nil && ce.What != tt.what {
				t.Errorf("error %#v, want a ChecksumError of %q", err, tt.what)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has several lines: %q", err)
			}
			if entries, err := os.ReadDir(s.Dirs[0]); err != nil || len(entries) != 0 {
				t.Errorf("left in the store: %v, %v", entries, err)
			}
			if _, err := s.Resolve("m"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Resolve after a rejected pull: %v", err)
			}
		})
	}
}

func TestPullHTTPErrors(t *testing.T) {
	data := stories(t)
	tests := []struct {
		name     string
		status   int
		code     string
		token    string
		retries  int
		notFound bool
		unauth   bool
		msg      string
		reqs     int
	}{
		{name: "404", status: 404, code: "EntryNotFound", notFound: true, msg: "404 Not Found (no such repository or file", reqs: 1},
		{name: "401", status: 401, unauth: true, msg: "set HF_TOKEN", reqs: 1},
		{name: "401 with token", status: 401, token: "tok", unauth: true, msg: "token in HF_TOKEN was refused", reqs: 1},
		{name: "401 repo not found", status: 401, code: "RepoNotFound", notFound: true, unauth: true, msg: "HF_TOKEN", reqs: 1},
		{name: "403 gated", status: 403, code: "GatedRepo", unauth: true, msg: "gated", reqs: 1},
		{name: "429", status: 429, msg: "rate limited", reqs: 1},
		{name: "500", status: 500, msg: "500 Internal Server Error (server error", reqs: 1},
		{name: "500 retried", status: 500, retries: 2, msg: "500", reqs: 3},
		{name: "418", status: 418, msg: "418", reqs: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := newHub(t)
			hub.files[storiesPath] = data
			hub.hook = func(w http.ResponseWriter, r *http.Request, _ []byte, _ int) bool {
				if tt.code != "" {
					w.Header().Set("X-Error-Code", tt.code)
				}
				http.Error(w, "no", tt.status)
				return true
			}
			s := hub.store(t)
			s.Token, s.Retries = tt.token, tt.retries
			_, err := s.Pull(testCtx(t), "stories260k", nil)
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != tt.status || he.TokenSent != (tt.token != "") {
				t.Fatalf("error %#v, want an HTTPError %d", err, tt.status)
			}
			if errors.Is(err, ErrNotFound) != tt.notFound || errors.Is(err, ErrUnauthorized) != tt.unauth {
				t.Errorf("error %v: ErrNotFound %v, ErrUnauthorized %v", err, errors.Is(err, ErrNotFound), errors.Is(err, ErrUnauthorized))
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "/resolve/main/tinyllamas/stories260K.gguf") {
				t.Errorf("error %q does not say %q and the URL", err, tt.msg)
			}
			reqs := hub.requests()
			if len(reqs) != tt.reqs {
				t.Errorf("%d requests, want %d", len(reqs), tt.reqs)
			}
			for _, r := range reqs {
				if want := map[bool]string{true: "Bearer " + tt.token, false: ""}[tt.token != ""]; r.Auth != want {
					t.Errorf("Authorization %q, want %q", r.Auth, want)
				}
			}
			if entries, err := os.ReadDir(s.Dirs[0]); err != nil || len(entries) != 0 {
				t.Errorf("left in the store: %v, %v", entries, err)
			}
		})
	}
}

func TestPullToken(t *testing.T) {
	data := stories(t)
	hub := newHub(t)
	hub.files[storiesPath] = data
	hub.hook = func(w http.ResponseWriter, r *http.Request, _ []byte, _ int) bool {
		if r.Header.Get("Authorization") != "Bearer secret" {
			http.Error(w, "gated", http.StatusUnauthorized)
			return true
		}
		return false
	}
	ctx := testCtx(t)
	if _, err := hub.store(t).Pull(ctx, "stories260k", nil); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Errorf("without a token: %v", err)
	}
	s := hub.store(t)
	s.Token = "secret"
	if _, err := s.Pull(ctx, "stories260k", nil); err != nil {
		t.Errorf("with Store.Token: %v", err)
	}
	t.Setenv(EnvToken, "secret")
	if _, err := hub.store(t).Pull(ctx, "stories260k", nil); err != nil {
		t.Errorf("with $HF_TOKEN: %v", err)
	}
}

func TestPullEndpointFromEnv(t *testing.T) {
	hub := newHub(t)
	hub.files[storiesPath] = stories(t)
	t.Setenv(EnvEndpoint, hub.srv.URL+"/")
	s := &Store{Dirs: []string{t.TempDir()}}
	if _, err := s.Pull(testCtx(t), "stories260k", nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvEndpoint, "ftp://example.com")
	if _, err := (&Store{Dirs: []string{t.TempDir()}}).Pull(testCtx(t), "stories260k", nil); err == nil || !strings.Contains(err.Error(), "endpoint") {
		t.Errorf("bad endpoint: %v", err)
	}
}

func TestPullCancel(t *testing.T) {
	data := stories(t)
	hub := newHub(t)
	hub.files[storiesPath] = data
	var slow atomic.Bool
	slow.Store(true)
	hub.hook = func(w http.ResponseWriter, r *http.Request, data []byte, _ int) bool {
		if !slow.Load() {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		for off := 0; off < len(data); off += 8 << 10 {
			if _, err := w.Write(data[off:min(off+8<<10, len(data))]); err != nil {
				return true
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return true
			case <-time.After(20 * time.Millisecond):
			}
		}
		return true
	}
	s := hub.store(t)
	dest := filepath.Join(s.Dirs[0], filepath.FromSlash(storiesPath))
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	var cancelled time.Time
	_, err := s.Pull(ctx, "stories260k", &PullOptions{Progress: func(p Progress) {
		if p.Done >= 32<<10 && cancelled.IsZero() {
			cancelled = time.Now()
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(cancelled); d > 2*time.Second {
		t.Errorf("Pull returned %v after the cancellation", d)
	}
	st, err := os.Stat(dest + ".partial")
	if err != nil || st.Size() < 32<<10 || st.Size() >= int64(len(data)) {
		t.Fatalf("partial file %v, %v", st, err)
	}
	if isFile(dest) || isFile(dest+".lock") {
		t.Error("cancelled pull left the file or its lock")
	}

	// A new pull resumes.
	slow.Store(false)
	p, err := s.Pull(testCtx(t), "stories260k", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, p, data)
	reqs := hub.requests()
	if want := fmt.Sprintf("bytes=%d-", st.Size()); len(reqs) != 2 || reqs[1].Range != want {
		t.Errorf("requests %+v, want the second with Range %s", reqs, want)
	}
}

func TestPullConcurrent(t *testing.T) {
	data := stories(t)
	hub := newHub(t)
	hub.files[storiesPath] = data
	started := make(chan struct{})
	release := make(chan struct{})
	hub.hook = func(w http.ResponseWriter, r *http.Request, _ []byte, n int) bool {
		if n == 1 {
			close(started)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return false
	}
	dir := t.TempDir()
	ctx := testCtx(t)
	const n = 4
	paths := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	pull := func(i int) {
		defer wg.Done()
		// Separate Store values, as in separate processes.
		s := &Store{Dirs: []string{dir}, Endpoint: hub.srv.URL, Client: hub.srv.Client()}
		paths[i], errs[i] = s.Pull(ctx, "stories260k", nil)
	}
	wg.Add(n)
	go pull(0)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("first download did not start")
	}
	for i := 1; i < n; i++ {
		go pull(i)
	}
	time.Sleep(200 * time.Millisecond) // let the others wait for the lock
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Errorf("pull %d: %s, %v", i, paths[i], errs[i])
		}
	}
	checkSame(t, paths[0], data)
	checkClean(t, dir)
	if c := hub.count("stories260K.gguf"); c != 1 {
		t.Errorf("%d downloads, want 1", c)
	}
}

func TestPullHostile(t *testing.T) {
	hub := newHub(t)
	hub.fail = true
	s := hub.store(t)
	ctx := testCtx(t)
	for _, ref := range hostileRefs {
		if _, err := s.Pull(ctx, ref, nil); !errors.Is(err, ErrInvalidRef) && !errors.Is(err, ErrNotFound) {
			t.Errorf("Pull(%q): %v", ref, err)
		} else if strings.HasPrefix(strings.ToLower(ref), "hf://") && !errors.Is(err, ErrInvalidRef) {
			t.Errorf("Pull(%q): %v, want ErrInvalidRef", ref, err)
		}
		if _, err := s.Resolve(ref); err == nil {
			t.Errorf("Resolve(%q) succeeded", ref)
		}
	}
	// A hostile catalog entry.
	s.Catalog = []CatalogEntry{{Alias: "evil", Ref: "hf://a/b/../../../evil.gguf"}}
	if _, err := s.Pull(ctx, "evil", nil); !errors.Is(err, ErrInvalidRef) {
		t.Errorf("hostile catalog entry: %v", err)
	}
	if files := filesUnder(t, filepath.Dir(s.Dirs[0])); len(files) != 0 {
		t.Errorf("files written: %v", files)
	}
}

// The file names in a Hugging Face API response are checked like those of
// references: a hostile server cannot make Pull write outside the store.
func TestPullHostileAPI(t *testing.T) {
	hub := newHub(t)
	data := stories(t)
	hub.api["o/r"] = `{"siblings":[
		{"rfilename":"../../../evil-Q4_K_M.gguf"},
		{"rfilename":"/tmp/evil-Q4_K_M.gguf"},
		{"rfilename":"a\\..\\..\\evil-Q4_K_M.gguf"},
		{"rfilename":"sub/../../evil-Q4_K_M.gguf"},
		{"rfilename":"C:/evil-Q4_K_M.gguf"},
		{"rfilename":"ok-Q8_0.gguf"}]}`
	hub.files["o/r/ok-Q8_0.gguf"] = data
	root := t.TempDir()
	s := hub.store(t)
	s.Dirs = []string{filepath.Join(root, "a", "b", "store")}
	ctx := testCtx(t)
	if _, err := s.Pull(ctx, "o/r", nil); !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "ok-Q8_0.gguf") || strings.Contains(err.Error(), "evil") {
		t.Errorf("error %v, want ErrNoMatch listing only ok-Q8_0.gguf", err)
	}
	if p, err := s.Pull(ctx, "o/r:Q8_0", nil); err != nil || p != filepath.Join(s.Dirs[0], "o", "r", "ok-Q8_0.gguf") {
		t.Errorf("o/r:Q8_0: %s, %v", p, err)
	}
	for _, f := range filesUnder(t, root) {
		if f != "a/b/store/o/r/ok-Q8_0.gguf" {
			t.Errorf("unexpected file %s", f)
		}
	}
}

func TestPullRepo(t *testing.T) {
	data := stories(t)
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	hub := newHub(t)
	split := func(k int) string { return fmt.Sprintf("Q2_K/model-Q2_K-%05d-of-00003.gguf", k) }
	hub.api["o/r"] = fmt.Sprintf(`{"id":"o/r","siblings":[
		{"rfilename":"README.md","size":10},
		{"rfilename":"model-Q4_K_M.gguf","size":%[1]d},
		{"rfilename":"model-Q4_K.gguf"},
		{"rfilename":"model-Q8_0.gguf","size":%[1]d,"lfs":{"sha256":"%[2]s","size":%[1]d}},
		{"rfilename":"mmproj-model-Q8_0.gguf"},
		{"rfilename":"model-Q4_K_S.gguf","lfs":{"sha256":"%[3]s","size":%[1]d}},
		{"rfilename":"model-Q3_K_M.gguf","size":%[4]d},
		{"rfilename":"%[5]s"},{"rfilename":"%[6]s"},{"rfilename":"%[7]s"},
		{"rfilename":"model-Q6_K-00001-of-00002.gguf"}]}`,
		len(data), good, strings.Repeat("0", 64), len(data)+5, split(1), split(2), split(3))
	for _, f := range []string{"model-Q4_K_M.gguf", "model-Q4_K.gguf", "model-Q8_0.gguf", "mmproj-model-Q8_0.gguf", "model-Q4_K_S.gguf", "model-Q3_K_M.gguf", split(1), split(2), split(3), "model-Q6_K-00001-of-00002.gguf"} {
		hub.files["o/r/"+f] = data
	}
	s := hub.store(t)
	s.Token = "tok"
	ctx := testCtx(t)
	tests := []struct {
		ref   string
		want  string // the returned file, relative to the store
		files []string
		is    error
	}{
		{ref: "o/r", want: "o/r/model-Q4_K_M.gguf"},
		{ref: "hf://o/r:q8_0", want: "o/r/model-Q8_0.gguf"},
		{ref: "o/r:Q4_K", want: "o/r/model-Q4_K.gguf"},
		{ref: "o/r:Q2_K", want: "o/r/" + split(1), files: []string{"o/r/" + split(2), "o/r/" + split(3)}},
		{ref: "o/r:IQ1_S", is: ErrNoMatch},
		{ref: "o/r:Q4_K_S", is: ErrChecksum},     // the API's sha256 is checked
		{ref: "o/r:Q3_K_M", is: ErrChecksum},     // and its size
		{ref: "o/r:Q6_K", is: ErrIncomplete},     // part 2 is not in the repository
		{ref: "o/nothere:Q8_0", is: ErrNotFound}, // the API says RepoNotFound
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			p, err := s.Pull(ctx, tt.ref, nil)
			if tt.is != nil {
				if !errors.Is(err, tt.is) {
					t.Fatalf("error %v, want %v", err, tt.is)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(s.Dirs[0], filepath.FromSlash(tt.want)); p != want {
				t.Errorf("path %s, want %s", p, want)
			}
			for _, f := range append([]string{tt.want}, tt.files...) {
				checkSame(t, filepath.Join(s.Dirs[0], filepath.FromSlash(f)), data)
			}
			// Resolve finds it without the network.
			before := len(hub.requests())
			if q, err := s.Resolve(tt.ref); err != nil || q != p {
				t.Errorf("Resolve: %s, %v", q, err)
			}
			if len(hub.requests()) != before {
				t.Error("Resolve made a request")
			}
		})
	}
	for _, r := range hub.requests() {
		if r.Auth != "Bearer tok" {
			t.Errorf("%s: Authorization %q", r.Path, r.Auth)
		}
	}
	checkClean(t, s.Dirs[0])

	// A missing part makes the model incomplete: Resolve says so, and Pull
	// downloads that part only.
	part2 := filepath.Join(s.Dirs[0], "o", "r", filepath.FromSlash(split(2)))
	if err := os.Remove(part2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve("o/r:Q2_K"); !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), "00002-of-00003") {
		t.Errorf("Resolve with a part missing: %v", err)
	}
	before := hub.count(".gguf")
	if _, err := s.Pull(ctx, "o/r:Q2_K", nil); err != nil {
		t.Fatal(err)
	}
	if got := hub.count(".gguf") - before; got != 1 || hub.count(split(2)) != 2 {
		t.Errorf("%d files downloaded, want part 2 only", got)
	}

	// Naming any part of a split file pulls them all and returns the first.
	s2 := hub.store(t)
	p, err := s2.Pull(ctx, "hf://o/r/"+split(3), nil)
	if err != nil || p != filepath.Join(s2.Dirs[0], "o", "r", filepath.FromSlash(split(1))) {
		t.Fatalf("hf:// part 3: %s, %v", p, err)
	}
	if got := len(filesUnder(t, s2.Dirs[0])); got != 3 {
		t.Errorf("%d files, want 3 parts", got)
	}
}

func TestOffline(t *testing.T) {
	data := stories(t)
	hub := newHub(t)
	hub.fail = true // Offline must not make any request
	s := hub.store(t)
	s.Offline = true
	ctx := testCtx(t)
	for _, ref := range []string{"stories260k", "hf://o/r/x.gguf", "o/r:Q8_0", "o/r", "hf://o/r", storiesPath} {
		_, err := s.Pull(ctx, ref, nil)
		if !errors.Is(err, ErrOffline) || !errors.Is(err, ErrNotFound) {
			t.Errorf("Pull(%q): %v, want ErrOffline and ErrNotFound", ref, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "offline") || !strings.Contains(msg, "llamago pull") || strings.Contains(msg, "\n") {
			t.Errorf("Pull(%q): message %q", ref, msg)
		}
	}
	// Not a pullable reference: the usual not-found error.
	if _, err := s.Pull(ctx, "nothing-here", nil); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrOffline) {
		t.Errorf("unknown name: %v", err)
	}
	// A model that is present is used.
	want := writeFile(t, s.Dirs[0], storiesPath, data)
	if p, err := s.Pull(ctx, "stories260k", nil); err != nil || p != want {
		t.Errorf("present model offline: %s, %v", p, err)
	}
	if len(hub.requests()) != 0 {
		t.Errorf("offline requests: %+v", hub.requests())
	}
}

// A server that cannot be reached gives an error naming the URL, after the
// retries, and leaves nothing in the store.
func TestPullUnreachable(t *testing.T) {
	hub := newHub(t)
	url := hub.srv.URL
	hub.srv.Close() // nothing listens there now
	s := &Store{Dirs: []string{t.TempDir()}, Endpoint: url, Retries: 1}
	start := time.Now()
	_, err := s.Pull(testCtx(t), "stories260k", nil)
	var he *HTTPError
	if err == nil || errors.As(err, &he) || !strings.Contains(err.Error(), url+"/ggml-org/models/resolve/main/") {
		t.Errorf("error %v, want a network error naming the URL", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if entries, err := os.ReadDir(s.Dirs[0]); err != nil || len(entries) != 0 {
		t.Errorf("left in the store: %v, %v", entries, err)
	}
}
