package models

import (
	"slices"
	"strings"
)

// A CatalogEntry names a downloadable model by a short alias.
type CatalogEntry struct {
	// Alias is the short name, matched without regard to case.
	Alias string
	// Ref is the Hugging Face file, hf://OWNER/REPO/FILE.gguf.
	Ref string
	// Size is the size of the file in bytes, or 0 if not known.
	Size int64
	// SHA256 is the lower-case hex SHA-256 digest of the file, or "" if not
	// known. A download whose size or digest differs is rejected.
	SHA256 string
	// Description says what the model is, in a few words.
	Description string
}

// catalog is the built-in catalog. Sizes and digests are given only where
// they were checked against the file itself.
var catalog = []CatalogEntry{
	{
		Alias: "stories260k",
		Ref:   "hf://ggml-org/models/tinyllamas/stories260K.gguf",
		// Checked against a byte-identical copy of the file.
		Size:        1185376,
		SHA256:      "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d",
		Description: "260K-parameter TinyStories llama (Karpathy's tinyllamas), F32; for tests",
	},
	{
		Alias: "qwen2.5-0.5b-instruct",
		Ref:   "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf",
		// Size and digest not verified here, so left unset: the download is
		// still checked to be a complete GGUF file.
		Description: "Qwen2.5 0.5B Instruct, Q4_K_M: a small chat model",
	},
	{
		Alias: "bge-small-en-v1.5",
		Ref:   "hf://ggml-org/bge-small-en-v1.5-Q8_0-GGUF/bge-small-en-v1.5-q8_0.gguf",
		// Size and digest not verified here (see above). This is the file
		// llama.cpp's --embd-bge-small-en-default downloads.
		Description: "BGE small English v1.5, Q8_0: a 384-dimension embedding model",
	},
	{
		Alias: "all-minilm-l6-v2",
		Ref:   "hf://second-state/All-MiniLM-L6-v2-Embedding-GGUF/all-MiniLM-L6-v2-Q8_0.gguf",
		// Size and digest not verified here (see above).
		Description: "all-MiniLM-L6-v2, Q8_0: a 384-dimension sentence embedding model",
	},
}

// Catalog returns the built-in catalog, a copy the caller may modify.
func Catalog() []CatalogEntry { return slices.Clone(catalog) }

// lookupAlias returns the entry of entries with the given alias, ignoring case.
func lookupAlias(entries []CatalogEntry, alias string) (CatalogEntry, bool) {
	for _, e := range entries {
		if strings.EqualFold(e.Alias, alias) {
			return e, true
		}
	}
	return CatalogEntry{}, false
}

// lookupFile returns the entry of entries for the Hugging Face file
// OWNER/REPO/FILE.
func lookupFile(entries []CatalogEntry, owner, repo, file string) (CatalogEntry, bool) {
	want := hfRef(owner, repo, file)
	for _, e := range entries {
		if e.Ref == want {
			return e, true
		}
	}
	return CatalogEntry{}, false
}

// aliases returns the aliases of entries.
func aliases(entries []CatalogEntry) []string {
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Alias
	}
	return names
}
