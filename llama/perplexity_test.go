package llama_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// storyText is the test text of the perplexity tests: a plain English
// story written for them, which stories260K's vocabulary covers.
func storyText(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "story.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// synth60m writes the llama-60m shape with F16 weights, as the benchmark
// models are made, to dir.
func synth60m(t testing.TB, dir string) string {
	t.Helper()
	s, ok := models.LookupShape("llama-60m")
	if !ok {
		t.Fatal("no llama-60m shape")
	}
	path := filepath.Join(dir, "llama-60m-F16.gguf")
	if err := models.SynthesizeFile(path, models.SynthOptions{
		Shape: s, Vocab: modelPath(t, "vocab/ggml-vocab-llama-spm.gguf"), Type: gguf.TensorF16, Seed: 1,
	}); err != nil {
		t.Fatal(err)
	}
	return path
}

// collectPerplexity runs Perplexity to the end.
func collectPerplexity(t testing.TB, c *llama.Context, tokens []llama.TokenID, opts ...llama.PerplexityOption) []llama.PerplexityChunk {
	t.Helper()
	var got []llama.PerplexityChunk
	for r, err := range c.Perplexity(context.Background(), tokens, opts...) {
		if err != nil {
			t.Fatalf("Perplexity: %v", err)
		}
		got = append(got, r)
	}
	return got
}

// TestPerplexityMatchesC compares Context.Perplexity with a separate C
// loop over llama.h (perplexity_check.c) on the same model, text and
// window, to the precision llama-perplexity prints: the running estimate
// of each chunk (%.4f) and the final value and uncertainty (%.4f, %.5f).
// The Go side also runs with the window in several batches and with
// several windows decoded at once in sequences of their own.
func TestPerplexityMatchesC(t *testing.T) {
	text := storyText(t)
	type config struct {
		name                string
		window, batch, seqs int
		chunks              int
	}
	for _, tt := range []struct {
		model   string
		load    func(t *testing.T) *llama.Model
		configs []config
	}{
		{"stories260K", func(t *testing.T) *llama.Model { return loadModel(t, "stories260K.gguf") }, []config{
			{"one batch a window", 64, 64, 1, 0},
			{"three batches a window", 64, 24, 1, 0},
			{"four windows a batch", 64, 256, 4, 0},
			{"chunks", 128, 128, 1, 2},
		}},
		{"llama-60m", func(t *testing.T) *llama.Model {
			m, err := llama.Load(context.Background(), synth60m(t, t.TempDir()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.Close() })
			return m
		}, []config{
			{"one batch a window", 96, 96, 1, 3},
			{"two windows a batch", 96, 192, 2, 3},
		}},
	} {
		t.Run(tt.model, func(t *testing.T) {
			m := tt.load(t)
			tokens, err := m.PerplexityTokens(text)
			if err != nil {
				t.Fatal(err)
			}
			if m.AddsBOS() && tokens[0] != m.BOS() {
				t.Fatalf("tokens start with %d, not BOS %d", tokens[0], m.BOS())
			}
			for _, cf := range tt.configs {
				t.Run(cf.name, func(t *testing.T) {
					cc := newContext(t, m, llama.WithContextSize(cf.window), llama.WithBatchSize(cf.window))
					want, nll, nll2, count, err := llama.CheckPerplexity(cc, text, cf.window, cf.window, cf.chunks)
					if err != nil {
						t.Fatal(err)
					}
					wantPPL, wantUnc := llama.PerplexityOf(nll, nll2, count)

					c := newContext(t, m, llama.WithContextSize(cf.window*cf.seqs), llama.WithSequences(cf.seqs),
						llama.WithBatchSize(cf.batch), llama.WithUBatchSize(cf.batch))
					got := collectPerplexity(t, c, tokens, llama.WithWindow(cf.window), llama.WithChunks(cf.chunks))
					if len(got) != len(want) || len(got) < 2 {
						t.Fatalf("%d chunks, the C loop evaluated %d", len(got), len(want))
					}
					for i, r := range got {
						if r.Chunk != i+1 || r.Chunks != len(want) || r.Tokens != (i+1)*(cf.window-1-cf.window/2) {
							t.Errorf("chunk %d: %+v", i+1, r)
						}
						if g, w := fmt.Sprintf("%.4f", r.PPL), fmt.Sprintf("%.4f", want[i]); g != w {
							t.Errorf("chunk %d: PPL %s, C loop %s", i+1, g, w)
						}
					}
					last := got[len(got)-1]
					if g, w := fmt.Sprintf("%.4f +/- %.5f", last.PPL, last.Uncertainty), fmt.Sprintf("%.4f +/- %.5f", wantPPL, wantUnc); g != w {
						t.Errorf("final %s, C loop %s", g, w)
					}
					if last.Tokens != count {
						t.Errorf("scored %d tokens, C loop %d", last.Tokens, count)
					}
					if !(last.PPL > 1 && last.PPL < float64(m.VocabSize())*10) || !(last.Uncertainty > 0) {
						t.Errorf("implausible perplexity %v ± %v", last.PPL, last.Uncertainty)
					}
					t.Logf("PPL %.4f +/- %.5f over %d chunks", last.PPL, last.Uncertainty, len(got))
				})
			}
		})
	}
}

// TestPerplexityScoredLogits checks the logits WithScoredLogits hands out
// against the NLL it reports, and that an error from it stops Perplexity.
func TestPerplexityScoredLogits(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	tokens, err := m.PerplexityTokens(storyText(t))
	if err != nil {
		t.Fatal(err)
	}
	c := newContext(t, m, llama.WithContextSize(64), llama.WithBatchSize(64))
	n := 0
	pos := 0
	got := collectPerplexity(t, c, tokens, llama.WithWindow(64), llama.WithChunks(2), llama.WithScoredLogits(func(s llama.ScoredToken) error {
		if s.Pos <= pos && n > 0 || s.Next != tokens[s.Pos] || len(s.Logits) != m.VocabSize() || s.Chunk != (s.Pos)/64 {
			return fmt.Errorf("scored token at %d (chunk %d) after position %d", s.Pos, s.Chunk, pos)
		}
		if p := s.Pos % 64; p < 33 || p > 63 {
			return fmt.Errorf("position %d in its window is not scored", p)
		}
		if nll := negLogLikelihood(s.Logits, s.Next); math.Abs(nll-s.NLL) > 1e-9 {
			return fmt.Errorf("NLL %v, the logits give %v", s.NLL, nll)
		}
		pos = s.Pos
		n++
		return nil
	}))
	if n != got[len(got)-1].Tokens || n != 2*31 {
		t.Errorf("%d scored tokens, result says %d", n, got[len(got)-1].Tokens)
	}
	stop := errors.New("stop")
	for _, err := range c.Perplexity(context.Background(), tokens, llama.WithScoredLogits(func(llama.ScoredToken) error { return stop })) {
		if !errors.Is(err, stop) {
			t.Errorf("error %v, want the callback's", err)
		}
	}
}

func TestPerplexityErrors(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	tokens, err := m.PerplexityTokens(storyText(t))
	if err != nil {
		t.Fatal(err)
	}
	c := newContext(t, m, llama.WithContextSize(128), llama.WithBatchSize(128))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name   string
		ctx    context.Context
		tokens []llama.TokenID
		opts   []llama.PerplexityOption
		want   error
	}{
		{"short text", context.Background(), tokens[:255], nil, llama.ErrShortText},
		{"window too small", context.Background(), tokens, []llama.PerplexityOption{llama.WithWindow(3)}, llama.ErrInvalidArgument},
		{"bad token", context.Background(), append(append([]llama.TokenID{}, tokens...), 1<<20), nil, llama.ErrInvalidToken},
		{"cancelled", cancelled, tokens, nil, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			for _, err := range c.Perplexity(tt.ctx, tt.tokens, tt.opts...) {
				n++
				if !errors.Is(err, tt.want) {
					t.Errorf("error %v, want %v", err, tt.want)
				}
			}
			if n != 1 {
				t.Errorf("%d results, want the error alone", n)
			}
		})
	}
	// llama.cpp rounds context sizes up; a window beyond them is refused.
	for _, err := range c.Perplexity(context.Background(), tokens, llama.WithWindow(c.SequenceContextSize()+1)) {
		if !errors.Is(err, llama.ErrContextFull) {
			t.Errorf("window beyond the context: error %v", err)
		}
	}
	// The context still works afterwards.
	if got := collectPerplexity(t, c, tokens, llama.WithChunks(2)); len(got) != 2 {
		t.Errorf("%d chunks after the errors", len(got))
	}
}

// negLogLikelihood is -log softmax(logits)[t], computed the plain way.
func negLogLikelihood(logits []float32, t llama.TokenID) float64 {
	var z float64
	for _, l := range logits {
		z += math.Exp(float64(l))
	}
	return math.Log(z) - float64(logits[t])
}
