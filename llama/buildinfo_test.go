package llama_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

// TestBuildInfo: the stamp GPU backend libraries are checked against (the
// Source of a bundled build) names the ollama module of go.mod, and the
// commit is the one of the module's llama/build-info.cpp, so that
// upgrading the module without updating them fails here.
func TestBuildInfo(t *testing.T) {
	b := llama.BuildInfo()
	t.Logf("%+v", b)
	if b.Commit == "" || b.Source == "" {
		t.Fatalf("incomplete build info %+v", b)
	}
	if b.System {
		if !strings.Contains(b.String(), "system library") {
			t.Errorf("String() = %q", b.String())
		}
		return
	}
	mod, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/ollama/ollama (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require github.com/ollama/ollama")
	}
	if want := "github.com/ollama/ollama@" + string(m[1]); b.Source != want {
		t.Errorf("Source %q, go.mod has %q: update ggmlSource in buildinfo_bundled.go", b.Source, want)
	}
	// cgo.go's include paths name the module's directory in the module
	// cache.
	cgo, err := os.ReadFile("cgo.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range regexp.MustCompile(`ollama/ollama@(v[^/]+)/`).FindAllSubmatch(cgo, -1) {
		if string(v[1]) != string(m[1]) {
			t.Errorf("cgo.go includes from github.com/ollama/ollama@%s, go.mod has %s", v[1], m[1])
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	info, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "llama", "build-info.cpp"))
	if err != nil {
		t.Fatal(err)
	}
	c := regexp.MustCompile(`LLAMA_COMMIT = "([^"]*)"`).FindSubmatch(info)
	if c == nil || string(c[1]) != b.Commit {
		t.Errorf("commit %q, the module's build-info.cpp says %q", b.Commit, c)
	}
	if want := "llama.cpp "; !strings.HasPrefix("llama.cpp "+b.String(), want+b.Commit+" (vendored in github.com/ollama/ollama v") {
		t.Errorf("String() = %q", b.String())
	}
}
