package chat

import (
	"testing"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/internal/testmodels"
	"github.com/llamago/llamago/llama"
)

// The test models and their defaults, shared with the other packages'
// tests.
var (
	modelsDir  = testmodels.Dir
	modelPath  = testmodels.Path
	loadModel  = testllama.Load
	newContext = testllama.NewContext
)

// newSeq takes a sequence of c, closed when the test ends.
func newSeq(t testing.TB, c *llama.Context) *llama.Sequence {
	t.Helper()
	q, err := c.NewSequence()
	if err != nil {
		t.Fatalf("NewSequence: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}
