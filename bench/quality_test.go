package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/internal/testmodels"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// storyText is the perplexity tests' text (llama/testdata/story.txt).
func storyText(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "llama", "testdata", "story.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// klBase saves the base of m over text in memory.
func klBase(t *testing.T, m *llama.Model, text string, o KLOptions) ([]byte, llama.PerplexityChunk) {
	t.Helper()
	tokens, err := m.PerplexityTokens(text)
	if err != nil {
		t.Fatal(err)
	}
	c := testllama.NewContext(t, m, llama.WithContextSize(o.Window), llama.WithBatchSize(o.Window))
	var buf bytes.Buffer
	var last llama.PerplexityChunk
	for r, err := range SaveKLBase(context.Background(), c, tokens, filepath.Base(m.Path()), o, &buf) {
		if err != nil {
			t.Fatalf("SaveKLBase: %v", err)
		}
		last = r
	}
	return buf.Bytes(), last
}

// compareKL compares m with base over text.
func compareKL(t *testing.T, m *llama.Model, text string, base []byte) (KLStats, error) {
	t.Helper()
	tokens, err := m.PerplexityTokens(text)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(base)
	h, err := ReadKLHeader(r)
	if err != nil {
		return KLStats{}, err
	}
	c := testllama.NewContext(t, m, llama.WithContextSize(h.Window), llama.WithBatchSize(h.Window))
	var st KLStats
	n := 0
	for res, err := range CompareKL(context.Background(), c, tokens, h, r, 0) {
		if err != nil {
			return st, err
		}
		n++
		if res.Chunk != n || res.Chunks != h.Chunks {
			t.Errorf("chunk %d of %d, want %d of %d", res.Chunk, res.Chunks, n, h.Chunks)
		}
		st = res.Stats
	}
	return st, nil
}

func TestKLDivergenceSelf(t *testing.T) {
	m := testllama.Load(t, "stories260K.gguf")
	text := storyText(t)
	base, ppl := klBase(t, m, text, KLOptions{Window: 64, Chunks: 5})
	h, err := ReadKLHeader(bytes.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	if h.NVocab != m.VocabSize() || h.Window != 64 || h.Chunks != 5 || h.Name != "stories260K.gguf" {
		t.Errorf("header %+v", h)
	}
	if want := 5*31*klRecordSize(m.VocabSize()) + 8 + 16 + 64 + 2 + len(h.Name); len(base) != want {
		t.Errorf("base of %d bytes, want %d", len(base), want)
	}
	st, err := compareKL(t, m, text, base)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tokens != 5*31 || st.KLD != 0 || st.KLDMax != 0 || st.SameTop != 1 || st.LogRatio != 0 || st.Ratio != 1 {
		t.Errorf("the model against itself: %+v", st)
	}
	if st.PPL != ppl.PPL || st.PPLBase != ppl.PPL || st.PPLUnc != ppl.Uncertainty {
		t.Errorf("PPL %v ± %v and base %v, Perplexity gave %v ± %v", st.PPL, st.PPLUnc, st.PPLBase, ppl.PPL, ppl.Uncertainty)
	}
}

// TestKLDivergenceQuants quantizes a synthetic llama-60m (F16) to Q8_0,
// Q4_K_M and Q4_0 and checks that their mean KL divergence from it grows
// in that order, and that their top-1 agreement does not grow.
func TestKLDivergenceQuants(t *testing.T) {
	dir := t.TempDir()
	s, _ := models.LookupShape("llama-60m")
	f16 := filepath.Join(dir, "llama-60m-F16.gguf")
	if err := models.SynthesizeFile(f16, models.SynthOptions{
		Shape: s, Vocab: testmodels.Path(t, "vocab/ggml-vocab-llama-spm.gguf"), Type: gguf.TensorF16, Seed: 1,
	}); err != nil {
		t.Fatal(err)
	}
	load := func(path string) *llama.Model {
		m, err := llama.Load(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	text := storyText(t)
	base, _ := klBase(t, load(f16), text, KLOptions{Window: 64, Chunks: 3})
	var prev KLStats
	for i, q := range []string{"Q8_0", "Q4_K_M", "Q4_0"} {
		ft, err := llama.ParseFileType(q)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "llama-60m-"+q+".gguf")
		if err := llama.Quantize(context.Background(), f16, out, ft, llama.WithQuantizeThreads(1)); err != nil {
			t.Fatal(err)
		}
		st, err := compareKL(t, load(out), text, base)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		t.Logf("%s: KLD %.6f ± %.6f, median %.6f, 99%% %.6f, same top %.1f%%, PPL ratio %.4f", q, st.KLD, st.KLDUnc, st.KLDMedian, st.KLD99, 100*st.SameTop, st.Ratio)
		if !(st.KLD > 0) || st.Tokens != 3*31 {
			t.Errorf("%s: %+v", q, st)
		}
		if i > 0 && !(st.KLD > prev.KLD) {
			t.Errorf("%s: mean KLD %.6f, not above the previous quantization's %.6f", q, st.KLD, prev.KLD)
		}
		os.Remove(out)
		prev = st
	}
}

func TestKLDivergenceRefused(t *testing.T) {
	m := testllama.Load(t, "stories260K.gguf")
	text := storyText(t)
	base, _ := klBase(t, m, text, KLOptions{Window: 64, Chunks: 2})

	other := testllama.Synth(t, "tiny")
	if _, err := compareKL(t, other, text, base); !errors.Is(err, ErrKLBaseMismatch) {
		t.Errorf("another model: error %v", err)
	}
	if _, err := compareKL(t, m, text+" And then it rained again.", base); !errors.Is(err, ErrKLBaseMismatch) {
		t.Errorf("another text: error %v", err)
	}
	for _, tt := range []struct {
		name string
		file []byte
	}{
		{"empty", nil},
		{"not a base", []byte("GGUF and more bytes than the header of a base file has, surely, yes, more than ninety of them")},
		{"cut short", base[:len(base)-100]},
		{"header only", base[:8+16+64+2+len("stories260K.gguf")]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := compareKL(t, m, text, tt.file); !errors.Is(err, ErrNotKLBase) {
				t.Errorf("error %v, want ErrNotKLBase", err)
			}
		})
	}
	// A window larger than the comparing context's sequences is refused.
	h, _ := ReadKLHeader(bytes.NewReader(base))
	tokens, _ := m.PerplexityTokens(text)
	if err := h.Check(m, tokens, 32); !errors.Is(err, ErrKLBaseMismatch) {
		t.Errorf("small context: error %v", err)
	}
}
