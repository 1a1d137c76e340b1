// Package testllama opens the test models (package testmodels) with
// package llama, with the settings the tests of llama and of the packages
// above it share; everything it opens is closed when the test ends. It
// also writes the LoRA adapters those tests apply.
package testllama

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/internal/testmodels"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// Load loads the test model file name.
func Load(t testing.TB, name string, opts ...llama.ModelOption) *llama.Model {
	t.Helper()
	m, err := llama.Load(context.Background(), testmodels.Path(t, name), opts...)
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// NewContext creates a context of 512 positions and one thread (small and
// quick on two busy cores), opts applied after those.
func NewContext(t testing.TB, m *llama.Model, opts ...llama.ContextOption) *llama.Context {
	t.Helper()
	opts = append([]llama.ContextOption{llama.WithContextSize(512), llama.WithThreads(1), llama.WithBatchThreads(1)}, opts...)
	c, err := m.NewContext(opts...)
	if err != nil {
		t.Fatalf("NewContext: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Synth writes a synthetic model of one of package models' shapes (with
// the llama SPM test vocabulary, seed 1) to a temporary file and loads it:
// "tiny-mamba" for a recurrent model, say.
func Synth(t testing.TB, shape string, opts ...llama.ModelOption) *llama.Model {
	t.Helper()
	s, ok := models.LookupShape(shape)
	if !ok {
		t.Fatalf("no shape %q", shape)
	}
	path := filepath.Join(t.TempDir(), shape+".gguf")
	err := models.SynthesizeFile(path, models.SynthOptions{
		Shape: s, Vocab: testmodels.Path(t, "vocab/ggml-vocab-llama-spm.gguf"), Type: gguf.TensorF32, Seed: 1,
	})
	if err != nil {
		t.Fatalf("synthesize %s: %v", shape, err)
	}
	m, err := llama.Load(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Load(%s): %v", shape, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
