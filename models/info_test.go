package models

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
)

func inspectFile(t *testing.T, path string) Info {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return Inspect(path, f)
}

func TestInspectStories(t *testing.T) {
	p := filepath.Join(testModelsDir(t), "stories260K.gguf")
	got := inspectFile(t, p)
	want := Info{
		Path: p, Name: "llama", Architecture: "llama", GGUFVersion: 3, FileSize: 1185376,
		Parameters: 292800, FileType: "unknown", WeightsSize: 292800 * 4,
		ContextLength: 2048, EmbeddingSize: 64, Layers: 5, Heads: 8, KVHeads: 4, FeedForward: 172,
		VocabModel: "llama", VocabSize: 512,
		// The file also has separator and padding ids of 4294967295 (-1):
		// none, as llama.cpp reads them.
		SpecialTokens: map[string]int{"bos": 1, "eos": 2, "unknown": 0},
		TensorCount:   48, TensorTypes: map[string]int{"F32": 48},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Inspect:\n%+v\nwant\n%+v", got, want)
	}
	if names := got.TensorTypeNames(); !reflect.DeepEqual(names, []string{"F32"}) {
		t.Errorf("TensorTypeNames = %v", names)
	}
}

func TestInspectVocabFiles(t *testing.T) {
	dir := filepath.Join(testModelsDir(t), "vocab")
	phi3 := inspectFile(t, filepath.Join(dir, "ggml-vocab-phi-3.gguf"))
	if phi3.Architecture != "phi3" || phi3.VocabModel != "llama" || phi3.VocabSize != 32064 || phi3.TensorCount != 0 ||
		phi3.Parameters != 0 || phi3.FileType != "F16" || phi3.Heads != 32 || phi3.KVHeads != 32 ||
		!strings.HasPrefix(phi3.ChatTemplate, "{{ bos_token }}{% for message in messages %}") || len(phi3.ChatTemplate) != 269 ||
		!reflect.DeepEqual(phi3.SpecialTokens, map[string]int{"bos": 1, "eos": 32000, "unknown": 0, "padding": 32000}) {
		t.Errorf("phi-3: %+v", phi3)
	}
	bert := inspectFile(t, filepath.Join(dir, "ggml-vocab-bert-bge.gguf"))
	if bert.Architecture != "bert" || bert.VocabModel != "bert" || bert.VocabSize != 30522 || bert.ChatTemplate != "" {
		t.Errorf("bert: %+v", bert)
	}
	gpt2 := inspectFile(t, filepath.Join(dir, "ggml-vocab-gpt-2.gguf"))
	if gpt2.VocabModel != "gpt2" || gpt2.VocabPre != "gpt-2" {
		t.Errorf("gpt-2: %+v", gpt2)
	}
}

func TestInspectSynthetic(t *testing.T) {
	shape, _ := LookupShape("tiny")
	var buf bytes.Buffer
	err := Synthesize(&buf, SynthOptions{Shape: shape, Vocab: filepath.Join(testModelsDir(t), "stories260K.gguf"), Type: gguf.TensorF16})
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	in := Inspect("tiny.gguf", f)
	// 512 tokens of 64 values in and out; per layer two norms of 64, Q and
	// O of 64×64, K and V of 64×32 (2 KV heads of 4), three FFN
	// matrices of 64×128; the output norm.
	const matrices = 2*512*64 + 2*(2*64*64+2*64*32+3*64*128)
	const vectors = 64 + 2*2*64
	if in.Parameters != matrices+vectors || in.WeightsSize != 2*matrices+4*vectors || in.FileSize != int64(buf.Len()) {
		t.Errorf("parameters %d, weights %d bytes, file %d bytes", in.Parameters, in.WeightsSize, in.FileSize)
	}
	if in.FileType != "F16" || in.Architecture != "llama" || in.Name != "synthetic tiny" || in.ContextLength != 512 ||
		in.EmbeddingSize != 64 || in.Layers != 2 || in.Heads != 4 || in.KVHeads != 2 || in.FeedForward != 128 ||
		in.VocabSize != 512 || in.TensorCount != 21 || !reflect.DeepEqual(in.TensorTypes, map[string]int{"F16": 16, "F32": 5}) {
		t.Errorf("Inspect: %+v", in)
	}
	if names := in.TensorTypeNames(); !reflect.DeepEqual(names, []string{"F16", "F32"}) {
		t.Errorf("TensorTypeNames = %v", names)
	}
}

func TestTensorTypeNames(t *testing.T) {
	in := Info{TensorTypes: map[string]int{"F32": 65, "Q4_K": 110, "Q6_K": 23, "Q5_K": 23}}
	if got, want := in.TensorTypeNames(), []string{"Q4_K", "F32", "Q5_K", "Q6_K"}; !reflect.DeepEqual(got, want) {
		t.Errorf("TensorTypeNames = %v, want %v", got, want)
	}
}

func TestEstimateMemory(t *testing.T) {
	stories := inspectFile(t, filepath.Join(testModelsDir(t), "stories260K.gguf"))
	// Llama 3 8B: 32 layers, 32 heads of 128, 8 of them for K and V.
	llama3 := Info{Architecture: "llama", WeightsSize: 4_920_734_016, ContextLength: 8192, EmbeddingSize: 4096, Layers: 32, Heads: 32, KVHeads: 8}
	tests := []struct {
		name   string
		in     Info
		ctx    int
		k, v   string
		wantKV uint64
	}{
		// stories260K: 5 layers × 4 KV heads × 8 values = 160 values per
		// token for K, and as many for V.
		{"trained context", stories, 0, "f16", "f16", 2048 * 160 * 2 * 2},
		{"f32", stories, 100, "f32", "f32", 100 * 160 * 4 * 2},
		// q8_0 is 34 bytes per block of 32 values, q4_0 18.
		{"quantized", stories, 512, "q8_0", "q4_0", 512*160*34/32 + 512*160*18/32},
		{"q5", stories, 256, "q5_0", "q5_1", 256*160*22/32 + 256*160*24/32},
		{"iq4_nl and q4_1", stories, 256, "iq4_nl", "q4_1", 256*160*18/32 + 256*160*20/32},
		{"bf16", stories, 64, "bf16", "bf16", 64 * 160 * 2 * 2},
		// The well-known 1 GiB of Llama 3 8B at 8k context in f16.
		{"llama 3 8B", llama3, 0, "f16", "f16", 1 << 30},
		{"llama 3 8B q8_0", llama3, 131072, "q8_0", "q8_0", 131072 * 32 * 1024 * 34 / 32 * 2},
		// An encoder has no KV cache.
		{"bert", Info{Architecture: "bert", WeightsSize: 1000, ContextLength: 512, EmbeddingSize: 384, Layers: 12, Heads: 12, KVHeads: 12}, 0, "f16", "f16", 0},
		// No attention metadata: no estimate of the cache.
		{"no heads", Info{WeightsSize: 10}, 100, "f16", "f16", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := tt.in.EstimateMemory(tt.ctx, tt.k, tt.v)
			if err != nil {
				t.Fatal(err)
			}
			wantCtx := tt.ctx
			if wantCtx == 0 {
				wantCtx = int(tt.in.ContextLength)
			}
			want := MemoryEstimate{ContextSize: wantCtx, CacheTypeK: tt.k, CacheTypeV: tt.v, Weights: tt.in.WeightsSize,
				KVCache: tt.wantKV, Total: tt.in.WeightsSize + tt.wantKV}
			if e != want {
				t.Errorf("EstimateMemory = %+v, want %+v", e, want)
			}
		})
	}
	for _, k := range []string{"q8", "F16", ""} {
		if _, err := stories.EstimateMemory(0, k, "f16"); err == nil || !strings.Contains(err.Error(), "unknown cache type") {
			t.Errorf("cache type K %q: %v", k, err)
		}
		if _, err := stories.EstimateMemory(0, "f16", k); err == nil {
			t.Errorf("cache type V %q: no error", k)
		}
	}
}
