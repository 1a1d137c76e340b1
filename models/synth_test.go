package models

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
)

// synth synthesizes a model into memory and parses it.
func synth(t *testing.T, opts SynthOptions) ([]byte, *gguf.File) {
	t.Helper()
	var buf bytes.Buffer
	if err := Synthesize(&buf, opts); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), f
}

// tensorValues returns the values of tensor name of f, which was read from
// data.
func tensorValues(t *testing.T, data []byte, f *gguf.File, name string) []float32 {
	t.Helper()
	for i, ti := range f.Tensors {
		if ti.Name != name {
			continue
		}
		b, err := io.ReadAll(f.TensorReader(bytes.NewReader(data), i))
		if err != nil {
			t.Fatal(err)
		}
		var vals []float32
		switch ti.Type {
		case gguf.TensorF32:
			for j := 0; j < len(b); j += 4 {
				vals = append(vals, math.Float32frombits(binary.LittleEndian.Uint32(b[j:])))
			}
		case gguf.TensorF16:
			for j := 0; j < len(b); j += 2 {
				vals = append(vals, f16ToF32(binary.LittleEndian.Uint16(b[j:])))
			}
		default:
			t.Fatalf("%s: type %s", name, ti.Type)
		}
		return vals
	}
	t.Fatalf("no tensor %s", name)
	return nil
}

// f16ToF32 converts an IEEE half-precision value.
func f16ToF32(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, mant := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * float32(math.Ldexp(mant, -24))
	case 0x1f:
		if mant != 0 {
			return float32(math.NaN())
		}
		return sign * float32(math.Inf(1))
	}
	return sign * float32(math.Ldexp(1+mant/1024, exp-15))
}

func TestShapes(t *testing.T) {
	names := ShapeNames()
	want := []string{"bge-small", "llama-60m", "llama3.2-1b", "qwen2.5-0.5b", "tiny", "tiny-bert", "tiny-mamba", "tiny-qwen2", "tinyllama-1.1b"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("ShapeNames = %v, want %v", names, want)
	}
	for _, name := range names {
		s, ok := LookupShape(name)
		if !ok || s.Name != name {
			t.Errorf("LookupShape(%q) = %+v, %v", name, s, ok)
		}
		if s.Arch == "mamba" {
			if s.SSMState <= 0 || s.Heads != 0 || s.RopeBase != 0 {
				t.Errorf("shape %+v is inconsistent", s)
			}
			continue
		}
		if s.Embd%s.Heads != 0 || s.Heads%s.KVHeads != 0 || (s.Arch != "bert") != (s.RopeBase > 0) {
			t.Errorf("shape %+v is inconsistent", s)
		}
	}
	if _, ok := LookupShape("gpt-5"); ok {
		t.Error("LookupShape of an unknown shape succeeded")
	}
}

func TestSynthesizeShapes(t *testing.T) {
	dir := testModelsDir(t)
	tests := []struct {
		shape, vocab string
		typ          gguf.TensorType
		// Tensors by name: type and dimensions.
		want map[string]string
		n    int // number of tensors
	}{
		{shape: "tiny", vocab: "vocab/ggml-vocab-llama-spm.gguf", typ: gguf.TensorF16, n: 3 + 2*9, want: map[string]string{
			"token_embd.weight":      "F16 [64 32000]",
			"output.weight":          "F16 [64 32000]",
			"output_norm.weight":     "F32 [64]",
			"blk.0.attn_q.weight":    "F16 [64 64]",
			"blk.1.attn_k.weight":    "F16 [64 32]",
			"blk.1.attn_v.weight":    "F16 [64 32]",
			"blk.0.ffn_gate.weight":  "F16 [64 128]",
			"blk.0.ffn_down.weight":  "F16 [128 64]",
			"blk.1.ffn_norm.weight":  "F32 [64]",
			"blk.1.attn_norm.weight": "F32 [64]",
		}},
		{shape: "tiny-qwen2", vocab: "vocab/ggml-vocab-gpt-2.gguf", typ: gguf.TensorF32, n: 2 + 2*12, want: map[string]string{
			"token_embd.weight":   "F32 [64 50257]",
			"blk.0.attn_q.bias":   "F32 [64]",
			"blk.0.attn_k.bias":   "F32 [32]",
			"blk.1.attn_v.weight": "F32 [64 32]",
		}},
		{shape: "tiny-bert", vocab: "vocab/ggml-vocab-bert-bge.gguf", typ: gguf.TensorF16, n: 5 + 2*16, want: map[string]string{
			"token_embd.weight":              "F16 [64 30522]",
			"token_types.weight":             "F32 [64 2]", // llama.cpp adds it in F32
			"position_embd.weight":           "F16 [64 512]",
			"token_embd_norm.bias":           "F32 [64]",
			"blk.1.layer_output_norm.weight": "F32 [64]",
			"blk.1.ffn_up.weight":            "F16 [64 128]",
		}},
		{shape: "tiny-mamba", vocab: "vocab/ggml-vocab-llama-spm.gguf", typ: gguf.TensorF16, n: 3 + 2*10, want: map[string]string{
			"output.weight":           "F16 [64 32000]",
			"blk.0.ssm_in.weight":     "F16 [64 256]",
			"blk.0.ssm_conv1d.weight": "F32 [4 128]", // ggml's convolution takes F32
			"blk.0.ssm_x.weight":      "F16 [128 36]",
			"blk.1.ssm_dt.weight":     "F16 [4 128]",
			"blk.1.ssm_a":             "F32 [16 128]",
			"blk.1.ssm_d":             "F32 [128]",
			"blk.1.ssm_out.weight":    "F16 [128 64]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.shape, func(t *testing.T) {
			shape, _ := LookupShape(tt.shape)
			vocab := filepath.Join(dir, tt.vocab)
			data, f := synth(t, SynthOptions{Shape: shape, Vocab: vocab, Type: tt.typ, Seed: 1})
			if len(f.Tensors) != tt.n {
				t.Errorf("%d tensors, want %d", len(f.Tensors), tt.n)
			}
			got := map[string]string{}
			for _, ti := range f.Tensors {
				got[ti.Name] = fmt.Sprintf("%s %v", ti.Type, ti.Dims)
			}
			for name, w := range tt.want {
				if got[name] != w {
					t.Errorf("%s: %q, want %q", name, got[name], w)
				}
			}
			if _, ok := got["output.weight"]; ok != (shape.Arch != "bert" && !shape.TiedOutput) {
				t.Errorf("output.weight present: %v, tied output: %v", ok, shape.TiedOutput)
			}

			a := shape.Arch
			u := func(k string) uint64 { v, _ := f.Uint(k); return v }
			if f.Architecture() != a || u(a+".context_length") != uint64(shape.Context) || u(a+".embedding_length") != uint64(shape.Embd) ||
				u(a+".block_count") != uint64(shape.Layers) || u(a+".attention.head_count") != uint64(shape.Heads) ||
				u(a+".attention.head_count_kv") != uint64(shape.KVHeads) || u(a+".feed_forward_length") != uint64(shape.FF) {
				t.Errorf("hyperparameters: %v", f.KV[:12])
			}
			ft, _ := f.Uint("general.file_type")
			if want := map[gguf.TensorType]uint64{gguf.TensorF32: 0, gguf.TensorF16: 1}[tt.typ]; ft != want {
				t.Errorf("general.file_type %d, want %d", ft, want)
			}

			// The tokenizer is the vocabulary file's, all of it.
			voc, err := gguf.Open(vocab)
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range voc.KV {
				if !strings.HasPrefix(kv.Key, "tokenizer.") {
					continue
				}
				if v, ok := f.Lookup(kv.Key); !ok || !v.Equal(kv.Value) {
					t.Errorf("%s not copied", kv.Key)
				}
			}

			// Norm weights are 1, biases 0, matrices N(0, 0.02²).
			norm := "output_norm.weight"
			if a == "bert" {
				norm = "token_embd_norm.weight"
			}
			for _, v := range tensorValues(t, data, f, norm) {
				if v != 1 {
					t.Fatalf("%s has %v", norm, v)
				}
			}
			if a != "llama" {
				bias := map[string]string{"qwen2": "blk.0.attn_q.bias", "bert": "blk.0.attn_q.bias", "mamba": "blk.0.ssm_dt.bias"}[a]
				for _, v := range tensorValues(t, data, f, bias) {
					if v != 0 {
						t.Fatalf("%s has %v", bias, v)
					}
				}
			}
			if a == "mamba" {
				for _, v := range tensorValues(t, data, f, "blk.0.ssm_a") {
					if v != -1 {
						t.Fatalf("blk.0.ssm_a has %v, want -1", v)
					}
				}
				return
			}
			vals := tensorValues(t, data, f, "blk.0.attn_q.weight")
			var sum, sq float64
			for _, v := range vals {
				sum += float64(v)
				sq += float64(v) * float64(v)
			}
			mean := sum / float64(len(vals))
			std := math.Sqrt(sq/float64(len(vals)) - mean*mean)
			if math.Abs(mean) > 0.002 || math.Abs(std-0.02) > 0.002 {
				t.Errorf("attn_q: mean %g, std %g; want N(0, 0.02²)", mean, std)
			}
		})
	}
}

func TestSynthesizeDeterminism(t *testing.T) {
	shape, _ := LookupShape("tiny")
	vocab := filepath.Join(testModelsDir(t), "stories260K.gguf")
	a, fa := synth(t, SynthOptions{Shape: shape, Vocab: vocab, Type: gguf.TensorF16, Seed: 42})
	b, _ := synth(t, SynthOptions{Shape: shape, Vocab: vocab, Type: gguf.TensorF16, Seed: 42})
	c, fc := synth(t, SynthOptions{Shape: shape, Vocab: vocab, Type: gguf.TensorF16, Seed: 43})
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different bytes")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same bytes")
	}
	// Only the data differs: the same metadata and tensor table.
	if int64(len(a)) != int64(len(c)) || !bytes.Equal(a[:fa.DataOffset], c[:fc.DataOffset]) {
		t.Error("different seeds gave different headers")
	}
	// Different tensors get different values.
	q, k := tensorValues(t, a, fa, "blk.0.attn_q.weight"), tensorValues(t, a, fa, "blk.1.attn_q.weight")
	if reflect.DeepEqual(q, k) {
		t.Error("two tensors have the same values")
	}

	// SynthesizeFile writes the same bytes.
	p := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := SynthesizeFile(p, SynthOptions{Shape: shape, Vocab: vocab, Type: gguf.TensorF16, Seed: 42}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, a) {
		t.Errorf("SynthesizeFile wrote other bytes: %v", err)
	}
}

func TestSynthesizeErrors(t *testing.T) {
	dir := testModelsDir(t)
	vocab := filepath.Join(dir, "stories260K.gguf")
	tiny, _ := LookupShape("tiny")
	bad := tiny
	bad.Heads = 5
	unknown := tiny
	unknown.Arch = "rwkv6"
	tests := []struct {
		name string
		opts SynthOptions
		want string
	}{
		{"quantized type", SynthOptions{Shape: tiny, Vocab: vocab, Type: gguf.TensorQ8_0}, "F32 or F16, not Q8_0"},
		{"inconsistent shape", SynthOptions{Shape: bad, Vocab: vocab}, "inconsistent shape"},
		{"zero shape", SynthOptions{Vocab: vocab}, "inconsistent shape"},
		{"unknown architecture", SynthOptions{Shape: unknown, Vocab: vocab}, `unknown architecture "rwkv6"`},
		{"missing vocabulary", SynthOptions{Shape: tiny, Vocab: filepath.Join(dir, "missing.gguf")}, "vocab: open "},
		{"not GGUF", SynthOptions{Shape: tiny, Vocab: filepath.Join(dir, "PROVENANCE.md")}, "vocab: gguf: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Synthesize(&buf, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			// SynthesizeFile leaves no file behind.
			p := filepath.Join(t.TempDir(), "m.gguf")
			if err := SynthesizeFile(p, tt.opts); err == nil {
				t.Error("SynthesizeFile succeeded")
			}
			if _, err := os.Stat(p); err == nil {
				t.Error("SynthesizeFile left a file")
			}
		})
	}
}

func TestF32ToF16(t *testing.T) {
	tests := []struct {
		f    float32
		want uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                                  // largest finite
		{65520, 0x7c00},                                  // rounds up to infinity
		{1e6, 0x7c00},                                    // overflow
		{float32(math.Inf(-1)), 0xfc00},                  // -infinity
		{float32(math.NaN()), 0x7e00},                    // NaN
		{float32(math.Ldexp(1, -14)), 0x0400},            // smallest normal
		{float32(math.Ldexp(1, -24)), 0x0001},            // smallest subnormal
		{float32(math.Ldexp(1, -25)), 0x0000},            // half of it: a tie, to even (0)
		{float32(math.Ldexp(3, -25)), 0x0002},            // 1.5 of it: a tie, to even (2)
		{float32(math.Ldexp(1, -26)), 0x0000},            // underflow
		{1 + float32(math.Ldexp(1, -11)), 0x3c00},        // a tie between 1 and the next: to even
		{1 + float32(math.Ldexp(3, -11)), 0x3c02},        // a tie: to even, upwards
		{1 + float32(math.Ldexp(1, -11)) + 1e-7, 0x3c01}, // above the tie
		{0.02, 0x251f},
	}
	for _, tt := range tests {
		if got := f32ToF16(tt.f); got != tt.want {
			t.Errorf("f32ToF16(%g) = %#04x, want %#04x", tt.f, got, tt.want)
		}
	}
	// Round trip of every finite half value.
	for h := range uint32(0x10000) {
		if h&0x7c00 == 0x7c00 {
			continue
		}
		if got := f32ToF16(f16ToF32(uint16(h))); got != uint16(h) && !(h == 0x8000 && got == 0x8000) {
			t.Fatalf("round trip of %#04x gave %#04x", h, got)
		}
	}
}
