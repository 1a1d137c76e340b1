// Package testllama opens the test models (package testmodels) with
// package llama, with the settings the tests of llama and of the packages
// above it share; everything it opens is closed when the test ends. It
// also writes the LoRA adapters those tests apply.
package testllama

import (
	"context"
	"testing"

	"github.com/llamago/llamago/internal/testmodels"
	"github.com/llamago/llamago/llama"
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
