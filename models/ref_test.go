package models

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		ref                      string
		kind                     refKind
		owner, repo, file, quant string
	}{
		{ref: "/abs/model.gguf", kind: refPath},
		{ref: "./model.gguf", kind: refPath},
		{ref: "../model.gguf", kind: refPath},
		{ref: "~/model.gguf", kind: refPath},
		{ref: "a/../b.gguf", kind: refPath},
		{ref: `dir\model.gguf`, kind: refPath},
		{ref: "C:/models/x.gguf", kind: refPath},
		{ref: "tinyllama", kind: refName},
		{ref: "tinyllama.gguf", kind: refName},
		{ref: "My Model.gguf", kind: refName},
		{ref: "family/model.gguf", kind: refName},
		{ref: "ggml-org/models/tinyllamas/stories260K.gguf", kind: refName},
		{ref: "stories260k", kind: refName},
		{ref: "my dir/model", kind: refName},
		{ref: "Qwen/Qwen2.5-0.5B-Instruct-GGUF", kind: refHFRepo, owner: "Qwen", repo: "Qwen2.5-0.5B-Instruct-GGUF"},
		{ref: "Qwen/Qwen2.5-0.5B-Instruct-GGUF:q8_0", kind: refHFRepo, owner: "Qwen", repo: "Qwen2.5-0.5B-Instruct-GGUF", quant: "q8_0"},
		{ref: "hf://o/r", kind: refHFRepo, owner: "o", repo: "r"},
		{ref: "HF://o/r:Q4_K_M", kind: refHFRepo, owner: "o", repo: "r", quant: "Q4_K_M"},
		{ref: "hf://o/r/x.gguf", kind: refHFFile, owner: "o", repo: "r", file: "x.gguf"},
		{ref: "hf://ggml-org/models/tinyllamas/stories260K.gguf", kind: refHFFile, owner: "ggml-org", repo: "models", file: "tinyllamas/stories260K.gguf"},
		{ref: "hf://o/r/Q2_K/m-Q2_K-00001-of-00003.GGUF", kind: refHFFile, owner: "o", repo: "r", file: "Q2_K/m-Q2_K-00001-of-00003.GGUF"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			r, err := parseRef(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if r.kind != tt.kind || r.owner != tt.owner || r.repo != tt.repo || r.file != tt.file || r.quant != tt.quant {
				t.Errorf("got %+v, want kind %d owner %q repo %q file %q quant %q", r, tt.kind, tt.owner, tt.repo, tt.file, tt.quant)
			}
		})
	}
}

// hostileRefs are references that must be refused before any file or
// network access.
var hostileRefs = []string{
	"",
	"hf://a/b/../../etc/passwd",
	"hf://a/b/../../etc/passwd.gguf",
	"hf://../x/y.gguf",
	"hf://a/../y.gguf",
	"hf://./x/y.gguf",
	"hf://a/b/./c.gguf",
	"hf://a/b/.hidden.gguf",
	"hf://a/b/c.gguf.",
	`hf://a\b/c/d.gguf`,
	`hf://a/b/c\..\..\d.gguf`,
	`hf://a/b/..\..\d.gguf`,
	"hf:///etc/passwd.gguf",
	"hf://a//b.gguf",
	"hf://a/b//c.gguf",
	"hf://a/b/",
	"hf://a/b/c.gguf/",
	"hf://a",
	"hf://",
	"hf://a/b/x.bin",
	"hf://a/b/%2e%2e/c.gguf",
	"hf://a/b/c d.gguf",
	"hf://a/b/C:/x.gguf",
	"hf://a/b/x.gguf?download=1",
	"hf://a/b:Q4/x.gguf",
	"hf://a/b/NUL/x.gguf\x00",
	"hf://-a/b/c.gguf",
	"hf://a/b--c/c.gguf",
	"hf://a/" + strings.Repeat("r", 97) + "/c.gguf",
	"hf://a/b:",
	"hf://a/b:Q4/../x",
	"a/b:../../x",
	"a/b:Q4 K",
	"-a/b:Q4_K_M",
	"https://example.com/x.gguf",
	"file:///etc/passwd",
}

func TestParseRefHostile(t *testing.T) {
	for _, ref := range hostileRefs {
		r, err := parseRef(ref)
		if err == nil {
			if r.kind == refPath || r.kind == refName {
				// Not a Hugging Face reference: only ever looked up locally.
				if strings.HasPrefix(strings.ToLower(ref), "hf://") {
					t.Errorf("%q: parsed as local %+v", ref, r)
				}
				continue
			}
			t.Errorf("%q: accepted as %+v", ref, r)
			continue
		}
		if !errors.Is(err, ErrInvalidRef) {
			t.Errorf("%q: error %v does not match ErrInvalidRef", ref, err)
		}
	}
}

func TestSelectFile(t *testing.T) {
	files := []string{
		"README.md",
		"model-Q4_K_M.gguf",
		"model-Q4_K_S.gguf",
		"model-Q4_K.gguf",
		"model-Q8_0.gguf",
		"mmproj-model-Q8_0.gguf",
		"model-IQ4_XS.gguf",
		"Q2_K/model-Q2_K-00002-of-00003.gguf",
		"Q2_K/model-Q2_K-00001-of-00003.gguf",
		"Q2_K/model-Q2_K-00003-of-00003.gguf",
		"model-Q6_K-00001-of-00002.gguf",
		"model-Q6_K-00002-of-00002.gguf",
		"model-Q6_K.gguf",
		"model.Q5_0.gguf",
	}
	tests := []struct {
		quant, want string
	}{
		{"", "model-Q4_K_M.gguf"},
		{"q4_k_m", "model-Q4_K_M.gguf"},
		{"Q4_K", "model-Q4_K.gguf"},
		{"Q8_0", "model-Q8_0.gguf"},
		{"Q2_K", "Q2_K/model-Q2_K-00001-of-00003.gguf"},
		{"Q6_K", "model-Q6_K.gguf"},
		{"q5_0", "model.Q5_0.gguf"},
		{"IQ4", "model-IQ4_XS.gguf"},
	}
	for _, tt := range tests {
		got, err := selectFile(files, tt.quant, false)
		if err != nil || got != tt.want {
			t.Errorf("selectFile(%q) = %q, %v; want %q", tt.quant, got, err, tt.want)
		}
	}
	if _, err := selectFile(files, "IQ1_S", false); !errors.Is(err, ErrNoMatch) || !strings.Contains(err.Error(), "model-Q8_0.gguf") {
		t.Errorf("IQ1_S: got %v, want ErrNoMatch listing the files", err)
	}
	if _, err := selectFile([]string{"README.md"}, "", false); !errors.Is(err, ErrNoMatch) {
		t.Errorf("no GGUF: got %v, want ErrNoMatch", err)
	}
	// Whole words only.
	if got, err := selectFile(files, "IQ4", true); !errors.Is(err, ErrNoMatch) {
		t.Errorf("IQ4, whole word: %q, %v", got, err)
	}
	if got, err := selectFile([]string{"model-Q4_K_M.gguf"}, "Q4_K", true); !errors.Is(err, ErrNoMatch) {
		t.Errorf("Q4_K, whole word: %q, %v", got, err)
	}
	if got, err := selectFile(files, "q4_k_m", true); err != nil || got != "model-Q4_K_M.gguf" {
		t.Errorf("Q4_K_M, whole word: %q, %v", got, err)
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		h                string
		start, end, size int64
		ok               bool
	}{
		{"bytes 100-199/200", 100, 199, 200, true},
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 100-199/*", 100, 199, -1, true},
		{"bytes */200", -1, -1, 200, true},
		{"bytes */*", 0, 0, 0, false},
		{"bytes 100-199/150", 0, 0, 0, false},
		{"bytes 200-100/300", 0, 0, 0, false},
		{"bytes -1-5/10", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"", 0, 0, 0, false},
		{"bytes 1-2", 0, 0, 0, false},
	}
	for _, tt := range tests {
		start, end, size, ok := parseContentRange(tt.h)
		if ok != tt.ok || ok && (start != tt.start || end != tt.end || size != tt.size) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", tt.h, start, end, size, ok, tt.start, tt.end, tt.size, tt.ok)
		}
	}
}

func TestSplitName(t *testing.T) {
	tests := []struct {
		name          string
		prefix        string
		part, parts   int
		ok            bool
		wantPartNames int
	}{
		{"m-00001-of-00003.gguf", "m", 1, 3, true, 3},
		{"dir/m-Q2_K-00003-of-00003.gguf", "dir/m-Q2_K", 3, 3, true, 3},
		{"m-00004-of-00003.gguf", "", 0, 0, false, 1},
		{"m-00000-of-00003.gguf", "", 0, 0, false, 1},
		{"m.gguf", "", 0, 0, false, 1},
	}
	for _, tt := range tests {
		prefix, part, parts, ok := splitName(tt.name)
		if prefix != tt.prefix || part != tt.part || parts != tt.parts || ok != tt.ok {
			t.Errorf("splitName(%q) = %q, %d, %d, %v", tt.name, prefix, part, parts, ok)
		}
		if n := len(partNames(tt.name)); n != tt.wantPartNames {
			t.Errorf("partNames(%q) has %d names, want %d", tt.name, n, tt.wantPartNames)
		}
	}
	if got := partNames("d/m-00002-of-00002.gguf"); got[0] != "d/m-00001-of-00002.gguf" || got[1] != "d/m-00002-of-00002.gguf" {
		t.Errorf("partNames: %q", got)
	}
}

func TestCatalog(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Catalog() {
		if seen[strings.ToLower(e.Alias)] {
			t.Errorf("duplicate alias %q", e.Alias)
		}
		seen[strings.ToLower(e.Alias)] = true
		r, err := parseRef(e.Ref)
		if err != nil || r.kind != refHFFile {
			t.Errorf("%s: ref %q: %v, kind %d", e.Alias, e.Ref, err, r.kind)
		}
		if ar, err := parseRef(e.Alias); err != nil || ar.kind != refName {
			t.Errorf("%s: alias does not parse as a name: %v", e.Alias, err)
		}
		if e.SHA256 != "" && !isHexSHA256(e.SHA256) {
			t.Errorf("%s: bad sha256 %q", e.Alias, e.SHA256)
		}
		if e.Description == "" {
			t.Errorf("%s: no description", e.Alias)
		}
	}
	// The stories260k entry describes the shared test file.
	e, ok := lookupAlias(Catalog(), "Stories260K")
	if !ok {
		t.Fatal("no stories260k")
	}
	data := stories(t)
	sum := sha256.Sum256(data)
	if e.Size != int64(len(data)) || e.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("stories260k: catalog says %d bytes %s, the file has %d bytes %x", e.Size, e.SHA256, len(data), sum)
	}
	// Catalog returns a copy.
	c := Catalog()
	c[0].Alias = "changed"
	if Catalog()[0].Alias == "changed" {
		t.Error("Catalog returned the package's slice")
	}
}
