package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/models"
)

// storiesRepoFile is where the catalog alias stories260k lives on the hub,
// and in the store, below the store directory.
const storiesRepoFile = "ggml-org/models/tinyllamas/stories260K.gguf"

// testStore points the model store at a new temporary directory, and the
// hub at a closed port on the loopback interface, for the rest of the
// test. It returns the store directory.
func testStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	t.Setenv(models.EnvModels, dir)
	t.Setenv(models.EnvEndpoint, "http://127.0.0.1:1")
	t.Setenv(models.EnvToken, "")
	return dir
}

// copyFile copies the file src to dst, creating directories.
func copyFile(t testing.TB, src, dst string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, dst, b)
	return dst
}

func writeTestFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hubRequest is what the fake hub saw of a request.
type hubRequest struct {
	Path, Range, Auth string
}

// A fakeHub is a Hugging Face hub on the loopback interface: it serves
// files, with Range support, and the model API's list of files.
type fakeHub struct {
	srv *httptest.Server

	mu     sync.Mutex
	files  map[string][]byte // "OWNER/REPO/FILE" -> content
	status map[string]int    // "OWNER/REPO/FILE" -> an error status to answer with
	reqs   []hubRequest
}

// newFakeHub starts a fake hub and points HF_ENDPOINT at it.
func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	h := &fakeHub{files: map[string][]byte{}, status: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	t.Setenv(models.EnvEndpoint, h.srv.URL)
	return h
}

func (h *fakeHub) add(file string, b []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[file] = b
}

func (h *fakeHub) requests() []hubRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hubRequest(nil), h.reqs...)
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.reqs = append(h.reqs, hubRequest{Path: r.URL.Path, Range: r.Header.Get("Range"), Auth: r.Header.Get("Authorization")})
	h.mu.Unlock()

	if repo, ok := strings.CutPrefix(r.URL.Path, "/api/models/"); ok {
		type sib struct {
			RFilename string `json:"rfilename"`
			Size      int64  `json:"size"`
		}
		var resp struct {
			Siblings []sib `json:"siblings"`
		}
		h.mu.Lock()
		for name, b := range h.files {
			if rest, ok := strings.CutPrefix(name, repo+"/"); ok {
				resp.Siblings = append(resp.Siblings, sib{RFilename: rest, Size: int64(len(b))})
			}
		}
		h.mu.Unlock()
		if resp.Siblings == nil {
			w.Header().Set("X-Error-Code", "RepoNotFound")
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(resp)
		return
	}
	// /OWNER/REPO/resolve/main/FILE
	segs := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 5)
	if len(segs) < 5 || segs[2] != "resolve" || segs[3] != "main" {
		http.NotFound(w, r)
		return
	}
	name := segs[0] + "/" + segs[1] + "/" + segs[4]
	h.mu.Lock()
	b, ok := h.files[name]
	code := h.status[name]
	h.mu.Unlock()
	switch {
	case code == http.StatusForbidden:
		w.Header().Set("X-Error-Code", "GatedRepo")
		http.Error(w, "gated", code)
		return
	case code != 0:
		http.Error(w, http.StatusText(code), code)
		return
	case !ok:
		w.Header().Set("X-Error-Code", "EntryNotFound")
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

// splitGGUF writes the GGUF model src as n parts dir/PREFIX-0000K-of-0000N.gguf,
// as llama.cpp's gguf-split does: the metadata in the first part, the
// tensors shared out in order, and split.no, split.count and
// split.tensors.count in each part. It returns the paths of the parts.
func splitGGUF(t testing.TB, src, dir, prefix string, n int) []string {
	t.Helper()
	fp, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	per := (len(f.Tensors) + n - 1) / n
	var paths []string
	for k := range n {
		part := &gguf.File{}
		if k == 0 {
			part.KV = append(part.KV, f.KV...)
		}
		part.KV = append(part.KV,
			gguf.KV{Key: "split.no", Value: gguf.Uint16Value(uint16(k))},
			gguf.KV{Key: "split.count", Value: gguf.Uint16Value(uint16(n))},
			gguf.KV{Key: "split.tensors.count", Value: gguf.Int32Value(int32(len(f.Tensors)))})
		lo, hi := min(k*per, len(f.Tensors)), min((k+1)*per, len(f.Tensors))
		part.Tensors = append(part.Tensors, f.Tensors[lo:hi]...)
		var buf bytes.Buffer
		err := gguf.Write(&buf, part, func(i int, w io.Writer) error {
			_, err := io.Copy(w, f.TensorReader(fp, lo+i))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("%s-%05d-of-%05d.gguf", prefix, k+1, n))
		writeTestFile(t, p, buf.Bytes())
		paths = append(paths, p)
	}
	return paths
}

// progressLineRE matches the lines of progress in plain (not terminal)
// mode.
var progressLineRE = regexp.MustCompile(`^pulling \S+( \[part \d of \d\])?( \([^)]*\)|: \d+0% \(\S+ \S+ of \S+ \S+\))$`)

// checkProgress checks that stderr is progress lines ending at 100%, for
// each of the files, and returns its lines.
func checkProgress(t *testing.T, stderr string, files ...string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	for _, l := range lines {
		if !progressLineRE.MatchString(l) {
			t.Errorf("stderr line %q is not a progress line", l)
		}
	}
	for _, f := range files {
		var first, last string
		for _, l := range lines {
			if strings.HasPrefix(l, "pulling "+f+" (") || strings.HasPrefix(l, "pulling "+f+": ") {
				if first == "" {
					first = l
				}
				last = l
			}
		}
		if first == "" || !strings.Contains(last, ": 100% (") {
			t.Errorf("progress of %s: first line %q, last %q; want a last line at 100%%\n%s", f, first, last, stderr)
		}
	}
	return lines
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.00 KiB"}, {1185376, "1.13 MiB"}, {50 << 20, "50.0 MiB"},
		{500 << 20, "500 MiB"}, {4 << 30, "4.00 GiB"},
	}
	for _, tt := range tests {
		if got := humanBytes(tt.n); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestPullProgressTerminal(t *testing.T) {
	// On a terminal the progress is a bar with the size, speed and time
	// left, drawn over itself.
	var buf bytes.Buffer
	p := &pullProgress{w: &buf, tty: true, root: "/store"}
	const total = 3 << 20
	for done := int64(0); done <= total; done += 256 << 10 {
		p.update(models.Progress{File: "/store/o/r/m.gguf", Part: 1, Parts: 1, Done: done, Total: total})
	}
	p.end(nil)
	out := buf.String()
	for _, want := range []string{"pulling o/r/m.gguf", "100%", "3.0/3.0 MiB", "\r"} {
		if !strings.Contains(out, want) {
			t.Errorf("bar output lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("bar output does not end its line: %q", out)
	}

	// A resumed download shows the bytes left, from the point it resumed.
	buf.Reset()
	p = &pullProgress{w: &buf, tty: true}
	p.update(models.Progress{File: "m.gguf", Part: 1, Parts: 1, Done: 2 << 20, Total: total})
	p.update(models.Progress{File: "m.gguf", Part: 1, Parts: 1, Done: total, Total: total})
	p.end(nil)
	if out := buf.String(); !strings.Contains(out, "resuming at 2.00 MiB") || !strings.Contains(out, "1.0/1.0 MiB") {
		t.Errorf("resumed bar: %q", out)
	}

	// An unknown size gives a spinner, and a failure ends the line.
	buf.Reset()
	p = &pullProgress{w: &buf, tty: true}
	p.update(models.Progress{File: "m.gguf", Part: 1, Parts: 1, Done: 0, Total: -1})
	p.update(models.Progress{File: "m.gguf", Part: 1, Parts: 1, Done: 1000, Total: -1})
	p.end(fmt.Errorf("boom"))
	if out := buf.String(); !strings.Contains(out, "pulling m.gguf") || !strings.HasSuffix(out, "\n") {
		t.Errorf("spinner: %q", out)
	}
}

func TestPullProgressPlain(t *testing.T) {
	var buf bytes.Buffer
	p := &pullProgress{w: &buf, root: "/store"}
	const total = 1000
	for _, done := range []int64{0, 50, 99, 100, 350, 999, 1000} {
		p.update(models.Progress{File: "/store/o/r/m.gguf", Part: 1, Parts: 1, Done: done, Total: total})
	}
	// A retry that starts over.
	p.update(models.Progress{File: "/store/o/r/m.gguf", Part: 1, Parts: 1, Done: 0, Total: total})
	p.update(models.Progress{File: "/store/o/r/m.gguf", Part: 1, Parts: 1, Done: 1000, Total: total})
	// The second part of a split model, of unknown size.
	p.update(models.Progress{File: "/store/o/r/m-00002-of-00002.gguf", Part: 2, Parts: 2, Done: 0, Total: -1})
	p.update(models.Progress{File: "/store/o/r/m-00002-of-00002.gguf", Part: 2, Parts: 2, Done: 2048, Total: -1})
	p.end(nil)
	got := buf.String()
	want := `pulling o/r/m.gguf (1000 B)
pulling o/r/m.gguf: 10% (100 B of 1000 B)
pulling o/r/m.gguf: 30% (350 B of 1000 B)
pulling o/r/m.gguf: 90% (999 B of 1000 B)
pulling o/r/m.gguf: 100% (1000 B of 1000 B)
pulling o/r/m.gguf (1000 B)
pulling o/r/m.gguf: 100% (1000 B of 1000 B)
pulling o/r/m-00002-of-00002.gguf [part 2 of 2] (size unknown)
`
	if !strings.HasPrefix(got, want) || !regexp.MustCompile(`\npulling o/r/m-00002-of-00002.gguf \[part 2 of 2\]: done \(2.00 KiB in \S+\)\n$`).MatchString(got) {
		t.Errorf("progress:\n%s\nwant:\n%s[done line]", got, want)
	}
}

func TestPullListRemove(t *testing.T) {
	store := testStore(t)
	hub := newFakeHub(t)
	stories, err := os.ReadFile(modelPath(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	hub.add(storiesRepoFile, stories)
	want := filepath.Join(store, filepath.FromSlash(storiesRepoFile))

	// Nothing yet.
	stdout, stderr, code := cli(t, "", "ls")
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "no models in "+store) {
		t.Errorf("ls of an empty store: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, _, code = cli(t, "", "ls", "--json")
	if code != exitOK || stdout != "[]\n" {
		t.Errorf("ls --json of an empty store: exit %d, stdout %q", code, stdout)
	}

	// The alias, from the catalog, with its size and SHA-256 checked.
	stdout, stderr, code = cli(t, "", "pull", "stories260k")
	if code != exitOK || stdout != want+"\n" {
		t.Fatalf("pull: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	lines := checkProgress(t, stderr, storiesRepoFile)
	if lines[0] != "pulling "+storiesRepoFile+" (1.13 MiB)" {
		t.Errorf("first progress line %q", lines[0])
	}
	if b, err := os.ReadFile(want); err != nil || !bytes.Equal(b, stories) {
		t.Errorf("pulled file: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(want)); len(entries) != 1 {
		t.Errorf("left beside the model: %v", entries)
	}

	// Pulled already: no request, no progress.
	n := len(hub.requests())
	stdout, stderr, code = cli(t, "", "pull", "hf://"+storiesRepoFile)
	if code != exitOK || stdout != want+"\n" || stderr != "" || len(hub.requests()) != n {
		t.Errorf("second pull: exit %d, stdout %q, stderr %q, %d requests", code, stdout, stderr, len(hub.requests())-n)
	}

	// A split model from a repository and quantization.
	splitDir := t.TempDir()
	parts := splitGGUF(t, modelPath(t, "stories260K.gguf"), splitDir, "stories-Q8_0", 2)
	for _, p := range parts {
		b, _ := os.ReadFile(p)
		hub.add("acme/Stories-GGUF/"+filepath.Base(p), b)
	}
	hub.add("acme/Stories-GGUF/stories-F16.gguf", stories)
	stdout, stderr, code = cli(t, "", "pull", "acme/Stories-GGUF:Q8_0")
	wantSplit := filepath.Join(store, "acme", "Stories-GGUF", "stories-Q8_0-00001-of-00002.gguf")
	if code != exitOK || stdout != wantSplit+"\n" {
		t.Fatalf("pull split: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	checkProgress(t, stderr, "acme/Stories-GGUF/stories-Q8_0-00001-of-00002.gguf [part 1 of 2]",
		"acme/Stories-GGUF/stories-Q8_0-00002-of-00002.gguf [part 2 of 2]")

	// ls: one line for the split model, the alias for stories.
	stdout, stderr, code = cli(t, "", "ls")
	if code != exitOK || stderr != "" {
		t.Fatalf("ls: exit %d, stderr %q", code, stderr)
	}
	rows := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(rows) != 3 || !regexp.MustCompile(`^NAME +SIZE +QUANT +ARCH +PATH$`).MatchString(rows[0]) {
		t.Fatalf("ls:\n%s", stdout)
	}
	splitSize := int64(0)
	for _, p := range parts {
		st, _ := os.Stat(p)
		splitSize += st.Size()
	}
	wantRows := []*regexp.Regexp{
		regexp.MustCompile(`^acme/Stories-GGUF/stories-Q8_0-00001-of-00002\.gguf +` + regexp.QuoteMeta(humanBytes(splitSize)) + ` \(2 parts\) +- +llama +` + regexp.QuoteMeta(wantSplit) + `$`),
		regexp.MustCompile(`^stories260k +1\.13 MiB +- +llama +` + regexp.QuoteMeta(want) + `$`),
	}
	for i, re := range wantRows {
		if !re.MatchString(rows[i+1]) {
			t.Errorf("ls row %q, want %v", rows[i+1], re)
		}
	}
	// The columns line up.
	if col := strings.Index(rows[0], "SIZE"); rows[1][col-2:col] != "  " || rows[2][col-2:col] != "  " {
		t.Errorf("ls columns not aligned:\n%s", stdout)
	}

	stdout, _, code = cli(t, "", "ls", "--json")
	var list []listJSON
	if err := json.Unmarshal([]byte(stdout), &list); code != exitOK || err != nil || len(list) != 2 {
		t.Fatalf("ls --json: exit %d, %v: %s", code, err, stdout)
	}
	if m := list[1]; m.Name != storiesRepoFile || m.Alias != "stories260k" || m.Path != want || m.Dir != store ||
		m.Size != int64(len(stories)) || m.Parts != 1 || m.Arch != "llama" || m.Error != "" || m.Modified.IsZero() {
		t.Errorf("ls --json: %+v", m)
	}
	if m := list[0]; m.Parts != 2 || m.Size != splitSize {
		t.Errorf("ls --json, split model: %+v", m)
	}

	// The split model loads.
	stdout, stderr, code = cli(t, "", "run", "-m", "acme/Stories-GGUF:Q8_0", "-t", "1", "--temp", "0", "-n", "30", "Once upon a time")
	if code != exitOK || !strings.HasPrefix(stdout, storiesGreedy) || stderr != "" {
		t.Errorf("run split model: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// rm: every part, and the directories left empty.
	stdout, stderr, code = cli(t, "", "rm", "acme/Stories-GGUF:Q8_0", "stories260k")
	wantOut := "deleted " + wantSplit + "\ndeleted " + strings.Replace(wantSplit, "00001-of", "00002-of", 1) + "\ndeleted " + want + "\n"
	if code != exitOK || stdout != wantOut || stderr != "" {
		t.Errorf("rm: exit %d, stdout %q, want %q, stderr %q", code, stdout, wantOut, stderr)
	}
	if entries, err := os.ReadDir(store); err != nil || len(entries) != 0 {
		t.Errorf("store after rm: %v, %v", entries, err)
	}
	_, stderr, code = cli(t, "", "rm", "stories260k")
	if code != exitError || !strings.Contains(stderr, `model "stories260k" not found`) {
		t.Errorf("rm of a missing model: exit %d, stderr %q", code, stderr)
	}
	oneLine(t, stderr)
	outside := copyFile(t, modelPath(t, "stories260K.gguf"), filepath.Join(t.TempDir(), "x.gguf"))
	_, stderr, code = cli(t, "", "rm", outside)
	if code != exitError || !strings.Contains(stderr, "not in the model store") {
		t.Errorf("rm outside the store: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("rm outside the store deleted the file: %v", err)
	}
}

func TestPullResume(t *testing.T) {
	store := testStore(t)
	hub := newFakeHub(t)
	stories, err := os.ReadFile(modelPath(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	hub.add(storiesRepoFile, stories)
	dest := filepath.Join(store, filepath.FromSlash(storiesRepoFile))
	half := len(stories) / 2
	writeTestFile(t, dest+".partial", stories[:half])

	stdout, stderr, code := cli(t, "", "pull", "stories260k")
	if code != exitOK || stdout != dest+"\n" {
		t.Fatalf("pull: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	lines := checkProgress(t, stderr, storiesRepoFile)
	if want := fmt.Sprintf("pulling %s (1.13 MiB, resuming at %s)", storiesRepoFile, humanBytes(int64(half))); lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	reqs := hub.requests()
	if len(reqs) != 1 || reqs[0].Range != fmt.Sprintf("bytes=%d-", half) {
		t.Errorf("requests %+v, want one for the second half", reqs)
	}
	if b, _ := os.ReadFile(dest); !bytes.Equal(b, stories) {
		t.Error("resumed download differs")
	}
	if _, err := os.Stat(dest + ".partial"); err == nil {
		t.Error("partial file left")
	}

	// A complete partial download: nothing left to fetch, still checked.
	os.Remove(dest)
	writeTestFile(t, dest+".partial", stories)
	stdout, stderr, code = cli(t, "", "pull", "stories260k")
	if code != exitOK || stdout != dest+"\n" {
		t.Fatalf("pull: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	lines = checkProgress(t, stderr, storiesRepoFile)
	if want := "pulling " + storiesRepoFile + " (1.13 MiB, resuming at 1.13 MiB)"; len(lines) != 2 || lines[0] != want {
		t.Errorf("progress %q, want %q and the 100%% line", lines, want)
	}
}

func TestPullErrors(t *testing.T) {
	store := testStore(t)
	hub := newFakeHub(t)
	stories, err := os.ReadFile(modelPath(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}

	// A file that is not the catalog's: deleted, not stored.
	bad := bytes.Clone(stories)
	bad[len(bad)-1] ^= 1
	hub.add(storiesRepoFile, bad)
	_, stderr, code := cli(t, "", "pull", "stories260k")
	if code != exitError || !strings.Contains(stderr, "sha256 mismatch") {
		t.Errorf("corrupt download: exit %d, stderr %q", code, stderr)
	}
	if !strings.HasSuffix(stderr, "\n") || !strings.HasPrefix(stderr[strings.LastIndex(strings.TrimSuffix(stderr, "\n"), "\n")+1:], "llamago: ") {
		t.Errorf("stderr does not end with the error line: %q", stderr)
	}
	if files, _ := filepath.Glob(filepath.Join(store, "*")); len(files) != 0 {
		t.Errorf("left in the store: %v", files)
	}

	// --offline never makes a request.
	hub.add(storiesRepoFile, stories)
	n := len(hub.requests())
	for _, args := range [][]string{
		{"--offline", "pull", "stories260k"},
		{"pull", "--offline", "hf://" + storiesRepoFile},
		{"run", "--offline", "-m", "stories260k", "hi"},
		{"--offline", "tokenize", "-m", "acme/Stories-GGUF", "-p", "hi"},
	} {
		stdout, stderr, code := cli(t, "", args...)
		if code != exitError || stdout != "" || !strings.Contains(stderr, "offline mode is on, not downloading") ||
			!strings.Contains(stderr, "pull it when online with: llamago pull ") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
		oneLine(t, stderr)
	}
	if len(hub.requests()) != n {
		t.Errorf("--offline made %d requests", len(hub.requests())-n)
	}

	// HF_TOKEN goes to the hub; a gated repository says what to do.
	t.Setenv(models.EnvToken, "secret")
	hub.add("acme/Gated-GGUF/m-Q4_K_M.gguf", stories)
	hub.status["acme/Gated-GGUF/m-Q4_K_M.gguf"] = http.StatusForbidden
	_, stderr, code = cli(t, "", "pull", "acme/Gated-GGUF")
	if code != exitError || !strings.Contains(stderr, "gated") || !strings.Contains(stderr, "HF_TOKEN") {
		t.Errorf("gated: exit %d, stderr %q", code, stderr)
	}
	oneLine(t, stderr)
	for _, r := range hub.requests()[n:] {
		if r.Auth != "Bearer secret" {
			t.Errorf("request %s: Authorization %q", r.Path, r.Auth)
		}
	}

	// Nothing of that quantization; no such repository.
	_, stderr, code = cli(t, "", "pull", "acme/Gated-GGUF:Q2_K")
	if code != exitError || !strings.Contains(stderr, `none has "Q2_K" in its name`) {
		t.Errorf("no match: exit %d, stderr %q", code, stderr)
	}
	oneLine(t, stderr)
	_, stderr, code = cli(t, "", "pull", "acme/Nothing-GGUF")
	if code != exitError || !strings.Contains(stderr, "404") {
		t.Errorf("no repository: exit %d, stderr %q", code, stderr)
	}
	oneLine(t, stderr)

	// Usage.
	_, stderr, code = cli(t, "", "pull")
	if code != exitUsage || !strings.Contains(stderr, "no model to pull") {
		t.Errorf("pull without a reference: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = cli(t, "", "pull", "hf://a/b/../c.gguf")
	if code != exitError || !strings.Contains(stderr, "invalid model reference") {
		t.Errorf("bad reference: exit %d, stderr %q", code, stderr)
	}
}

// TestRunModelReference checks that -m takes any reference: a name or
// alias of a model in the store, or one pulled on first use.
func TestRunModelReference(t *testing.T) {
	store := testStore(t)
	stories := modelPath(t, "stories260K.gguf")
	copyFile(t, stories, filepath.Join(store, filepath.FromSlash(storiesRepoFile)))
	copyFile(t, stories, filepath.Join(store, "local", "my-model.gguf"))

	for _, ref := range []string{"stories260k", "stories260K", "hf://" + storiesRepoFile, storiesRepoFile, "my-model", "local/my-model.gguf"} {
		stdout, stderr, code := cli(t, "", "run", "-m", ref, "-t", "1", "--temp", "0", "-n", "30", "Once upon a time")
		if code != exitOK || !strings.HasPrefix(stdout, storiesGreedy) || stderr != "" {
			t.Errorf("run -m %s: exit %d, stdout %q, stderr %q", ref, code, stdout, stderr)
		}
	}
	stdout, stderr, code := cli(t, "", "tokenize", "-m", "my-model", "-p", "Hello", "--ids")
	if code != exitOK || !strings.HasPrefix(stdout, "[1, ") {
		t.Errorf("tokenize -m my-model: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// A name found nowhere: what was searched, and how to get a model.
	stdout, stderr, code = cli(t, "", "run", "-m", "no-such-model", "hi")
	if code != exitError || stdout != "" || !strings.Contains(stderr, `model "no-such-model" not found (searched: `+store+`)`) ||
		!strings.Contains(stderr, "llamago pull") {
		t.Errorf("missing model: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	oneLine(t, stderr)

	// A catalog alias not in the store is pulled first, with progress on
	// stderr.
	os.RemoveAll(store)
	hub := newFakeHub(t)
	b, err := os.ReadFile(stories)
	if err != nil {
		t.Fatal(err)
	}
	hub.add(storiesRepoFile, b)
	stdout, stderr, code = cli(t, "", "run", "-m", "stories260k", "-t", "1", "--temp", "0", "-n", "30", "Once upon a time")
	if code != exitOK || !strings.HasPrefix(stdout, storiesGreedy) {
		t.Fatalf("run with a pull: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	checkProgress(t, stderr, storiesRepoFile)
	if _, err := os.Stat(filepath.Join(store, filepath.FromSlash(storiesRepoFile))); err != nil {
		t.Errorf("not stored: %v", err)
	}
}
