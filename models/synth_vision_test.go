package models

import (
	"bytes"
	"testing"

	"github.com/llamago/llamago/gguf"
)

// The projectors carry the keys and tensors llama.cpp's clip loader reads;
// that mtmd loads and runs them is tested in package llama.
func TestSynthesizeProjector(t *testing.T) {
	for _, name := range []string{"tiny-llava", "tiny-qwen2vl"} {
		shape, ok := LookupProjectorShape(name)
		if !ok {
			t.Fatalf("no shape %s", name)
		}
		var b bytes.Buffer
		if err := SynthesizeProjector(&b, ProjectorOptions{Shape: shape, Seed: 1}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Read(bytes.NewReader(b.Bytes()), int64(b.Len()))
		if err != nil {
			t.Fatal(err)
		}
		p := inspectProjector(f)
		if p == nil || p.Type != shape.Projector || !p.Vision || p.Output != uint64(shape.LM.Embd) ||
			p.Embd != uint64(shape.Embd) || p.Layers != uint64(shape.Layers) || len(p.ImageMean) != 3 {
			t.Errorf("%s: %+v", name, p)
		}
		for _, tn := range []string{"v.patch_embd.weight", "mm.0.weight", "mm.2.weight", "v.blk.0.attn_out.weight", "v.blk.0.ffn_down.weight"} {
			if _, ok := f.Tensor(tn); !ok {
				t.Errorf("%s: no tensor %s", name, tn)
			}
		}
		// The same seed, the same file.
		var b2 bytes.Buffer
		SynthesizeProjector(&b2, ProjectorOptions{Shape: shape, Seed: 1})
		if !bytes.Equal(b.Bytes(), b2.Bytes()) {
			t.Errorf("%s: two files for one seed", name)
		}
	}
	bad := ProjectorShapes[0]
	bad.FF = bad.Embd
	if err := SynthesizeProjector(&bytes.Buffer{}, ProjectorOptions{Shape: bad}); err == nil {
		t.Error("a shape clip would misread was written")
	}
}
