package models

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Environment variables read by a Store whose fields are left empty.
const (
	// EnvModels is an OS path list (like PATH) of the directories searched
	// for models. The first is where downloads go.
	EnvModels = "LLAMAGO_MODELS"
	// EnvEndpoint is the base URL of the Hugging Face hub or a mirror.
	EnvEndpoint = "HF_ENDPOINT"
	// EnvToken is a Hugging Face access token, needed for gated and private
	// repositories.
	EnvToken = "HF_TOKEN"
)

// DefaultEndpoint is the Hugging Face hub, used when neither Store.Endpoint
// nor $HF_ENDPOINT is set.
const DefaultEndpoint = "https://huggingface.co"

// A Store finds models in local directories and downloads them into the
// first of them. The zero value is ready to use and takes its settings
// from the environment. A Store's methods may be called concurrently, also
// from several processes sharing the directories.
type Store struct {
	// Dirs are the directories searched for models, in order. Pull
	// downloads into Dirs[0], creating it if needed. If Dirs is empty, the
	// directories are those of DefaultDirs.
	Dirs []string

	// Endpoint is the base URL of the Hugging Face hub. If empty, it is
	// $HF_ENDPOINT, or DefaultEndpoint if that is not set.
	Endpoint string

	// Token is the Hugging Face access token sent as "Authorization:
	// Bearer" to Endpoint. If empty, it is $HF_TOKEN.
	Token string

	// Offline, if set, makes Pull fail with an error matching ErrOffline
	// and ErrNotFound instead of making any network request when the model
	// is not already present.
	Offline bool

	// Retries is how many times Pull tries again, resuming, after a
	// download or API request failed with a network error or a server
	// error (5xx, 429), before giving up. With zero, the first error is
	// returned; a later Pull resumes the download.
	Retries int

	// Client makes the HTTP requests. If nil, a client like
	// http.DefaultClient is used, which honours the proxy environment
	// variables and has no overall time limit.
	Client *http.Client

	// UserAgent is sent with every request. If empty, it is DefaultUserAgent.
	UserAgent string

	// Catalog lists the aliases the store knows. If nil, it is the
	// built-in Catalog().
	Catalog []CatalogEntry
}

// NewStore returns a Store that searches dirs, or the directories of
// DefaultDirs if there are none.
func NewStore(dirs ...string) *Store {
	return &Store{Dirs: dirs}
}

// DefaultDirs returns the directories a Store searches when its Dirs field
// is empty: the entries of $LLAMAGO_MODELS, an OS path list, or else
// llamago/models under os.UserCacheDir(). It creates nothing.
func DefaultDirs() ([]string, error) {
	if dirs := cleanDirs(filepath.SplitList(os.Getenv(EnvModels))); len(dirs) > 0 {
		return dirs, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return nil, fmt.Errorf("no model directory: set %s: %w", EnvModels, err)
	}
	return []string{filepath.Join(cache, "llamago", "models")}, nil
}

// cleanDirs cleans dirs and drops empty entries and repeats.
func cleanDirs(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if d == "" {
			continue
		}
		d = filepath.Clean(d)
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// SearchDirs returns the directories s searches, in order. The first is
// where Pull stores downloads.
func (s *Store) SearchDirs() ([]string, error) {
	if dirs := cleanDirs(s.Dirs); len(dirs) > 0 {
		return dirs, nil
	}
	return DefaultDirs()
}

// catalog returns the aliases s knows.
func (s *Store) catalog() []CatalogEntry {
	if s.Catalog != nil {
		return s.Catalog
	}
	return catalog
}

// Resolve returns the local file that ref names, without any network
// access. Candidates are tried in this order:
//
//  1. an existing file at the path ref, or the path itself if it is
//     absolute or starts with ./ or ../;
//  2. ref and ref.gguf in each search directory, where ref may contain
//     slashes, as in the store's layout OWNER/REPO/FILE.gguf;
//  3. the catalog alias ref, as it is stored by Pull;
//  4. for OWNER/REPO[:QUANT] and hf://OWNER/REPO[:QUANT], the file of that
//     quantization pulled from the repository, if its name has the
//     quantization as a whole word (Q4_K matches model-Q4_K.gguf, not
//     model-Q4_K_M.gguf);
//  5. for hf://OWNER/REPO/FILE.gguf, that file as stored by Pull;
//  6. a file anywhere in a search directory whose name is ref or ref.gguf
//     (ignoring case), or a split model whose name starts with ref; the
//     first directory with a match must have only one.
//
// A split model resolves to its first part, and only if all parts are
// present. If nothing matches, the error is a *NotFoundError.
func (s *Store) Resolve(ref string) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	dirs, err := s.SearchDirs()
	if err != nil {
		return "", err
	}
	return s.resolve(r, dirs, false)
}

// resolve implements Resolve. With incomplete set it also returns the first
// part of a split model whose other parts are missing.
func (s *Store) resolve(r ref, dirs []string, incomplete bool) (string, error) {
	notFound := &NotFoundError{Ref: r.raw, Searched: dirs}
	find := func(name string) (string, bool) {
		p, err := findIn(dirs, name, incomplete)
		if err != nil && notFound.Err == nil {
			notFound.Err = err
		}
		return p, p != ""
	}

	switch r.kind {
	case refPath:
		if isFile(r.raw) {
			return r.raw, nil
		}
		abs, err := filepath.Abs(r.raw)
		if err != nil {
			abs = r.raw
		}
		return "", &NotFoundError{Ref: r.raw, Searched: []string{abs}, IsPath: true}
	case refHFFile:
		notFound.PullRef = r.raw
		if p, ok := find(path.Join(r.owner, r.repo, r.file)); ok {
			return p, nil
		}
		return "", notFound
	}

	// A name or OWNER/REPO[:QUANT].
	if isFile(r.raw) {
		return r.raw, nil
	}
	if r.kind == refName || r.kind == refHFRepo && !r.explicitQuant {
		for _, dir := range dirs {
			names := []string{r.raw}
			if !hasGGUFExt(r.raw) {
				names = append(names, r.raw+".gguf")
			}
			for _, name := range names {
				if p, ok := find1(dir, name, incomplete, notFound); ok {
					return p, nil
				}
			}
		}
	}
	if e, ok := lookupAlias(s.catalog(), r.raw); ok {
		ar, err := parseRef(e.Ref)
		if err != nil || ar.kind != refHFFile {
			return "", fmt.Errorf("catalog entry %q: %w", e.Alias, errOr(err, invalidRef(e.Ref, "not an hf:// file")))
		}
		notFound.PullRef = e.Alias
		if p, ok := find(path.Join(ar.owner, ar.repo, ar.file)); ok {
			return p, nil
		}
		return "", notFound
	}
	if r.kind == refHFRepo {
		notFound.PullRef = r.raw
		for _, dir := range dirs {
			repoDir := filepath.Join(dir, r.owner, r.repo)
			var files []string
			walkGGUF(repoDir, func(rel, _ string) { files = append(files, rel) })
			// Only a whole-word match, as a repository may hold a better
			// match than the local files: o/r:Q4_K is not o/r:Q4_K_M.
			name, err := selectFile(files, r.quant, true)
			if err != nil {
				continue
			}
			if p, ok := find1(repoDir, name, incomplete, notFound); ok {
				return p, nil
			}
		}
		return "", notFound
	}
	if _, ok := storeFileRef(r.raw); ok {
		notFound.PullRef = r.raw
	}
	if !strings.Contains(r.raw, "/") {
		for _, dir := range dirs {
			var matches []string
			walkGGUF(dir, func(rel, _ string) {
				if baseMatches(path.Base(rel), r.raw) {
					matches = append(matches, rel)
				}
			})
			switch len(matches) {
			case 0:
				continue
			case 1:
				if p, ok := find1(dir, matches[0], incomplete, notFound); ok {
					return p, nil
				}
				continue
			}
			return "", fmt.Errorf("%w %q: in %s it matches %s; use one of these names", ErrAmbiguous, r.raw, dir, strings.Join(matches, ", "))
		}
	}
	if notFound.PullRef == "" {
		notFound.Aliases = aliases(s.catalog())
	}
	return "", notFound
}

// errOr returns err if it is not nil, else alt.
func errOr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// baseMatches reports whether the file name base matches the bare name:
// it is name or name.gguf, or it is the first part of a split model whose
// prefix is name, ignoring case.
func baseMatches(base, name string) bool {
	if strings.EqualFold(base, name) || strings.EqualFold(base, name+".gguf") {
		return true
	}
	prefix, part, _, ok := splitName(base)
	return ok && part == 1 && strings.EqualFold(prefix, name)
}

// findIn returns the first dir/name over dirs that is a complete model (see
// find1), or "" and the reason a candidate was incomplete.
func findIn(dirs []string, name string, incomplete bool) (string, error) {
	var why error
	for _, dir := range dirs {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if !isFile(p) {
			continue
		}
		if err := checkParts(p); err != nil && !incomplete {
			if why == nil {
				why = err
			}
			continue
		}
		return p, nil
	}
	return "", why
}

// find1 is findIn for one directory; it records an incomplete candidate in
// nf.Err.
func find1(dir, name string, incomplete bool, nf *NotFoundError) (string, bool) {
	p, err := findIn([]string{dir}, name, incomplete)
	if err != nil && nf.Err == nil {
		nf.Err = err
	}
	return p, p != ""
}

// checkParts checks that all parts of the split model that p belongs to are
// present beside it. It returns nil for a file that is not split.
func checkParts(p string) error {
	dir, base := filepath.Split(p)
	for _, name := range partNames(base) {
		if name != base && !isFile(filepath.Join(dir, name)) {
			return fmt.Errorf("%w: %s is missing", ErrIncomplete, filepath.Join(dir, name))
		}
	}
	return nil
}

// isFile reports whether p is a regular file, following symbolic links.
func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// walkGGUF calls fn for every .gguf regular file (or symbolic link to one)
// under root, in lexical order, with its slash-separated path relative to
// root and its path. It skips directories starting with '.' and everything
// it cannot read.
func walkGGUF(root string, fn func(rel, path string)) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && p != root {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !hasGGUFExt(d.Name()) || !(d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 && isFile(p)) {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil
		}
		fn(filepath.ToSlash(rel), p)
		return nil
	})
}

// selectFile picks the GGUF file of the given quantization ("" for
// DefaultQuant) from the slash-separated paths of a repository's files: the
// ones whose path contains the quantization, ignoring case, preferring a
// match that is a whole word (so that Q4_K does not prefer Q4_K_M), then a
// file that is not split over the first part of a split model, then the
// shortest path. With wholeWord set, only whole-word matches count.
// Multimodal projector files (mmproj) are never picked.
func selectFile(files []string, quant string, wholeWord bool) (string, error) {
	if quant == "" {
		quant = DefaultQuant
	}
	q := strings.ToLower(quant)
	best, bestScore := "", -1
	var avail []string
	for _, f := range files {
		lf := strings.ToLower(f)
		if !hasGGUFExt(f) || strings.Contains(path.Base(lf), "mmproj") {
			continue
		}
		score := 0
		if _, part, _, ok := splitName(f); !ok {
			score++
		} else if part != 1 {
			continue
		}
		avail = append(avail, f)
		i := strings.Index(lf, q)
		if i < 0 {
			continue
		}
		if (i == 0 || !wordChar(lf[i-1])) && (i+len(q) == len(lf) || !wordChar(lf[i+len(q)])) {
			score += 2
		} else if wholeWord {
			continue
		}
		if score > bestScore || score == bestScore && (len(f) < len(best) || len(f) == len(best) && f < best) {
			best, bestScore = f, score
		}
	}
	if best != "" {
		return best, nil
	}
	if len(avail) == 0 {
		return "", fmt.Errorf("%w: there are no GGUF files", ErrNoMatch)
	}
	if len(avail) > 20 {
		avail = append(avail[:20], "...")
	}
	return "", fmt.Errorf("%w: none has %q in its name (files: %s)", ErrNoMatch, quant, strings.Join(avail, ", "))
}

// wordChar reports whether c may be part of a quantization name.
func wordChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}
