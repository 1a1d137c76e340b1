package llama_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// TestRecurrentFailedDecode: a decode cancelled after some of its
// micro-batches leaves them in a recurrent model's memory, which cannot
// remove part of a sequence. The sequence's history must then not be
// trusted: a prompt that extends the history it had before starts again
// from an empty sequence, and gives what a fresh context gives.
func TestRecurrentFailedDecode(t *testing.T) {
	m := testllama.Synth(t, "tiny-mamba")
	prompt, err := m.Tokenize(strings.Repeat("Once upon a time there was a little girl. ", 150), llama.AddSpecial)
	if err != nil {
		t.Fatal(err)
	}
	short, next := prompt[:20], prompt[:40]
	opts := []llama.ContextOption{llama.WithContextSize(4096), llama.WithBatchSize(4096), llama.WithUBatchSize(32)}
	want := mustGenerateTokens(t, newContext(t, m, opts...), next, greedy(10)...)

	c := newContext(t, m, opts...)
	// A deadline that passes during the long prompt's decode, after its
	// first micro-batches: try shorter and longer ones until one does.
	hit := false
	for d := 100 * time.Microsecond; d < 2*time.Second && !hit; d *= 2 {
		// The sequence holds short, which the long prompt extends.
		mustGenerateTokens(t, c, short, greedy(1)...)
		ctx, cancel := context.WithTimeout(context.Background(), d)
		var genErr error
		for _, err := range c.GenerateTokens(ctx, prompt, greedy(1)...) {
			genErr = err
		}
		cancel()
		lo, hi, err := c.PositionRange(0)
		if err != nil {
			t.Fatal(err)
		}
		hit = errors.Is(genErr, context.DeadlineExceeded) && hi >= len(short)
		t.Logf("deadline %v: %v, positions %d..%d", d, genErr, lo, hi)
		if hit {
			if tokens, ok := c.SequenceTokens(0); ok && len(tokens) != hi+1 {
				t.Errorf("after the cancelled decode the history says %d tokens, the memory holds positions %d..%d", len(tokens), lo, hi)
			}
		}
		if !hit {
			if err := c.ClearMemory(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !hit {
		t.Fatal("no deadline passed during the decode")
	}
	r := generateTokens(t, c, context.Background(), next, greedy(10)...)
	if r.err != nil || !slices.Equal(r.ids, want.ids) {
		t.Errorf("after the cancelled decode: %v %v, want %v (a fresh context's)", r.ids, r.err, want.ids)
	}
}
