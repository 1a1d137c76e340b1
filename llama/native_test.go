package llama_test

import (
	"context"
	"errors"
	"testing"

	"github.com/llamago/llamago/llama"
)

func TestNativeBench(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithBatchSize(64))

	// pp100 in batches of 64, then tg10 after it: 110 positions.
	d, err := c.NativeBench(100, 10, 64)
	if err != nil || d <= 0 {
		t.Fatalf("NativeBench = %v, %v", d, err)
	}
	if lo, hi, _ := c.PositionRange(0); lo != 0 || hi != 109 {
		t.Errorf("positions after pp100+tg10 = [%d, %d], want [0, 109]", lo, hi)
	}
	// It continues the sequence, as llama_batch_get_one does.
	if _, err := c.NativeBench(0, 5, 1); err != nil {
		t.Fatal(err)
	}
	if _, hi, _ := c.PositionRange(0); hi != 114 {
		t.Errorf("last position = %d, want 114", hi)
	}
	if err := c.Synchronize(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logits(-1); !errors.Is(err, llama.ErrNoLogits) {
		t.Errorf("Logits after NativeBench: %v, want ErrNoLogits", err)
	}
	if _, err := c.NativeBench(400, 0, 64); !errors.Is(err, llama.ErrContextFull) {
		t.Errorf("NativeBench past the context: %v, want ErrContextFull", err)
	}
	for _, a := range [][3]int{{0, 0, 1}, {-1, 1, 1}, {1, -1, 1}, {8, 0, 0}, {8, 0, 65}} {
		if _, err := c.NativeBench(a[0], a[1], a[2]); !errors.Is(err, llama.ErrInvalidArgument) {
			t.Errorf("NativeBench(%d, %d, %d) = %v, want ErrInvalidArgument", a[0], a[1], a[2], err)
		}
	}

	// Generate does not trust a cache changed behind its back.
	if err := c.ClearMemory(); err != nil {
		t.Fatal(err)
	}
	greedy := llama.WithSampling(llama.WithGreedy())
	want, err := c.Complete(context.Background(), "Once upon a time", llama.WithMaxTokens(8), greedy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NativeBench(3, 2, 64); err != nil {
		t.Fatal(err)
	}
	got, err := c.Complete(context.Background(), "Once upon a time", llama.WithMaxTokens(8), greedy)
	if err != nil || got.Text != want.Text || got.CachedTokens != 0 {
		t.Errorf("after NativeBench: %q (%d cached), %v; want %q, none cached", got.Text, got.CachedTokens, err, want.Text)
	}

	c.Close()
	if _, err := c.NativeBench(1, 1, 1); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("NativeBench after Close: %v", err)
	}
	if err := c.Synchronize(); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("Synchronize after Close: %v", err)
	}
}
