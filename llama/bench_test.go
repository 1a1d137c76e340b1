package llama_test

import (
	"context"
	"testing"

	"github.com/llamago/llamago/llama"
)

// decodeLoop is the steady state of generation by hand: decode one token
// with a reused Batch, sample the next. The cache is cleared every 128
// positions, as attention gets slower with the length of the sequence.
type decodeLoop struct {
	c   *llama.Context
	s   *llama.Sampler
	b   *llama.Batch
	ctx context.Context
	tok llama.TokenID
	pos int
}

func newDecodeLoop(t testing.TB) *decodeLoop {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	s, err := m.NewSampler(llama.WithGreedy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	b, err := llama.NewBatch(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &decodeLoop{c: c, s: s, b: b, ctx: context.Background(), tok: m.BOS()}
}

func (l *decodeLoop) step() error {
	if l.pos == 128 {
		if err := l.c.ClearMemory(); err != nil {
			return err
		}
		l.pos = 0
	}
	l.b.Clear()
	if err := l.b.Add(l.tok, l.pos, true); err != nil {
		return err
	}
	if err := l.c.Decode(l.ctx, l.b); err != nil {
		return err
	}
	t, err := l.s.Sample(l.c, -1)
	if err != nil {
		return err
	}
	l.tok = t
	l.pos++
	return nil
}

func BenchmarkDecodeSample(b *testing.B) {
	l := newDecodeLoop(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if err := l.step(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
}

// TestDecodeSampleAllocs: a decode and sample step allocates nothing in Go.
func TestDecodeSampleAllocs(t *testing.T) {
	l := newDecodeLoop(t)
	var err error
	allocs := testing.AllocsPerRun(300, func() {
		if e := l.step(); e != nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per decode+sample step, want 0", allocs)
	}
	// A context.Context that can be cancelled costs a watcher per Decode,
	// but the step still works.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.ctx = ctx
	if err := l.step(); err != nil {
		t.Fatal(err)
	}
}

// TestGenerateAllocs: Generate allocates a fixed amount per call (sampler,
// iterator), nothing per token, when there are no stop strings and the
// pieces are whole characters.
func TestGenerateAllocs(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	s, err := m.NewSampler(llama.WithGreedy())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	run := func(n int) float64 {
		var gerr error
		allocs := testing.AllocsPerRun(20, func() {
			for _, err := range c.Generate(ctx, storiesPrompt, llama.WithMaxTokens(n), llama.WithSampler(s)) {
				if err != nil {
					gerr = err
				}
			}
		})
		if gerr != nil {
			t.Fatal(gerr)
		}
		return allocs
	}
	const n = 50
	a1, a2 := run(n), run(2*n)
	t.Logf("allocations per Generate: %v for %d tokens, %v for %d", a1, n, a2, 2*n)
	if perToken := (a2 - a1) / n; perToken != 0 {
		t.Errorf("%v allocations per generated token, want 0", perToken)
	}
	if a1 > 20 {
		t.Errorf("%v allocations per Generate call", a1)
	}
}

func BenchmarkGenerate(b *testing.B) {
	m := loadModel(b, "stories260K.gguf")
	c := newContext(b, m)
	s, err := m.NewSampler(llama.WithGreedy())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const perOp = 64
	ctx := context.Background()
	b.ReportAllocs()
	tokens := 0
	for b.Loop() {
		for _, err := range c.Generate(ctx, storiesPrompt, llama.WithMaxTokens(perOp), llama.WithSampler(s)) {
			if err != nil {
				b.Fatal(err)
			}
			tokens++
		}
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkTokenize(b *testing.B) {
	m := loadModel(b, "vocab/ggml-vocab-llama-spm.gguf", llama.WithVocabOnly())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Tokenize(longStoriesPrompt, llama.AddSpecial); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(longStoriesPrompt)))
}
