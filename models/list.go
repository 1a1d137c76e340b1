package models

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/llamago/llamago/gguf"
)

// A Model is a GGUF file found in a store directory.
type Model struct {
	// Name is the path of the file relative to Dir, with slashes, such as
	// "ggml-org/models/tinyllamas/stories260K.gguf". Store.Resolve
	// accepts it.
	Name string
	// Alias is the catalog alias of the file, or "".
	Alias string
	// Path is the path of the file: Dir joined with Name.
	Path string
	// Dir is the search directory the file is in.
	Dir string
	// Size is the size in bytes: of all parts, for a split model.
	Size int64
	// Parts is the number of parts of a split model, or 1.
	Parts int
	// Arch is the value of general.architecture, such as "llama".
	Arch string
	// Quant is the name of general.file_type, such as "Q4_K_M" (see
	// gguf.FileType), or "" if the file does not say.
	Quant string
	// ModTime is the modification time of the file.
	ModTime time.Time
	// Err, if not nil, says why the file is not usable: its metadata could
	// not be read, or parts of a split model are missing (ErrIncomplete).
	// Arch and Quant are then empty.
	Err error
}

// List returns the GGUF files in the store's search directories, directory
// by directory in search order, each in lexical order of Name. A split model
// is listed once, under its first part. Files that cannot be read are listed
// with Err set. Directories that do not exist are skipped.
func (s *Store) List() ([]Model, error) {
	dirs, err := s.SearchDirs()
	if err != nil {
		return nil, err
	}
	cat := s.catalog()
	var models []Model
	for _, dir := range dirs {
		orphans := map[string]bool{} // split models listed by a part other than the first
		walkGGUF(dir, func(rel, p string) {
			m := Model{Name: rel, Path: p, Dir: dir, Parts: 1}
			prefix, part, parts, split := splitName(rel)
			if split && part != 1 {
				first := splitPartName(prefix, 1, parts)
				if isFile(filepath.Join(dir, filepath.FromSlash(first))) || orphans[first] {
					return
				}
				orphans[first] = true
				m.Err = fmt.Errorf("%w: %s is missing", ErrIncomplete, filepath.Join(dir, filepath.FromSlash(first)))
			}
			st, err := os.Stat(p)
			if err != nil {
				m.Err = err
				models = append(models, m)
				return
			}
			m.Size, m.ModTime = st.Size(), st.ModTime()
			if split && part == 1 {
				m.Parts = parts
				for _, name := range partNames(rel)[1:] {
					st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
					if err != nil {
						if m.Err == nil {
							m.Err = fmt.Errorf("%w: %s is missing", ErrIncomplete, filepath.Join(dir, filepath.FromSlash(name)))
						}
						continue
					}
					m.Size += st.Size()
				}
			}
			for _, e := range cat {
				if r, err := parseRef(e.Ref); err == nil && r.kind == refHFFile && path.Join(r.owner, r.repo, r.file) == rel {
					m.Alias = e.Alias
					break
				}
			}
			if m.Err == nil {
				if f, err := gguf.Open(p); err != nil {
					m.Err = err
				} else {
					m.Arch = f.Architecture()
					if ft, ok := f.Uint(gguf.KeyFileType); ok && ft <= math.MaxUint32 {
						m.Quant = gguf.FileType(uint32(ft))
					}
				}
			}
			models = append(models, m)
		})
	}
	return models, nil
}

// removeWait is how long Remove waits for a download of the model to end.
var removeWait = 2 * time.Second

// Remove deletes the model that ref names, as Resolve finds it, from the
// store: the file, all parts of a split model (also when some are missing),
// and any partial download of them, then the directories left empty
// between the file and its search directory. It returns the paths of the
// files it deleted. It refuses, with an error matching ErrOutsideStore, a
// file outside the search directories, and with ErrBusy one being
// downloaded.
func (s *Store) Remove(ref string) ([]string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	dirs, err := s.SearchDirs()
	if err != nil {
		return nil, err
	}
	p, err := s.resolve(r, dirs, true)
	if err != nil {
		return nil, err
	}
	dir, rel, ok := inStore(dirs, p)
	if !ok {
		return nil, fmt.Errorf("%w: %s (store directories: %s)", ErrOutsideStore, p, strings.Join(dirs, ", "))
	}
	parent := filepath.Join(dir, filepath.Dir(rel))
	var removed []string
	for _, name := range partNames(filepath.Base(rel)) {
		file := filepath.Join(parent, name)
		ctx, cancel := context.WithTimeout(context.Background(), removeWait)
		unlock, err := lockFile(ctx, file+".lock")
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return removed, fmt.Errorf("%w: %s", ErrBusy, file)
		}
		if err != nil {
			return removed, err
		}
		for _, q := range []string{file, file + ".partial"} {
			err := os.Remove(q)
			if err == nil && q == file {
				removed = append(removed, q)
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				unlock()
				return removed, err
			}
		}
		unlock()
	}
	// Remove the directories left empty, such as OWNER/REPO; os.Remove
	// fails on one that is not.
	for d := filepath.Dir(rel); d != "." && d != string(filepath.Separator); d = filepath.Dir(d) {
		if os.Remove(filepath.Join(dir, d)) != nil {
			break
		}
	}
	return removed, nil
}

// inStore reports whether the file p lies inside one of dirs, returning that
// directory (as an absolute path, possibly with symbolic links resolved) and
// the path of p relative to it.
func inStore(dirs []string, p string) (dir, rel string, ok bool) {
	absP, err := filepath.Abs(p)
	if err != nil {
		return "", "", false
	}
	realParent, err := filepath.EvalSymlinks(filepath.Dir(absP))
	if err != nil {
		realParent = filepath.Dir(absP)
	}
	realP := filepath.Join(realParent, filepath.Base(absP))
	for _, d := range dirs {
		absD, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		cands := []string{absD}
		if real, err := filepath.EvalSymlinks(absD); err == nil && real != absD {
			cands = append(cands, real)
		}
		for _, c := range cands {
			for _, q := range []string{absP, realP} {
				if rel, err := filepath.Rel(c, q); err == nil && rel != "." && filepath.IsLocal(rel) {
					return c, rel, true
				}
			}
		}
	}
	return "", "", false
}
