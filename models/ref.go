package models

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// HFScheme is the prefix of Hugging Face references: hf://OWNER/REPO/FILE.gguf
// names a file, hf://OWNER/REPO[:QUANT] a repository.
const HFScheme = "hf://"

// DefaultQuant is the quantization picked from a Hugging Face repository
// when a reference names none, as llama.cpp's -hf option does.
const DefaultQuant = "Q4_K_M"

// refKind classifies a model reference.
type refKind int

const (
	// refPath is an explicit file path: absolute, ./ or ../, or one that is
	// not a valid name.
	refPath refKind = iota
	// refName is a bare name or a name in the store's layout.
	refName
	// refHFFile is hf://OWNER/REPO/FILE.gguf.
	refHFFile
	// refHFRepo is OWNER/REPO[:QUANT] or hf://OWNER/REPO[:QUANT].
	refHFRepo
)

// A ref is a parsed model reference.
type ref struct {
	raw   string
	kind  refKind
	owner string // refHFFile, refHFRepo
	repo  string // refHFFile, refHFRepo
	file  string // refHFFile: slash-separated path in the repository
	quant string // refHFRepo: "" means DefaultQuant
	// explicitQuant is set when the quantization was written out (REPO:QUANT).
	explicitQuant bool
}

// Limits on the parts of a Hugging Face reference.
const (
	maxSegment = 255  // bytes in one path segment
	maxRepo    = 96   // bytes in an owner or repository name (Hugging Face's limit)
	maxRefLen  = 1024 // bytes in a whole reference
)

// parseRef classifies s. It validates Hugging Face references strictly and
// returns an error wrapping ErrInvalidRef for a malformed or hostile one.
// Other references are checked when they are looked up.
func parseRef(s string) (ref, error) {
	r := ref{raw: s}
	switch {
	case s == "":
		return r, invalidRef(s, "empty")
	case len(s) > maxRefLen:
		return r, invalidRef(s[:64]+"...", "too long")
	case strings.ContainsRune(s, 0):
		return r, invalidRef(s, "contains a NUL byte")
	}
	if len(s) >= len(HFScheme) && strings.EqualFold(s[:len(HFScheme)], HFScheme) {
		return parseHF(s, s[len(HFScheme):])
	}
	if i := strings.Index(s, "://"); i > 0 && schemeRE.MatchString(s[:i]) {
		return r, invalidRef(s, "unsupported URL scheme; use "+HFScheme+"OWNER/REPO/FILE.gguf")
	}
	if isExplicitPath(s) {
		r.kind = refPath
		return r, nil
	}
	// OWNER/REPO or OWNER/REPO:QUANT, before localName: on Windows a name
	// with a colon is not a local file name.
	if owner, rest, ok := strings.Cut(s, "/"); ok && !strings.Contains(rest, "/") && !strings.Contains(s, "\\") {
		repo, quant, hasQuant := strings.Cut(rest, ":")
		if hasQuant || !hasGGUFExt(repo) {
			ownerErr, repoErr := validRepoPart(owner), validRepoPart(repo)
			switch {
			case hasQuant && ownerErr != nil:
				return r, invalidRef(s, "owner: "+ownerErr.Error())
			case hasQuant && repoErr != nil:
				return r, invalidRef(s, "repository: "+repoErr.Error())
			case ownerErr == nil && repoErr == nil:
				if hasQuant {
					if err := validQuant(quant); err != nil {
						return r, invalidRef(s, err.Error())
					}
				}
				r.kind, r.owner, r.repo, r.quant, r.explicitQuant = refHFRepo, owner, repo, quant, hasQuant
				return r, nil
			}
		}
	}
	if !localName(s) {
		r.kind = refPath
		return r, nil
	}
	if strings.Contains(s, ":") {
		r.kind = refPath
		return r, nil
	}
	r.kind = refName
	return r, nil
}

// schemeRE matches a URL scheme.
var schemeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*$`)

// parseHF parses the part of an hf:// reference after the scheme.
func parseHF(raw, s string) (ref, error) {
	r := ref{raw: raw}
	segs := strings.Split(s, "/")
	if len(segs) < 2 {
		return r, invalidRef(raw, "want "+HFScheme+"OWNER/REPO/FILE.gguf or "+HFScheme+"OWNER/REPO[:QUANT]")
	}
	owner, repo := segs[0], segs[1]
	if err := validRepoPart(owner); err != nil {
		return r, invalidRef(raw, "owner: "+err.Error())
	}
	if len(segs) == 2 {
		repo, quant, hasQuant := strings.Cut(repo, ":")
		if err := validRepoPart(repo); err != nil {
			return r, invalidRef(raw, "repository: "+err.Error())
		}
		if hasQuant {
			if err := validQuant(quant); err != nil {
				return r, invalidRef(raw, err.Error())
			}
		}
		r.kind, r.owner, r.repo, r.quant, r.explicitQuant = refHFRepo, owner, repo, quant, hasQuant
		return r, nil
	}
	if err := validRepoPart(repo); err != nil {
		return r, invalidRef(raw, "repository: "+err.Error())
	}
	file := strings.Join(segs[2:], "/")
	if err := validRepoFile(file); err != nil {
		return r, invalidRef(raw, "file: "+err.Error())
	}
	r.kind, r.owner, r.repo, r.file = refHFFile, owner, repo, file
	return r, nil
}

// validRepoPart checks a Hugging Face owner or repository name: 1 to 96 of
// [A-Za-z0-9._-], not starting or ending with '.' or '-', without ".." or
// "--" (the rules of huggingface_hub's validate_repo_id).
func validRepoPart(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case len(s) > maxRepo:
		return fmt.Errorf("longer than %d bytes", maxRepo)
	case strings.Contains(s, ".."):
		return fmt.Errorf("%q: \"..\" not allowed", s)
	case strings.Contains(s, "--"):
		return fmt.Errorf("%q: \"--\" not allowed", s)
	case strings.IndexByte(".-", s[0]) >= 0 || strings.IndexByte(".-", s[len(s)-1]) >= 0:
		return fmt.Errorf("%q: may not start or end with '.' or '-'", s)
	}
	if i := strings.IndexFunc(s, func(c rune) bool { return !safeChar(c) }); i >= 0 {
		return fmt.Errorf("%q: character %q not allowed (only A-Z a-z 0-9 . _ -)", s, s[i:i+1])
	}
	return nil
}

// validRepoFile checks the path of a GGUF file in a Hugging Face repository:
// '/'-separated segments of [A-Za-z0-9._-], none empty, "." or "..", none
// starting or ending with '.', the last ending in .gguf. Such a path stays
// inside the directory it is joined to on every operating system.
func validRepoFile(file string) error {
	if !hasGGUFExt(file) {
		return fmt.Errorf("%q: not a .gguf file", file)
	}
	for _, seg := range strings.Split(file, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%q: empty path segment", file)
		case seg == "." || seg == "..":
			return fmt.Errorf("%q: path segment %q not allowed", file, seg)
		case len(seg) > maxSegment:
			return fmt.Errorf("%q: path segment longer than %d bytes", file, maxSegment)
		case seg[0] == '.' || seg[len(seg)-1] == '.':
			return fmt.Errorf("%q: path segment %q may not start or end with '.'", file, seg)
		}
		if i := strings.IndexFunc(seg, func(c rune) bool { return !safeChar(c) }); i >= 0 {
			return fmt.Errorf("%q: character %q not allowed (only A-Z a-z 0-9 . _ - and /)", file, seg[i:i+1])
		}
	}
	if !filepath.IsLocal(filepath.FromSlash(file)) { // Windows reserved names such as NUL
		return fmt.Errorf("%q: not a local file name", file)
	}
	return nil
}

// validQuant checks a quantization name such as Q4_K_M.
func validQuant(q string) error {
	if q == "" || len(q) > 64 || strings.IndexFunc(q, func(c rune) bool { return !safeChar(c) }) >= 0 {
		return fmt.Errorf("quantization %q: want 1 to 64 of A-Z a-z 0-9 . _ -", q)
	}
	return nil
}

// safeChar reports whether c may appear in a Hugging Face name.
func safeChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// hasGGUFExt reports whether name ends in .gguf, in any case.
func hasGGUFExt(name string) bool {
	return len(name) > len(".gguf") && strings.EqualFold(name[len(name)-len(".gguf"):], ".gguf")
}

// isExplicitPath reports whether s can only be a file path: absolute, with a
// volume name, or starting with ".", "..", "~" or a backslash-separated form
// of those.
func isExplicitPath(s string) bool {
	if filepath.IsAbs(s) || filepath.VolumeName(s) != "" || strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~") {
		return true
	}
	for _, p := range []string{".", ".."} {
		if s == p || strings.HasPrefix(s, p+"/") || strings.HasPrefix(s, p+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// localName reports whether s can be looked up as a name in a store
// directory: '/'-separated segments, none empty, "." or "..", and no
// backslash, so that joining it to a directory stays inside it.
func localName(s string) bool {
	if s == "" || strings.ContainsAny(s, "\\\x00") {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return filepath.IsLocal(filepath.FromSlash(s))
}

// storeFileRef returns the Hugging Face file that a name in the store's
// layout (OWNER/REPO/FILE.gguf) stands for.
func storeFileRef(name string) (ref, bool) {
	segs := strings.Split(name, "/")
	if len(segs) < 3 || !hasGGUFExt(name) {
		return ref{}, false
	}
	r, err := parseHF(name, name)
	if err != nil || r.kind != refHFFile {
		return ref{}, false
	}
	return r, true
}

// hfRef formats a Hugging Face file reference.
func hfRef(owner, repo, file string) string {
	return HFScheme + owner + "/" + repo + "/" + file
}

// splitRE matches the name of a part of a split GGUF model, as written by
// llama.cpp's gguf-split: PREFIX-00001-of-00003.gguf.
var splitRE = regexp.MustCompile(`^(.*)-([0-9]{5})-of-([0-9]{5})\.gguf$`)

// splitName parses the name (a file name or slash-separated path) of a part
// of a split model. It returns the prefix, the part number and the number of
// parts, or ok false if name is not such a name.
func splitName(name string) (prefix string, part, parts int, ok bool) {
	m := splitRE.FindStringSubmatch(name)
	if m == nil {
		return "", 0, 0, false
	}
	part, _ = strconv.Atoi(m[2])
	parts, _ = strconv.Atoi(m[3])
	if part < 1 || parts < 1 || part > parts {
		return "", 0, 0, false
	}
	return m[1], part, parts, true
}

// splitPartName returns the name of part k of a split model.
func splitPartName(prefix string, k, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.gguf", prefix, k, n)
}

// partNames returns the names of all parts of the model that name belongs
// to: all N names if name is a part of a split model, else just name.
func partNames(name string) []string {
	prefix, _, n, ok := splitName(name)
	if !ok {
		return []string{name}
	}
	names := make([]string, n)
	for k := range n {
		names[k] = splitPartName(prefix, k+1, n)
	}
	return names
}
