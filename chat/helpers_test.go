package chat

import (
	"context"
	"github.com/llamago/llamago/internal/testmodels"
	"path/filepath"
	"testing"

	"github.com/llamago/llamago/llama"
)

// modelsDir is ../shared/models from the repository root, or
// $LLAMAGO_TEST_MODELS. The files are always present in CI, so a missing
// directory fails the test rather than skipping it.
func modelsDir(t testing.TB) string {
	t.Helper()
	return testmodels.Dir(t)
}

func modelPath(t testing.TB, name string) string {
	return filepath.Join(modelsDir(t), name)
}

func loadModel(t testing.TB, name string, opts ...llama.ModelOption) *llama.Model {
	t.Helper()
	m, err := llama.Load(context.Background(), modelPath(t, name), opts...)
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newContext(t testing.TB, m *llama.Model, opts ...llama.ContextOption) *llama.Context {
	t.Helper()
	opts = append([]llama.ContextOption{llama.WithContextSize(512), llama.WithThreads(1), llama.WithBatchThreads(1)}, opts...)
	c, err := m.NewContext(opts...)
	if err != nil {
		t.Fatalf("NewContext: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
