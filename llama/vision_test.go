//go:build !llama_system

package llama_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/llamago/llamago/gguf"
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

// A sequence reuses the images and text it holds: the same prompt again
// encodes nothing and decodes only its last token, a prompt with another
// image re-encodes from that image on, and both give what a fresh
// sequence gives.
func TestVisionPrefixReuse(t *testing.T) {
	for _, shape := range []string{"tiny-llava", "tiny-qwen2vl"} {
		t.Run(shape, func(t *testing.T) {
			m, p, c := visionModel(t, shape)
			a, b := testllama.Picture(t, 32, 32, 1), testllama.Picture(t, 32, 32, 2)
			fresh := func(prompt string, images ...*llama.Image) []llama.TokenID {
				c2 := newContext(t, m, llama.WithContextSize(2048))
				out, _ := seeGreedy(t, c2, nil, p, prompt, 8, images...)
				return out
			}
			const two = "First <__media__> then <__media__>, which differ:"
			q, err := c.NewSequence()
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			first, st1 := seeGreedy(t, c, q, p, two, 8, a, b)
			if st1.Images != 2 || st1.CachedTokens != 0 {
				t.Errorf("first: %+v", st1)
			}
			if want := fresh(two, a, b); !slices.Equal(first, want) {
				t.Errorf("first %v, fresh %v", first, want)
			}
			again, st2 := seeGreedy(t, c, q, p, two, 8, a, b)
			if st2.ImageEncode != 0 || st2.CachedTokens != st2.PromptTokens-1 {
				t.Errorf("the same prompt again: %+v, want no encoding and all but one position cached", st2)
			}
			if !slices.Equal(again, first) {
				t.Errorf("again %v, first %v", again, first)
			}
			// The second image changes: the first is reused, the second
			// encoded.
			swapped, st3 := seeGreedy(t, c, q, p, two, 8, a, a)
			if st3.ImageEncode == 0 || st3.CachedTokens == 0 || st3.CachedTokens >= st3.PromptTokens-4 {
				t.Errorf("second image changed: %+v", st3)
			}
			if want := fresh(two, a, a); !slices.Equal(swapped, want) {
				t.Errorf("a, a after a, b: %v, fresh %v", swapped, want)
			}
			if slices.Equal(swapped, first) {
				t.Errorf("a, a gives what a, b gave: %v", first)
			}
			// Order matters.
			if ba := fresh(two, b, a); slices.Equal(ba, first) {
				t.Errorf("b, a gives what a, b gave: %v", first)
			}
			// A text prompt after it reuses nothing of the images and
			// generates what it generates in a fresh sequence.
			var st llama.Stats
			text, err := q.Complete(context.Background(), "First", llama.WithMaxTokens(8), llama.WithSampling(llama.WithTemperature(0)), llama.WithStats(&st))
			if err != nil {
				t.Fatal(err)
			}
			c3 := newContext(t, m, llama.WithContextSize(2048))
			want, err := c3.Complete(context.Background(), "First", llama.WithMaxTokens(8), llama.WithSampling(llama.WithTemperature(0)))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(text.Tokens, want.Tokens) {
				t.Errorf("text after images: %v, fresh %v", text.Tokens, want.Tokens)
			}
		})
	}
}

// Bad prompts, images and projectors give clear errors, and leave the
// sequence as it was: what it holds, and what it generates next.
func TestVisionBadInputChangesNothing(t *testing.T) {
	m, p, c := visionModel(t, "tiny-llava")
	img := testllama.Picture(t, 32, 32, 0)
	q, err := c.NewSequence()
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const prompt = "Look: <__media__> What is it?"
	first, _ := seeGreedy(t, c, q, p, prompt, 8, img)
	held, _ := q.Tokens()

	other := testllama.Load(t, "stories260K.gguf")
	_, otherProj := testllama.VisionPair(t, "tiny-llava")
	op, err := other.LoadProjector(otherProj)
	if err != nil {
		t.Fatal(err) // the same embedding size: it loads, for another model
	}
	closed, err := m.LoadProjector(otherProj)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	many := make([]*llama.Image, llama.MaxImagesPerPrompt+1)
	for i := range many {
		many[i] = img
	}
	for _, tc := range []struct {
		name   string
		prompt string
		opts   []llama.GenerateOption
		want   error
	}{
		{"fewer markers than images", prompt, []llama.GenerateOption{llama.WithImages(p, img, img)}, llama.ErrInvalidArgument},
		{"more markers than images", "<__media__><__media__> x", []llama.GenerateOption{llama.WithImages(p, img)}, llama.ErrInvalidArgument},
		{"ends with an image", "Look: <__media__>", []llama.GenerateOption{llama.WithImages(p, img)}, llama.ErrInvalidArgument},
		{"nil projector", prompt, []llama.GenerateOption{llama.WithImages(nil, img)}, llama.ErrInvalidArgument},
		{"another model's projector", prompt, []llama.GenerateOption{llama.WithImages(op, img)}, llama.ErrInvalidArgument},
		{"closed projector", prompt, []llama.GenerateOption{llama.WithImages(closed, img)}, llama.ErrClosed},
		{"nil image", prompt, []llama.GenerateOption{llama.WithImages(p, nil)}, llama.ErrInvalidImage},
		{"zero image", prompt, []llama.GenerateOption{llama.WithImages(p, &llama.Image{})}, llama.ErrInvalidImage},
		{"too many images", "x", []llama.GenerateOption{llama.WithImages(p, many...)}, llama.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append(tc.opts, llama.WithMaxTokens(4))
			res, err := q.Complete(context.Background(), tc.prompt, opts...)
			st := res.Stats
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			t.Log(err)
			if st.StopReason != llama.StopError {
				t.Errorf("stop reason %v", st.StopReason)
			}
			if now, _ := q.Tokens(); !slices.Equal(now, held) {
				t.Errorf("the sequence changed: %d positions, had %d", len(now), len(held))
			}
		})
	}
	// Tokens cannot carry images.
	for _, err := range q.GenerateTokens(context.Background(), []llama.TokenID{1, 2}, llama.WithImages(p, img)) {
		if !errors.Is(err, llama.ErrInvalidArgument) {
			t.Errorf("GenerateTokens with images: %v", err)
		}
	}
	// A prompt that does not fit: the images are refused before any is
	// encoded.
	small := newContext(t, m, llama.WithContextSize(256))
	var st llama.Stats
	_, err = small.Complete(context.Background(), "x", llama.WithImages(p, slices.Repeat([]*llama.Image{img}, 20)...), llama.WithStats(&st))
	if !errors.Is(err, llama.ErrContextFull) || st.ImageEncode != 0 {
		t.Errorf("20 images of 16 positions in 256: %v, %+v", err, st)
	}
	again, _ := seeGreedy(t, c, q, p, prompt, 8, img)
	if !slices.Equal(again, first) {
		t.Errorf("after the errors: %v, before %v", again, first)
	}
}

// Images of unusual shapes go through both projectors' preprocessing:
// llama.cpp resizes them; nothing aborts.
func TestVisionOddSizes(t *testing.T) {
	for _, shape := range []string{"tiny-llava", "tiny-qwen2vl"} {
		t.Run(shape, func(t *testing.T) {
			_, p, c := visionModel(t, shape)
			for _, sz := range [][2]int{{1, 1}, {1, 300}, {300, 1}, {7, 5}, {64, 48}} {
				out, st := seeGreedy(t, c, nil, p, "Size:", 2, testllama.Picture(t, sz[0], sz[1], 2))
				if len(out) != 2 {
					t.Errorf("%dx%d: %v, %+v", sz[0], sz[1], out, st)
				}
			}
		})
	}
}

// Projector files are checked before llama.cpp reads them.
func TestLoadProjectorErrors(t *testing.T) {
	mp, pp := testllama.VisionPair(t, "tiny-llava")
	m, err := llama.Load(context.Background(), mp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	small := testllama.Load(t, "llama-2-tiny-random.gguf")
	if _, err := small.LoadProjector(pp); !errors.Is(err, llama.ErrInvalidModel) {
		t.Errorf("a projector of 64 for a model of 8: %v", err)
	}
	data, err := os.ReadFile(pp)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// image_mean as int32s: clip's loader would read them as floats,
	// and an asserting getter would abort on the other keys.
	f, err := gguf.Open(pp)
	if err != nil {
		t.Fatal(err)
	}
	for i, kv := range f.KV {
		if kv.Key == "clip.vision.image_mean" {
			f.KV[i].Value = gguf.ArrayValue([]int32{1, 2, 3})
		}
		if kv.Key == "clip.vision.patch_size" {
			f.KV[i].Value = gguf.Float32Value(8)
		}
	}
	var badKeys bytes.Buffer
	src, _ := os.Open(pp)
	defer src.Close()
	if err := gguf.Write(&badKeys, f, func(i int, w io.Writer) error {
		_, err := io.Copy(w, f.TensorReader(src, i))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		want       error
	}{
		{"missing", filepath.Join(dir, "nope.gguf"), os.ErrNotExist},
		{"a language model", mp, llama.ErrInvalidModel},
		{"truncated", write("trunc.gguf", data[:len(data)/2]), llama.ErrInvalidModel},
		{"not gguf", write("text.gguf", []byte("hello")), llama.ErrNotGGUF},
		{"wrong key types", write("keys.gguf", badKeys.Bytes()), llama.ErrInvalidModel},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := m.LoadProjector(tc.path)
			if !errors.Is(err, tc.want) || p != nil {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
	// Close is idempotent, and closing the model closes its projectors.
	p, err := m.LoadProjector(pp)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	p.Close()
	p.Close()
}

func TestDefaultMediaMarker(t *testing.T) {
	if llama.DefaultMediaMarker != llama.MtmdDefaultMarker {
		t.Errorf("DefaultMediaMarker %q, mtmd's %q", llama.DefaultMediaMarker, llama.MtmdDefaultMarker)
	}
}

// Image prompts in some sequences and text prompts in others, from
// goroutines of their own, give what each gives alone: the images are
// encoded outside the context's lock while the others decode.
func TestVisionConcurrent(t *testing.T) {
	m, p, _ := visionModel(t, "tiny-qwen2vl")
	c := newContext(t, m, llama.WithContextSize(4096), llama.WithSequences(4))
	imgs := []*llama.Image{testllama.Picture(t, 40, 32, 0), testllama.Picture(t, 40, 32, 2)}
	alone := func(i int) []llama.TokenID {
		c1 := newContext(t, m, llama.WithContextSize(1024))
		if i < 2 {
			out, _ := seeGreedy(t, c1, nil, p, "Look: <__media__> what?", 12, imgs[i])
			return out
		}
		r, err := c1.Complete(context.Background(), "Once upon a time", llama.WithMaxTokens(12), llama.WithSampling(llama.WithTemperature(0)))
		if err != nil {
			t.Fatal(err)
		}
		return r.Tokens
	}
	var want [4][]llama.TokenID
	for i := range want {
		want[i] = alone(i)
	}
	for round := range 3 {
		var got [4][]llama.TokenID
		errs := make(chan error, 4)
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				opts := []llama.GenerateOption{llama.WithMaxTokens(12), llama.WithSampling(llama.WithTemperature(0))}
				prompt := "Once upon a time"
				if i < 2 {
					prompt = "Look: <__media__> what?"
					opts = append(opts, llama.WithImages(p, imgs[i]))
				}
				r, err := c.Complete(context.Background(), prompt, opts...)
				if err != nil {
					errs <- err
					return
				}
				got[i] = r.Tokens
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := range 4 {
			if !slices.Equal(got[i], want[i]) {
				t.Errorf("round %d, generation %d: %v, alone %v", round, i, got[i], want[i])
			}
		}
	}
}
