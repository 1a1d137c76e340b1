package models

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/llamago/llamago/gguf"
)

// ProjectorShape is the hyperparameters of a synthetic vision projector
// (an mmproj GGUF file, as llama.cpp's multimodal library loads it) and of
// the language model it feeds.
type ProjectorShape struct {
	Name string
	// LM is the language model's shape: its embedding size is the
	// projector's output size.
	LM Shape
	// Projector is clip.projector_type: "mlp" (LLaVA: a CLIP ViT and a
	// two-layer MLP) or "qwen2vl_merger" (Qwen2-VL: a ViT with M-RoPE
	// whose 2×2 patch groups an MLP merges; the language model uses
	// M-RoPE too).
	Projector string
	Embd      int // clip.vision.embedding_length
	Layers    int // clip.vision.block_count
	Heads     int // clip.vision.attention.head_count
	FF        int // clip.vision.feed_forward_length
	ImageSize int // clip.vision.image_size
	PatchSize int // clip.vision.patch_size
	Hidden    int // the projector MLP's hidden size
}

// ProjectorShapes are the built-in vision shapes: tiny ones for tests, and
// real ones at the sizes of the models they copy.
var ProjectorShapes = []ProjectorShape{
	{Name: "tiny-llava", LM: Shape{Name: "tiny-llava", Arch: "llama", Embd: 64, Layers: 2, Heads: 4, KVHeads: 2, FF: 128, Context: 1024, RopeBase: 10000},
		Projector: "mlp", Embd: 32, Layers: 3, Heads: 4, FF: 48, ImageSize: 32, PatchSize: 8, Hidden: 64},
	// Untied output: with random weights, a tied one makes every token
	// predict itself, whatever came before.
	{Name: "tiny-qwen2vl", LM: Shape{Name: "tiny-qwen2vl", Arch: "qwen2vl", Embd: 64, Layers: 2, Heads: 4, KVHeads: 2, FF: 128, Context: 1024, RopeBase: 1000000},
		Projector: "qwen2vl_merger", Embd: 32, Layers: 2, Heads: 4, FF: 48, ImageSize: 56, PatchSize: 4, Hidden: 128},
	// Qwen2-VL-2B-Instruct: its vision tower (675M parameters) and its
	// language model.
	{Name: "qwen2-vl-2b", LM: Shape{Name: "qwen2-vl-2b", Arch: "qwen2vl", Embd: 1536, Layers: 28, Heads: 12, KVHeads: 2, FF: 8960, Context: 32768, RopeBase: 1000000, TiedOutput: true},
		Projector: "qwen2vl_merger", Embd: 1280, Layers: 32, Heads: 16, FF: 5120, ImageSize: 560, PatchSize: 14, Hidden: 5120},
	// LLaVA 1.5 7B: CLIP ViT-L/14 at 336 pixels and a Llama 2 7B.
	{Name: "llava-1.5-7b", LM: Shape{Name: "llava-1.5-7b", Arch: "llama", Embd: 4096, Layers: 32, Heads: 32, KVHeads: 32, FF: 11008, Context: 4096, RopeBase: 10000},
		Projector: "mlp", Embd: 1024, Layers: 23, Heads: 16, FF: 4096, ImageSize: 336, PatchSize: 14, Hidden: 4096},
}

// LookupProjectorShape returns the built-in vision shape with the given
// name.
func LookupProjectorShape(name string) (ProjectorShape, bool) {
	for _, s := range ProjectorShapes {
		if s.Name == name {
			return s, true
		}
	}
	return ProjectorShape{}, false
}

// ProjectorShapeNames lists the built-in vision shapes' names.
func ProjectorShapeNames() []string {
	var names []string
	for _, s := range ProjectorShapes {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

// ProjectorOptions configures SynthesizeProjector.
type ProjectorOptions struct {
	Shape ProjectorShape
	// Type is the type of the weight matrices: TensorF32 or TensorF16
	// (default). Vectors are always F32.
	Type gguf.TensorType
	// Seed makes the weights reproducible.
	Seed uint64
}

// SynthesizeProjector writes a random-weight vision projector of the
// shape's kind to w, with the metadata keys and tensor names llama.cpp's
// clip loader reads (tools/mtmd/clip-impl.h). Its language model is
// Synthesize's model of opts.Shape.LM; mtmd refuses a projector whose
// output size is not the language model's embedding size.
func SynthesizeProjector(w io.Writer, opts ProjectorOptions) error {
	s := opts.Shape
	if s.Embd <= 0 || s.Layers <= 0 || s.Heads <= 0 || s.Embd%s.Heads != 0 || s.FF <= 0 || s.FF == s.Embd ||
		s.PatchSize <= 0 || s.ImageSize < s.PatchSize || s.ImageSize%s.PatchSize != 0 || s.Hidden <= 0 || s.LM.Embd <= 0 {
		// FF == Embd would make clip take the FFN matrices for swapped.
		return fmt.Errorf("models: inconsistent projector shape %+v", s)
	}
	typ := opts.Type
	switch typ {
	case gguf.TensorF32, gguf.TensorF16:
	default:
		return fmt.Errorf("models: projector weights are F32 or F16, not %s", typ)
	}
	qwen := s.Projector == "qwen2vl_merger"
	if !qwen && s.Projector != "mlp" {
		return fmt.Errorf("models: unknown projector type %q (mlp, qwen2vl_merger)", s.Projector)
	}
	if qwen && (s.ImageSize/s.PatchSize)%2 != 0 {
		return fmt.Errorf("models: qwen2vl_merger needs an even number of patches per side, not %d", s.ImageSize/s.PatchSize)
	}

	f := &gguf.File{}
	kv := func(k string, v gguf.Value) { f.KV = append(f.KV, gguf.KV{Key: k, Value: v}) }
	fileType := uint32(1)
	if typ == gguf.TensorF32 {
		fileType = 0
	}
	kv("general.architecture", gguf.StringValue("clip"))
	kv("general.name", gguf.StringValue("synthetic "+s.Name+" projector"))
	kv("general.file_type", gguf.Uint32Value(fileType))
	kv("clip.projector_type", gguf.StringValue(s.Projector))
	kv("clip.has_vision_encoder", gguf.BoolValue(true))
	kv("clip.use_gelu", gguf.BoolValue(true))
	kv("clip.vision.embedding_length", gguf.Uint32Value(uint32(s.Embd)))
	kv("clip.vision.feed_forward_length", gguf.Uint32Value(uint32(s.FF)))
	kv("clip.vision.block_count", gguf.Uint32Value(uint32(s.Layers)))
	kv("clip.vision.attention.head_count", gguf.Uint32Value(uint32(s.Heads)))
	kv("clip.vision.attention.layer_norm_epsilon", gguf.Float32Value(1e-6))
	kv("clip.vision.projection_dim", gguf.Uint32Value(uint32(s.LM.Embd)))
	kv("clip.vision.image_size", gguf.Uint32Value(uint32(s.ImageSize)))
	kv("clip.vision.patch_size", gguf.Uint32Value(uint32(s.PatchSize)))
	if qwen {
		// Qwen2-VL's preprocessor (OpenAI CLIP's constants).
		kv("clip.vision.image_mean", gguf.ArrayValue([]float32{0.48145466, 0.4578275, 0.40821073}))
		kv("clip.vision.image_std", gguf.ArrayValue([]float32{0.26862954, 0.26130258, 0.27577711}))
		kv("clip.vision.spatial_merge_size", gguf.Uint32Value(2))
	} else {
		kv("clip.vision.image_mean", gguf.ArrayValue([]float32{0.48145466, 0.4578275, 0.40821073}))
		kv("clip.vision.image_std", gguf.ArrayValue([]float32{0.26862954, 0.26130258, 0.27577711}))
	}

	embd, ff, p := uint64(s.Embd), uint64(s.FF), uint64(s.PatchSize)
	nPatches := uint64(s.ImageSize/s.PatchSize) * uint64(s.ImageSize/s.PatchSize)
	type tensor struct {
		name string
		dims []uint64
		norm bool // constant 1
		bias bool // constant 0
	}
	var ts []tensor
	mat := func(name string, dims ...uint64) { ts = append(ts, tensor{name: name, dims: dims}) }
	norm := func(name string, n uint64) { ts = append(ts, tensor{name: name, dims: []uint64{n}, norm: true}) }
	bias := func(name string, n uint64) { ts = append(ts, tensor{name: name, dims: []uint64{n}, bias: true}) }

	// The patch embedding is a convolution: kernel width, height, input
	// channels, output channels. Qwen2-VL's is a 3D convolution over two
	// frames, stored as two 2D kernels.
	mat("v.patch_embd.weight", p, p, 3, embd)
	if qwen {
		mat("v.patch_embd.weight.1", p, p, 3, embd)
	} else {
		mat("v.class_embd", embd)
		mat("v.position_embd.weight", embd, nPatches+1)
		norm("v.pre_ln.weight", embd)
		bias("v.pre_ln.bias", embd)
	}
	for i := range s.Layers {
		b := fmt.Sprintf("v.blk.%d.", i)
		for _, n := range []string{"attn_q", "attn_k", "attn_v", "attn_out"} {
			mat(b+n+".weight", embd, embd)
			bias(b+n+".bias", embd)
		}
		norm(b+"ln1.weight", embd)
		bias(b+"ln1.bias", embd)
		norm(b+"ln2.weight", embd)
		bias(b+"ln2.bias", embd)
		mat(b+"ffn_up.weight", embd, ff)
		bias(b+"ffn_up.bias", ff)
		mat(b+"ffn_down.weight", ff, embd)
		bias(b+"ffn_down.bias", embd)
	}
	hidden, out := uint64(s.Hidden), uint64(s.LM.Embd)
	if qwen {
		// The merger: a norm, then an MLP over each 2×2 group of patches.
		norm("v.post_ln.weight", embd)
		bias("v.post_ln.bias", embd)
		mat("mm.0.weight", 4*embd, hidden)
		bias("mm.0.bias", hidden)
		mat("mm.2.weight", hidden, out)
		bias("mm.2.bias", out)
	} else {
		mat("mm.0.weight", embd, hidden)
		bias("mm.0.bias", hidden)
		mat("mm.2.weight", hidden, out)
		bias("mm.2.bias", out)
	}
	for _, t := range ts {
		tt := typ
		if len(t.dims) == 1 || t.name == "v.position_embd.weight" {
			tt = gguf.TensorF32
		}
		f.Tensors = append(f.Tensors, gguf.TensorInfo{Name: t.name, Type: tt, Dims: t.dims})
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	err := gguf.Write(bw, f, func(i int, w io.Writer) error {
		t, info := ts[i], f.Tensors[i]
		switch {
		case t.norm:
			return writeConst(w, info.Elements(), 1)
		case t.bias:
			return writeConst(w, info.Elements(), 0)
		}
		return writeRandom(w, info, tensorSeed(opts.Seed, "mmproj/"+t.name))
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// SynthesizeProjectorFile writes SynthesizeProjector's projector to path.
func SynthesizeProjectorFile(path string, opts ProjectorOptions) error {
	fp, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := SynthesizeProjector(fp, opts); err != nil {
		fp.Close()
		os.Remove(path)
		return err
	}
	return fp.Close()
}
