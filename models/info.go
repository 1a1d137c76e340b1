package models

import (
	"fmt"
	"sort"

	"github.com/llamago/llamago/gguf"
)

// Info is what `llamago info` reports about a GGUF file, read from its
// metadata and tensor table without loading weights.
type Info struct {
	Path          string         `json:"path"`
	Name          string         `json:"name,omitempty"`
	Architecture  string         `json:"architecture"`
	GGUFVersion   uint32         `json:"gguf_version"`
	FileSize      int64          `json:"file_size"`
	Parameters    uint64         `json:"parameters"`
	FileType      string         `json:"file_type"`
	WeightsSize   uint64         `json:"weights_size"`
	ContextLength uint64         `json:"context_length,omitempty"`
	EmbeddingSize uint64         `json:"embedding_length,omitempty"`
	Layers        uint64         `json:"block_count,omitempty"`
	Heads         uint64         `json:"head_count,omitempty"`
	KVHeads       uint64         `json:"head_count_kv,omitempty"`
	FeedForward   uint64         `json:"feed_forward_length,omitempty"`
	ExpertCount   uint64         `json:"expert_count,omitempty"`
	VocabModel    string         `json:"vocab_model,omitempty"`
	VocabPre      string         `json:"vocab_pre,omitempty"`
	VocabSize     int            `json:"vocab_size,omitempty"`
	SpecialTokens map[string]int `json:"special_tokens,omitempty"`
	ChatTemplate  string         `json:"chat_template,omitempty"`
	TensorCount   int            `json:"tensor_count"`
	TensorTypes   map[string]int `json:"tensor_types"`
	// Projector describes a vision projector file (architecture clip).
	Projector *ProjectorInfo `json:"projector,omitempty"`
}

// Inspect summarises a parsed GGUF file.
func Inspect(path string, f *gguf.File) Info {
	arch := f.Architecture()
	u := func(k string) uint64 {
		v, _ := f.Uint(arch + "." + k)
		return v
	}
	in := Info{
		Path:          path,
		Architecture:  arch,
		GGUFVersion:   f.Version,
		FileSize:      f.Size,
		Parameters:    f.ParameterCount(),
		WeightsSize:   f.TensorDataSize(),
		ContextLength: u("context_length"),
		EmbeddingSize: u("embedding_length"),
		Layers:        u("block_count"),
		Heads:         u("attention.head_count"),
		KVHeads:       u("attention.head_count_kv"),
		FeedForward:   u("feed_forward_length"),
		ExpertCount:   u("expert_count"),
		TensorCount:   len(f.Tensors),
		TensorTypes:   map[string]int{},
	}
	if in.KVHeads == 0 {
		in.KVHeads = in.Heads
	}
	in.Projector = inspectProjector(f)
	in.Name, _ = f.String("general.name")
	if ft, ok := f.Uint("general.file_type"); ok {
		in.FileType = gguf.FileType(uint32(ft))
	} else {
		in.FileType = "unknown"
	}
	in.VocabModel, _ = f.String("tokenizer.ggml.model")
	in.VocabPre, _ = f.String("tokenizer.ggml.pre")
	if v, ok := f.Lookup("tokenizer.ggml.tokens"); ok {
		in.VocabSize = v.Len()
	}
	in.ChatTemplate, _ = f.String("tokenizer.chat_template")
	for _, name := range []string{"bos", "eos", "eot", "eom", "unknown", "seperator", "padding", "mask", "fim_pre", "fim_suf", "fim_mid"} {
		// llama.cpp ignores an id outside the vocabulary, such as
		// 4294967295 (-1) for "none".
		if id, ok := f.Uint("tokenizer.ggml." + name + "_token_id"); ok && id < uint64(max(in.VocabSize, 0)) {
			if in.SpecialTokens == nil {
				in.SpecialTokens = map[string]int{}
			}
			key := name
			if key == "seperator" { // sic: llama.cpp's key
				key = "separator"
			}
			in.SpecialTokens[key] = int(id)
		}
	}
	for _, t := range f.Tensors {
		in.TensorTypes[t.Type.String()]++
	}
	return in
}

// TensorTypeNames returns the tensor types of the histogram, most frequent
// first.
func (in Info) TensorTypeNames() []string {
	names := make([]string, 0, len(in.TensorTypes))
	for n := range in.TensorTypes {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := in.TensorTypes[names[i]], in.TensorTypes[names[j]]
		if a != b {
			return a > b
		}
		return names[i] < names[j]
	})
	return names
}

// kvBytesPerElement is the size of a KV cache element for llama.cpp's
// cache types, in bytes (block types averaged over their block).
var kvBytesPerElement = map[string]float64{
	"f32": 4, "f16": 2, "bf16": 2, "q8_0": 34.0 / 32, "q4_0": 18.0 / 32, "q4_1": 20.0 / 32,
	"iq4_nl": 18.0 / 32, "q5_0": 22.0 / 32, "q5_1": 24.0 / 32,
}

// MemoryEstimate is the memory a model needs for a given context.
type MemoryEstimate struct {
	ContextSize int    `json:"context_size"`
	CacheTypeK  string `json:"cache_type_k"`
	CacheTypeV  string `json:"cache_type_v"`
	Weights     uint64 `json:"weights"`
	KVCache     uint64 `json:"kv_cache"`
	Total       uint64 `json:"total"`
}

// EstimateMemory estimates the weights plus the KV cache for nCtx positions
// with the given cache types (f16, q8_0, ...). The KV cache holds, per layer
// and position, n_embd_head × n_head_kv elements each for K and V. Compute
// buffers (typically a few hundred MB at most) are not included.
func (in Info) EstimateMemory(nCtx int, typeK, typeV string) (MemoryEstimate, error) {
	bk, ok := kvBytesPerElement[typeK]
	if !ok {
		return MemoryEstimate{}, fmt.Errorf("models: unknown cache type %q", typeK)
	}
	bv, ok := kvBytesPerElement[typeV]
	if !ok {
		return MemoryEstimate{}, fmt.Errorf("models: unknown cache type %q", typeV)
	}
	if nCtx <= 0 {
		nCtx = int(in.ContextLength)
	}
	e := MemoryEstimate{ContextSize: nCtx, CacheTypeK: typeK, CacheTypeV: typeV, Weights: in.WeightsSize}
	if in.Heads > 0 && in.Architecture != "bert" {
		kvDim := float64(in.EmbeddingSize) / float64(in.Heads) * float64(in.KVHeads)
		per := kvDim * float64(in.Layers) * float64(nCtx)
		e.KVCache = uint64(per*bk + per*bv)
	}
	e.Total = e.Weights + e.KVCache
	return e, nil
}
