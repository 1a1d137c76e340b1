package llama

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Build describes the llama.cpp the program runs: the sources compiled in
// (the default), or the installed library it is linked with (build tag
// llama_system).
type Build struct {
	// System is true for a program linked with an installed llama.cpp
	// (go build -tags llama_system).
	System bool `json:"system"`
	// Commit is llama.cpp's commit: for the compiled-in sources, the one
	// github.com/ollama/ollama vendors (its llama/build-info.cpp); for an
	// installed library, ggml_commit() (the commit its CMake build was
	// made from, "unknown" outside a git checkout).
	Commit string `json:"commit"`
	// Number is llama.cpp's build number (LLAMA_BUILD_NUMBER): 0 for the
	// sources ollama vendors, which do not carry it; for an installed
	// library, read from its versioned file name (libllama.so.0.0.N), 0
	// if it has none.
	Number int `json:"number"`
	// Compiler is the C compiler llama.cpp was built with, where known.
	Compiler string `json:"compiler,omitempty"`
	// Target is the platform it was built for, where known.
	Target string `json:"target,omitempty"`
	// Source is where llama.cpp comes from: the pinned module
	// ("github.com/ollama/ollama@v0.17.4"), or the path of the installed
	// libllama.
	Source string `json:"source"`
	// GGMLVersion is ggml_version() of an installed library ("" for the
	// compiled-in sources, which ollama builds without a version).
	GGMLVersion string `json:"ggml_version,omitempty"`
}

// BuildInfo returns what is known of the llama.cpp in use. The package
// logs it at its initialisation, at LevelInfo.
func BuildInfo() Build { return buildInfo() }

// String is a one-line description, as `llamago version` prints it.
func (b Build) String() string {
	var s strings.Builder
	s.WriteString(b.Commit)
	if b.Number > 0 {
		fmt.Fprintf(&s, " (build %d)", b.Number)
	}
	if b.System {
		s.WriteString(", system library " + b.Source)
		if b.GGMLVersion != "" {
			s.WriteString(", ggml " + b.GGMLVersion)
		}
	} else {
		s.WriteString(" (vendored in " + strings.Replace(b.Source, "@", " ", 1) + ")")
	}
	if b.Compiler != "" {
		s.WriteString(", built with " + b.Compiler)
	}
	return s.String()
}

func logBuildInfo() {
	l := logger.Load()
	if l == nil {
		return
	}
	b := BuildInfo()
	l.LogAttrs(context.Background(), LevelInfo, "llama.cpp "+b.String(),
		slog.String("source", "llamago"), slog.String("commit", b.Commit), slog.Int("build", b.Number), slog.Bool("system", b.System))
}
