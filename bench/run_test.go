package bench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/llamago/llamago/internal/testmodels"
	"github.com/llamago/llamago/llama"
)

// newHotPath loads stories260K and returns the Go loop of tg on it.
func newHotPath(tb testing.TB) *Loop {
	tb.Helper()
	m, err := llama.Load(context.Background(), testmodels.Path(tb, "stories260K.gguf"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	c, err := m.NewContext(llama.WithContextSize(512), llama.WithThreads(1), llama.WithBatchThreads(1))
	if err != nil {
		tb.Fatal(err)
	}
	l, err := NewLoop(c)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(l.Close)
	return l
}

// TestBenchHotPathAllocs checks that generating a token through the Go
// loop (Batch.Clear, Batch.Add, Context.Decode, Context.Synchronize)
// allocates nothing.
func TestBenchHotPathAllocs(t *testing.T) {
	l := newHotPath(t)
	pos := 0
	step := func() {
		if err := l.step(l.token(), pos); err != nil {
			t.Fatal(err)
		}
		pos++
	}
	step() // first use sizes the context's buffers
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Errorf("%v allocations per generated token, want 0", n)
	}
}

// BenchmarkTokenGo is the Go loop's cost per generated token (tg) on
// stories260K, where the binding's overhead shows most; compare with
// BenchmarkTokenNative.
func BenchmarkTokenGo(b *testing.B) {
	l := newHotPath(b)
	n := l.c.ContextSize()
	b.ReportAllocs()
	pos := 0
	for b.Loop() {
		if pos == n {
			l.c.ClearMemory()
			pos = 0
		}
		if err := l.step(l.token(), pos); err != nil {
			b.Fatal(err)
		}
		pos++
	}
}

// BenchmarkTokenNative is llama-bench's C loop per generated token, called
// once per token (a cgo call per token, as the Go loop makes several).
func BenchmarkTokenNative(b *testing.B) {
	l := newHotPath(b)
	n := l.c.ContextSize()
	b.ReportAllocs()
	pos := 0
	for b.Loop() {
		if pos == n {
			l.c.ClearMemory()
			pos = 0
		}
		if _, err := l.c.NativeBench(0, 1, 1); err != nil {
			b.Fatal(err)
		}
		pos++
	}
}

// BenchmarkPrompt64Go and BenchmarkPrompt64Native time pp64 on
// stories260K: one batch of 64 tokens.
func BenchmarkPrompt64Go(b *testing.B) {
	l := newHotPath(b)
	b.ReportAllocs()
	for b.Loop() {
		l.c.ClearMemory()
		if _, err := l.Run(64, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrompt64Native(b *testing.B) {
	l := newHotPath(b)
	b.ReportAllocs()
	for b.Loop() {
		l.c.ClearMemory()
		if _, err := l.c.NativeBench(64, 0, l.nBatch); err != nil {
			b.Fatal(err)
		}
	}
}

// TestInterleaveTG: both loops decode positions 0..nGen-1 in chunks, the
// one going first alternating, over a cache that holds nGen positions at
// the end; each loop's time is the sum of its chunks.
func TestInterleaveTG(t *testing.T) {
	l := newHotPath(t)
	type call struct{ side, from, n int }
	var calls []call
	var run [2]func(int, int) (time.Duration, error)
	for side := range 2 {
		run[side] = func(nPrompt, nGen int) (time.Duration, error) {
			_, hi, err := l.c.PositionRange(0)
			if err != nil {
				return 0, err
			}
			calls = append(calls, call{side, hi + 1, nGen})
			if _, err := l.Run(nPrompt, nGen); err != nil {
				return 0, err
			}
			return time.Duration(side+1) * time.Millisecond, nil
		}
	}
	if err := l.c.ClearMemory(); err != nil {
		t.Fatal(err)
	}
	total, err := InterleaveTG(l.c, run, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []call{{1, 0, 8}, {0, 0, 8}, {0, 8, 8}, {1, 8, 8}, {1, 16, 4}, {0, 16, 4}}
	if !slices.Equal(calls, want) {
		t.Errorf("calls (side, first position, tokens) = %v, want %v", calls, want)
	}
	if total != [2]time.Duration{3 * time.Millisecond, 6 * time.Millisecond} {
		t.Errorf("totals %v, want [3ms 6ms]", total)
	}
	if lo, hi, err := l.c.PositionRange(0); err != nil || lo != 0 || hi != 19 {
		t.Errorf("cache holds positions %d..%d (%v), want 0..19", lo, hi, err)
	}
}

// TestLoopSequences: with several sequences the loop decodes a prompt in
// each, then a token of each per batch, every sequence to the same length.
func TestLoopSequences(t *testing.T) {
	m, err := llama.Load(context.Background(), testmodels.Path(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(llama.WithSequences(3), llama.WithContextSize(3*256), llama.WithBatchSize(16), llama.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := NewLoop(c)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.seqs = 3
	if _, err := l.Run(10, 5); err != nil {
		t.Fatal(err)
	}
	for s := range 3 {
		if lo, hi, err := c.PositionRange(s); err != nil || lo != 0 || hi != 14 {
			t.Errorf("sequence %d holds positions %d..%d (%v), want 0..14", s, lo, hi, err)
		}
	}
}
