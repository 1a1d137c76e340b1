package models

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	data := stories(t)
	d1, d2, cwd, elsewhere := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	// The search directories come from $LLAMAGO_MODELS for a zero Store.
	t.Setenv(EnvModels, d1+string(os.PathListSeparator)+d2)
	t.Chdir(cwd)

	w := func(dir, rel string) string { return writeFile(t, dir, rel, data) }
	foo1, _ := w(d1, "foo.gguf"), w(d2, "foo.gguf")
	bar2 := w(d2, "bar.gguf")
	plain := w(d2, "plain")
	alias1 := w(d1, storiesPath)
	named2 := w(d2, "bge-small-en-v1.5.gguf") // a name beats an alias, even in a later directory
	w(d1, "ggml-org/bge-small-en-v1.5-Q8_0-GGUF/bge-small-en-v1.5-q8_0.gguf")
	qwen2 := w(d2, "Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf")
	deep2 := w(d2, "sub/deep.gguf")
	unique2 := w(d2, "x/y/Unique-Name.gguf")
	w(d1, "a/dup.gguf")
	w(d1, "b/dup.gguf")
	big1 := w(d1, "s/big-00001-of-00002.gguf")
	w(d1, "s/big-00002-of-00002.gguf")
	w(d1, "s/half-00001-of-00002.gguf") // part 2 missing
	repo1 := w(d1, "o/r/model-Q8_0.gguf")
	repoDefault1 := w(d1, "o/r/model-Q4_K_M.gguf")
	repoM2 := w(d2, "o/r/model-Q5_K_M.gguf")
	abs := w(elsewhere, "abs.gguf")
	w(cwd, "foo.gguf")
	w(cwd, "local/m.gguf")

	tests := []struct {
		ref  string
		want string
	}{
		{abs, abs},
		{"./foo.gguf", "./foo.gguf"},
		{"foo.gguf", "foo.gguf"}, // an existing file beats a name
		{"local/m.gguf", "local/m.gguf"},
		{"foo", foo1},
		{"bar", bar2},
		{"bar.gguf", bar2},
		{"plain", plain},
		{"stories260k", alias1},
		{"Stories260K", alias1},
		{storiesPath, alias1},
		{"hf://" + storiesPath, alias1},
		{"bge-small-en-v1.5", named2},
		{"qwen2.5-0.5b-instruct", qwen2},
		{"sub/deep", deep2},
		{"unique-name", unique2},
		{"big", big1},
		{"s/big-00001-of-00002.gguf", big1},
		{"o/r:Q8_0", repo1},
		{"hf://o/r:q8_0", repo1},
		{"o/r:Q5_K_M", repoM2},
		{"o/r", repoDefault1},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			for _, s := range []*Store{{}, NewStore(), NewStore(d1, d2), {Dirs: []string{"", d1, d1, d2}}} {
				got, err := s.Resolve(tt.ref)
				if err != nil || got != tt.want {
					t.Errorf("Resolve(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
				}
			}
		})
	}

	errTests := []struct {
		ref      string
		is       error
		contains []string
	}{
		{"nothing", ErrNotFound, []string{`model "nothing" not found (searched: ` + d1 + ", " + d2 + ")", "llamago pull hf://OWNER/REPO/FILE.gguf", "stories260k"}},
		{"all-minilm-l6-v2", ErrNotFound, []string{"pull it with: llamago pull all-minilm-l6-v2, or give a path"}},
		{"hf://o/r/none.gguf", ErrNotFound, []string{"llamago pull hf://o/r/none.gguf"}},
		{"o/nothing", ErrNotFound, []string{"llamago pull o/nothing"}},
		{"o/r:IQ1_S", ErrNotFound, nil},
		{"./missing.gguf", ErrNotFound, []string{`model file "./missing.gguf" not found (searched: ` + filepath.Join(cwd, "missing.gguf") + ")"}},
		{elsewhere, ErrNotFound, nil}, // a directory is not a model
		{"dup", ErrAmbiguous, []string{"a/dup.gguf", "b/dup.gguf"}},
		{"s/half-00001-of-00002.gguf", ErrIncomplete, []string{"half-00002-of-00002.gguf is missing"}},
		{"hf://a/../b.gguf", ErrInvalidRef, nil},
	}
	for _, tt := range errTests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := new(Store).Resolve(tt.ref)
			if !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("several lines: %q", msg)
			}
			for _, c := range tt.contains {
				if !strings.Contains(msg, c) {
					t.Errorf("error %q does not contain %q", msg, c)
				}
			}
			var nf *NotFoundError
			if errors.Is(err, ErrNotFound) && (!errors.As(err, &nf) || nf.Ref != tt.ref) {
				t.Errorf("error %#v is not a *NotFoundError for %q", err, tt.ref)
			}
		})
	}
}

func TestDefaultDirs(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "cache"))
	t.Setenv("LocalAppData", home) // Windows
	t.Setenv(EnvModels, "")
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := DefaultDirs()
	if want := filepath.Join(cache, "llamago", "models"); err != nil || len(dirs) != 1 || dirs[0] != want {
		t.Errorf("DefaultDirs() = %q, %v; want %s", dirs, err, want)
	}
	if !strings.HasPrefix(dirs[0], home) {
		t.Errorf("%s is not under the test's HOME", dirs[0])
	}
	if _, err := new(Store).Resolve("nothing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve: %v", err)
	}
	if _, err := new(Store).List(); err != nil {
		t.Errorf("List: %v", err)
	}
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Errorf("the default directory was created: %v", err)
	}

	sep := string(os.PathListSeparator)
	t.Setenv(EnvModels, "a"+sep+sep+"b/"+sep+"a")
	if dirs, err := DefaultDirs(); err != nil || strings.Join(dirs, ",") != "a,b" {
		t.Errorf("DefaultDirs() = %q, %v; want [a b]", dirs, err)
	}
	if dirs, err := NewStore("x", "y").SearchDirs(); err != nil || strings.Join(dirs, ",") != "x,y" {
		t.Errorf("SearchDirs() = %q, %v", dirs, err)
	}
}
