package models

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestListRemove(t *testing.T) {
	data := stories(t)
	tiny := readModel(t, "llama-2-tiny-random.gguf")
	d1, d2 := t.TempDir(), t.TempDir()
	s := NewStore(d1, d2)

	storiesFile := writeFile(t, d1, storiesPath, data)
	tinyFile := writeFile(t, d1, "tiny.gguf", tiny)
	writeFile(t, d1, "tiny.gguf.partial", tiny[:100])
	writeFile(t, d1, "bad.gguf", []byte("not a model"))
	writeFile(t, d1, "notes.txt", []byte("not listed"))
	writeFile(t, d1, ".hidden/x.gguf", data)
	big1 := writeFile(t, d2, "o/r/big-00001-of-00002.gguf", data)
	big2 := writeFile(t, d2, "o/r/big-00002-of-00002.gguf", data)
	writeFile(t, d2, "o/r/orphan-00002-of-00003.gguf", data)
	writeFile(t, d2, "o/r/orphan-00003-of-00003.gguf", data)

	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name, Alias, Dir string
		Size             int64
		Parts            int
		Arch, Quant      string
		Err              error
	}
	var got []row
	for _, m := range list {
		if m.Path != filepath.Join(m.Dir, filepath.FromSlash(m.Name)) {
			t.Errorf("%s: path %s", m.Name, m.Path)
		}
		if m.ModTime.IsZero() && m.Err == nil {
			t.Errorf("%s: no ModTime", m.Name)
		}
		got = append(got, row{m.Name, m.Alias, m.Dir, m.Size, m.Parts, m.Arch, m.Quant, m.Err})
	}
	n := int64(len(data))
	want := []row{
		{Name: "bad.gguf", Dir: d1, Size: 11, Parts: 1},
		{Name: storiesPath, Alias: "stories260k", Dir: d1, Size: n, Parts: 1, Arch: "llama"},
		{Name: "tiny.gguf", Dir: d1, Size: int64(len(tiny)), Parts: 1, Arch: "llama", Quant: "F16"},
		{Name: "o/r/big-00001-of-00002.gguf", Dir: d2, Size: 2 * n, Parts: 2, Arch: "llama"},
		{Name: "o/r/orphan-00002-of-00003.gguf", Dir: d2, Size: n, Parts: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("List:\n%+v\nwant\n%+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		gotErr := g.Err
		g.Err = nil
		if g != w {
			t.Errorf("entry %d:\n%+v\nwant\n%+v", i, g, w)
		}
		switch g.Name {
		case "bad.gguf":
			if gotErr == nil {
				t.Error("bad.gguf: no error")
			}
		case "o/r/orphan-00002-of-00003.gguf":
			if !errors.Is(gotErr, ErrIncomplete) {
				t.Errorf("orphan part: error %v", gotErr)
			}
		default:
			if gotErr != nil {
				t.Errorf("%s: %v", g.Name, gotErr)
			}
		}
	}

	// Remove by alias: the file goes, and the directories it leaves empty.
	removed, err := s.Remove("stories260k")
	if err != nil || !slices.Equal(removed, []string{storiesFile}) {
		t.Errorf("Remove(stories260k) = %q, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(d1, "ggml-org")); !os.IsNotExist(err) {
		t.Errorf("empty directories left: %v", err)
	}
	if _, err := os.Stat(d1); err != nil {
		t.Errorf("store directory removed: %v", err)
	}

	// Remove a model that is being downloaded: refused while the lock is held.
	unlock, err := lockFile(context.Background(), tinyFile+".lock")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove("tiny"); !errors.Is(err, ErrBusy) {
		t.Errorf("Remove of a locked model: %v", err)
	}
	unlock()
	// Then by name, with its partial download.
	if removed, err := s.Remove("tiny"); err != nil || !slices.Equal(removed, []string{tinyFile}) {
		t.Errorf("Remove(tiny) = %q, %v", removed, err)
	}
	if isFile(tinyFile + ".partial") {
		t.Error("partial download left")
	}

	// A split model, with a part missing: all parts go.
	if err := os.Remove(big2); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.Remove("o/r/big-00001-of-00002.gguf"); err != nil || !slices.Equal(removed, []string{big1}) {
		t.Errorf("Remove(split) = %q, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(d2, "o", "r")); err != nil {
		t.Errorf("non-empty directory removed: %v", err)
	}

	// Outside the store: refused, and kept.
	outside := writeFile(t, t.TempDir(), "outside.gguf", data)
	for _, ref := range []string{outside, filepath.Join(d1, "..", filepath.Base(filepath.Dir(outside)), "outside.gguf")} {
		if _, err := s.Remove(ref); !errors.Is(err, ErrOutsideStore) && !errors.Is(err, ErrNotFound) {
			t.Errorf("Remove(%s): %v", ref, err)
		}
	}
	if !isFile(outside) {
		t.Error("file outside the store removed")
	}
	if _, err := s.Remove(outside); !errors.Is(err, ErrOutsideStore) || !strings.Contains(err.Error(), outside) {
		t.Errorf("Remove(outside): %v", err)
	}
	// Missing and hostile references.
	if _, err := s.Remove("nothing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(nothing): %v", err)
	}
	if _, err := s.Remove("hf://a/b/../../../x.gguf"); !errors.Is(err, ErrInvalidRef) {
		t.Errorf("Remove(hostile): %v", err)
	}

	list, err = s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range list {
		names = append(names, m.Name)
	}
	if want := []string{"bad.gguf", "o/r/orphan-00002-of-00003.gguf"}; !slices.Equal(names, want) {
		t.Errorf("after removals: %q, want %q", names, want)
	}
}

// Pull, List and Remove together, on a store given by $LLAMAGO_MODELS.
func TestPullListRemove(t *testing.T) {
	hub := newHub(t)
	hub.files[storiesPath] = stories(t)
	dir := filepath.Join(t.TempDir(), "new", "store") // created by Pull
	t.Setenv(EnvModels, dir)
	t.Setenv(EnvEndpoint, hub.srv.URL)
	s := &Store{Client: hub.srv.Client()}
	p, err := s.Pull(testCtx(t), "stories260k", nil)
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Path != p || list[0].Alias != "stories260k" || list[0].Err != nil {
		t.Fatalf("List() = %+v, %v", list, err)
	}
	if _, err := s.Remove(list[0].Name); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("store after Remove: %v, %v", entries, err)
	}
}
