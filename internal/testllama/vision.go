package testllama

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/llamago/llamago/internal/testmodels"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// VisionPair synthesizes a language model and its vision projector of the
// built-in vision shape name (tiny-llava, tiny-qwen2vl) into a temporary
// directory and returns their paths.
func VisionPair(t testing.TB, name string) (model, mmproj string) {
	t.Helper()
	shape, ok := models.LookupProjectorShape(name)
	if !ok {
		t.Fatalf("no vision shape %q", name)
	}
	dir := t.TempDir()
	model, mmproj = filepath.Join(dir, name+".gguf"), filepath.Join(dir, name+"-mmproj.gguf")
	vocab := testmodels.Path(t, "vocab/ggml-vocab-llama-spm.gguf")
	if err := models.SynthesizeFile(model, models.SynthOptions{Shape: shape.LM, Vocab: vocab, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if err := models.SynthesizeProjectorFile(mmproj, models.ProjectorOptions{Shape: shape, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	return model, mmproj
}

// Picture returns a test image of w × h pixels: kind 0 a smooth gradient,
// 1 a checkerboard, 2 noise (seeded by kind), so that images of different
// kinds differ everywhere.
func Picture(t testing.TB, w, h, kind int) *llama.Image {
	t.Helper()
	rgb := make([]byte, 0, 3*w*h)
	r := rand.New(rand.NewPCG(uint64(kind), 7))
	for y := range h {
		for x := range w {
			switch kind {
			case 0:
				rgb = append(rgb, byte(255*x/max(1, w-1)), byte(255*y/max(1, h-1)), 128)
			case 1:
				v := byte(0)
				if (x/4+y/4)%2 == 0 {
					v = 255
				}
				rgb = append(rgb, v, 255-v, v)
			default:
				rgb = append(rgb, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()))
			}
		}
	}
	im, err := llama.NewImage(w, h, rgb)
	if err != nil {
		t.Fatal(err)
	}
	return im
}
