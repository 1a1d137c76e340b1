package models

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"

	"github.com/llamago/llamago/gguf"
)

// Shape is the hyperparameters of a synthetic model.
type Shape struct {
	Name       string
	Arch       string // llama, qwen2, qwen2vl, bert or mamba
	Embd       int    // n_embd
	Layers     int    // block_count
	Heads      int    // attention.head_count
	KVHeads    int    // attention.head_count_kv
	FF         int    // feed_forward_length
	Context    int    // context_length
	RopeBase   float32
	TiedOutput bool // no output.weight: the token embeddings are reused
	SSMState   int  // mamba: ssm.state_size (Heads, KVHeads and FF unused)
}

// Shapes are the built-in shapes, named after the real models they copy.
var Shapes = []Shape{
	{Name: "tinyllama-1.1b", Arch: "llama", Embd: 2048, Layers: 22, Heads: 32, KVHeads: 4, FF: 5632, Context: 2048, RopeBase: 10000},
	{Name: "llama-60m", Arch: "llama", Embd: 512, Layers: 8, Heads: 8, KVHeads: 8, FF: 1536, Context: 2048, RopeBase: 10000},
	{Name: "llama3.2-1b", Arch: "llama", Embd: 2048, Layers: 16, Heads: 32, KVHeads: 8, FF: 8192, Context: 131072, RopeBase: 500000, TiedOutput: true},
	{Name: "qwen2.5-0.5b", Arch: "qwen2", Embd: 896, Layers: 24, Heads: 14, KVHeads: 2, FF: 4864, Context: 32768, RopeBase: 1000000, TiedOutput: true},
	{Name: "bge-small", Arch: "bert", Embd: 384, Layers: 12, Heads: 12, KVHeads: 12, FF: 1536, Context: 512},
	{Name: "tiny", Arch: "llama", Embd: 64, Layers: 2, Heads: 4, KVHeads: 2, FF: 128, Context: 512, RopeBase: 10000},
	{Name: "tiny-bert", Arch: "bert", Embd: 64, Layers: 2, Heads: 4, KVHeads: 4, FF: 128, Context: 512},
	{Name: "tiny-qwen2", Arch: "qwen2", Embd: 64, Layers: 2, Heads: 4, KVHeads: 2, FF: 128, Context: 512, RopeBase: 1000000, TiedOutput: true},
	// A recurrent model: its memory cannot drop part of a sequence.
	{Name: "tiny-mamba", Arch: "mamba", Embd: 64, Layers: 2, Context: 512, SSMState: 16},
}

// LookupShape returns the built-in shape with the given name.
func LookupShape(name string) (Shape, bool) {
	for _, s := range Shapes {
		if s.Name == name {
			return s, true
		}
	}
	return Shape{}, false
}

// SynthOptions configures Synthesize.
type SynthOptions struct {
	Shape Shape
	// Vocab is a GGUF file whose tokenizer.* metadata the model takes, such
	// as one of llama.cpp's vocab-only files.
	Vocab string
	// Type is the type of the weight matrices: TensorF32 (default) or
	// TensorF16. Norm weights and biases are always F32. Quantize the
	// result with llama.Quantize for other types.
	Type gguf.TensorType
	// Seed makes the weights reproducible.
	Seed uint64
}

// Synthesize writes a random-weight model of a real architecture and shape
// to w: matrices drawn from N(0, 0.02²) and norm weights 1, as a freshly
// initialised model, with the tokenizer of opts.Vocab. llama.cpp loads and
// runs it; its output is gibberish.
func Synthesize(w io.Writer, opts SynthOptions) error {
	s := opts.Shape
	mamba := s.Arch == "mamba"
	if s.Embd <= 0 || s.Layers <= 0 || s.Context <= 0 || mamba && s.SSMState <= 0 ||
		!mamba && (s.Heads <= 0 || s.KVHeads <= 0 || s.FF <= 0 || s.Embd%s.Heads != 0 || s.Heads%s.KVHeads != 0) {
		return fmt.Errorf("models: inconsistent shape %+v", s)
	}
	switch opts.Type {
	case gguf.TensorF32, gguf.TensorF16:
	default:
		return fmt.Errorf("models: synthesize writes F32 or F16, not %s (quantize afterwards)", opts.Type)
	}
	voc, err := gguf.Open(opts.Vocab)
	if err != nil {
		return fmt.Errorf("models: vocab: %w", err)
	}
	toks, ok := voc.Lookup("tokenizer.ggml.tokens")
	if !ok || toks.Len() == 0 {
		return fmt.Errorf("models: %s has no tokenizer.ggml.tokens", opts.Vocab)
	}
	nVocab := uint64(toks.Len())

	f := &gguf.File{}
	a := s.Arch
	fileType := uint32(0)
	if opts.Type == gguf.TensorF16 {
		fileType = 1
	}
	kv := func(k string, v gguf.Value) { f.KV = append(f.KV, gguf.KV{Key: k, Value: v}) }
	kv("general.architecture", gguf.StringValue(a))
	kv("general.name", gguf.StringValue("synthetic "+s.Name))
	kv("general.file_type", gguf.Uint32Value(fileType))
	kv(a+".context_length", gguf.Uint32Value(uint32(s.Context)))
	kv(a+".embedding_length", gguf.Uint32Value(uint32(s.Embd)))
	kv(a+".block_count", gguf.Uint32Value(uint32(s.Layers)))
	// Mamba's dimensions, as its converter writes them: an inner size of
	// twice the embedding (the only expansion llama.cpp supports), a
	// convolution of 4 and a time-step rank of embedding/16.
	dInner, dConv, dtRank := uint64(2*s.Embd), uint64(4), uint64((s.Embd+15)/16)
	if mamba {
		kv(a+".ssm.conv_kernel", gguf.Uint32Value(uint32(dConv)))
		kv(a+".ssm.inner_size", gguf.Uint32Value(uint32(dInner)))
		kv(a+".ssm.state_size", gguf.Uint32Value(uint32(s.SSMState)))
		kv(a+".ssm.time_step_rank", gguf.Uint32Value(uint32(dtRank)))
	} else {
		kv(a+".feed_forward_length", gguf.Uint32Value(uint32(s.FF)))
		kv(a+".attention.head_count", gguf.Uint32Value(uint32(s.Heads)))
		kv(a+".attention.head_count_kv", gguf.Uint32Value(uint32(s.KVHeads)))
	}
	switch {
	case mamba:
		kv(a+".attention.layer_norm_rms_epsilon", gguf.Float32Value(1e-5))
		kv(a+".vocab_size", gguf.Uint32Value(uint32(nVocab)))
	case a == "bert":
		kv(a+".attention.layer_norm_epsilon", gguf.Float32Value(1e-12))
		kv(a+".attention.causal", gguf.BoolValue(false))
		kv(a+".pooling_type", gguf.Uint32Value(1)) // mean
	default:
		kv(a+".attention.layer_norm_rms_epsilon", gguf.Float32Value(1e-5))
		kv(a+".rope.freq_base", gguf.Float32Value(s.RopeBase))
		kv(a+".rope.dimension_count", gguf.Uint32Value(uint32(s.Embd/s.Heads)))
		kv(a+".vocab_size", gguf.Uint32Value(uint32(nVocab)))
		if a == "qwen2vl" {
			// M-RoPE: the rotated pairs of a head split between time,
			// height and width, a quarter and twice three-eighths, as
			// Qwen2-VL's [16, 24, 24] of 64.
			half := s.Embd / s.Heads / 2
			t := half / 4
			kv(a+".rope.dimension_sections", gguf.ArrayValue([]int32{int32(t), int32((half - t) / 2), int32((half - t) / 2), 0}))
		}
	}
	for _, e := range voc.KV {
		if strings.HasPrefix(e.Key, "tokenizer.") {
			f.KV = append(f.KV, e)
		}
	}

	embd, ff := uint64(s.Embd), uint64(s.FF)
	var kvDim uint64
	if !mamba {
		kvDim = embd / uint64(s.Heads) * uint64(s.KVHeads)
	}
	type tensor struct {
		name  string
		dims  []uint64
		norm  bool    // constant 1 (norm weights) rather than random
		bias  bool    // constant 0
		value float32 // with neither: constant value if nonzero
	}
	var ts []tensor
	mat := func(name string, dims ...uint64) { ts = append(ts, tensor{name: name, dims: dims}) }
	norm := func(name string, n uint64) { ts = append(ts, tensor{name: name, dims: []uint64{n}, norm: true}) }
	bias := func(name string, n uint64) { ts = append(ts, tensor{name: name, dims: []uint64{n}, bias: true}) }

	mat("token_embd.weight", embd, nVocab)
	switch a {
	case "bert":
		mat("token_types.weight", embd, 2)
		mat("position_embd.weight", embd, uint64(s.Context))
		norm("token_embd_norm.weight", embd)
		bias("token_embd_norm.bias", embd)
		for i := range s.Layers {
			p := fmt.Sprintf("blk.%d.", i)
			mat(p+"attn_q.weight", embd, embd)
			bias(p+"attn_q.bias", embd)
			mat(p+"attn_k.weight", embd, kvDim)
			bias(p+"attn_k.bias", kvDim)
			mat(p+"attn_v.weight", embd, kvDim)
			bias(p+"attn_v.bias", kvDim)
			mat(p+"attn_output.weight", embd, embd)
			bias(p+"attn_output.bias", embd)
			norm(p+"attn_output_norm.weight", embd)
			bias(p+"attn_output_norm.bias", embd)
			mat(p+"ffn_up.weight", embd, ff)
			bias(p+"ffn_up.bias", ff)
			mat(p+"ffn_down.weight", ff, embd)
			bias(p+"ffn_down.bias", embd)
			norm(p+"layer_output_norm.weight", embd)
			bias(p+"layer_output_norm.bias", embd)
		}
	case "llama", "qwen2", "qwen2vl":
		norm("output_norm.weight", embd)
		if !s.TiedOutput {
			mat("output.weight", embd, nVocab)
		}
		for i := range s.Layers {
			p := fmt.Sprintf("blk.%d.", i)
			norm(p+"attn_norm.weight", embd)
			mat(p+"attn_q.weight", embd, embd)
			mat(p+"attn_k.weight", embd, kvDim)
			mat(p+"attn_v.weight", embd, kvDim)
			if a == "qwen2" || a == "qwen2vl" {
				bias(p+"attn_q.bias", embd)
				bias(p+"attn_k.bias", kvDim)
				bias(p+"attn_v.bias", kvDim)
			}
			mat(p+"attn_output.weight", embd, embd)
			norm(p+"ffn_norm.weight", embd)
			mat(p+"ffn_gate.weight", embd, ff)
			mat(p+"ffn_down.weight", ff, embd)
			mat(p+"ffn_up.weight", embd, ff)
		}
	case "mamba":
		norm("output_norm.weight", embd)
		mat("output.weight", embd, nVocab)
		state := uint64(s.SSMState)
		for i := range s.Layers {
			p := fmt.Sprintf("blk.%d.", i)
			norm(p+"attn_norm.weight", embd)
			mat(p+"ssm_in.weight", embd, 2*dInner)
			mat(p+"ssm_conv1d.weight", dConv, dInner)
			bias(p+"ssm_conv1d.bias", dInner)
			mat(p+"ssm_x.weight", dInner, dtRank+2*state)
			mat(p+"ssm_dt.weight", dtRank, dInner)
			bias(p+"ssm_dt.bias", dInner)
			// A = -1 keeps the state decaying (a trained model's A is
			// negative), D = 1 passes the input through.
			ts = append(ts, tensor{name: p + "ssm_a", dims: []uint64{state, dInner}, value: -1})
			norm(p+"ssm_d", dInner)
			mat(p+"ssm_out.weight", dInner, embd)
		}
	default:
		return fmt.Errorf("models: unknown architecture %q (llama, qwen2, qwen2vl, bert, mamba)", a)
	}
	for _, t := range ts {
		typ := opts.Type
		// Vectors, and BERT's token type embeddings, which llama.cpp adds
		// to F32 activations with an operation that takes only F32 (as
		// convert_hf_to_gguf.py writes them), stay F32; so do Mamba's
		// small state tensors, as its converter keeps them.
		if len(t.dims) == 1 || t.name == "token_types.weight" || t.value != 0 || strings.HasSuffix(t.name, "ssm_conv1d.weight") {
			typ = gguf.TensorF32
		}
		f.Tensors = append(f.Tensors, gguf.TensorInfo{Name: t.name, Type: typ, Dims: t.dims})
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	err = gguf.Write(bw, f, func(i int, w io.Writer) error {
		t := ts[i]
		info := f.Tensors[i]
		switch {
		case t.norm:
			return writeConst(w, info.Elements(), 1)
		case t.bias:
			return writeConst(w, info.Elements(), 0)
		case t.value != 0:
			return writeConst(w, info.Elements(), t.value)
		}
		return writeRandom(w, info, tensorSeed(opts.Seed, t.name))
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// SynthesizeFile writes Synthesize's model to path.
func SynthesizeFile(path string, opts SynthOptions) error {
	fp, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := Synthesize(fp, opts); err != nil {
		fp.Close()
		os.Remove(path)
		return err
	}
	return fp.Close()
}

// ShapeNames lists the built-in shapes' names.
func ShapeNames() []string {
	var names []string
	for _, s := range Shapes {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

func tensorSeed(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return seed ^ h.Sum64()
}

func writeConst(w io.Writer, n uint64, v float32) error {
	buf := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	_, err := w.Write(buf)
	return err
}

func writeRandom(w io.Writer, t gguf.TensorInfo, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := t.Elements()
	const chunk = 1 << 16
	size := 4
	if t.Type == gguf.TensorF16 {
		size = 2
	}
	buf := make([]byte, chunk*size)
	for done := uint64(0); done < n; {
		k := min(chunk, n-done)
		for i := range k {
			v := float32(rng.NormFloat64() * 0.02)
			if size == 2 {
				binary.LittleEndian.PutUint16(buf[2*i:], f32ToF16(v))
			} else {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
		}
		if _, err := w.Write(buf[:k*uint64(size)]); err != nil {
			return err
		}
		done += k
	}
	return nil
}

// f32ToF16 converts to IEEE half precision, rounding to nearest even.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case (b>>23)&0xff == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint(14 - exp)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		if rem := mant & (1<<shift - 1); rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(exp)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}
