package llama_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// visionModel loads a synthetic vision pair and a context of two sequences.
func visionModel(t *testing.T, shape string) (*llama.Model, *llama.Projector, *llama.Context) {
	t.Helper()
	mp, pp := testllama.VisionPair(t, shape)
	m, err := llama.Load(context.Background(), mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	p, err := m.LoadProjector(pp, llama.WithProjectorThreads(1))
	if err != nil {
		t.Fatalf("LoadProjector: %v", err)
	}
	c := newContext(t, m, llama.WithContextSize(2048), llama.WithSequences(2))
	return m, p, c
}

// seeGreedy generates n tokens greedily from prompt with images in seq (or a
// free sequence of c if seq is nil).
func seeGreedy(t *testing.T, c *llama.Context, seq *llama.Sequence, p *llama.Projector, prompt string, n int, images ...*llama.Image) ([]llama.TokenID, llama.Stats) {
	t.Helper()
	var st llama.Stats
	opts := []llama.GenerateOption{llama.WithMaxTokens(n), llama.WithSampling(llama.WithTemperature(0)), llama.WithStats(&st), llama.WithImages(p, images...)}
	gen := c.Generate
	if seq != nil {
		gen = seq.Generate
	}
	var out []llama.TokenID
	for tok, err := range gen(context.Background(), prompt, opts...) {
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		out = append(out, tok.ID)
	}
	return out, st
}

func TestVisionGenerate(t *testing.T) {
	for _, shape := range []string{"tiny-llava", "tiny-qwen2vl"} {
		t.Run(shape, func(t *testing.T) {
			_, p, c := visionModel(t, shape)
			a, b := testllama.Picture(t, 48, 40, 0), testllama.Picture(t, 48, 40, 2)
			outA, st := seeGreedy(t, c, nil, p, "Describe the image:", 16, a)
			if len(outA) != 16 || st.Images != 1 || st.ImageEncode <= 0 {
				t.Fatalf("%d tokens, stats %+v", len(outA), st)
			}
			t.Logf("A: %v, stats %+v", outA, st)
			outB, _ := seeGreedy(t, c, nil, p, "Describe the image:", 16, b)
			t.Logf("B: %v", outB)
			if slices.Equal(outA, outB) {
				t.Errorf("the same output for different images: %v", outA)
			}
			// A fresh context gives the same tokens for A: deterministic.
			c2 := newContext(t, c.Model(), llama.WithContextSize(2048))
			again, _ := seeGreedy(t, c2, nil, p, "Describe the image:", 16, a)
			if !slices.Equal(outA, again) {
				t.Errorf("image A in a fresh context: %v, first %v", again, outA)
			}
		})
	}
}

func TestVisionBadImages(t *testing.T) {
	if _, err := llama.NewImage(0, 0, nil); !errors.Is(err, llama.ErrInvalidImage) {
		t.Errorf("0x0: %v", err)
	}
}
