package llama_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
)

// fitFile is a GGUF tensor table in F32 (4 bytes an element): 4 layers of
// n_embd 64, 8 heads of 8 values, 2 KV heads, feed-forward 128, a
// vocabulary of 1000 tokens.
func fitFile(tied bool, kvHeads any) *gguf.File {
	const embd, ff, vocab, layers = 64, 128, 1000, 4
	f := &gguf.File{KV: []gguf.KV{
		{Key: "general.architecture", Value: gguf.StringValue("llama")},
		{Key: "llama.block_count", Value: gguf.Uint32Value(layers)},
		{Key: "llama.context_length", Value: gguf.Uint32Value(2048)},
		{Key: "llama.embedding_length", Value: gguf.Uint32Value(embd)},
		{Key: "llama.feed_forward_length", Value: gguf.Uint32Value(ff)},
		{Key: "llama.attention.head_count", Value: gguf.Uint32Value(8)},
	}}
	switch v := kvHeads.(type) {
	case uint32:
		f.KV = append(f.KV, gguf.KV{Key: "llama.attention.head_count_kv", Value: gguf.Uint32Value(v)})
	case []uint32:
		f.KV = append(f.KV, gguf.KV{Key: "llama.attention.head_count_kv", Value: gguf.ArrayValue(v)})
	}
	t := func(name string, dims ...uint64) {
		f.Tensors = append(f.Tensors, gguf.TensorInfo{Name: name, Type: gguf.TensorF32, Dims: dims})
	}
	t("token_embd.weight", embd, vocab)
	for i := range layers {
		p := fmt.Sprintf("blk.%d.", i)
		t(p+"attn_norm.weight", embd)
		t(p+"attn_q.weight", embd, embd)
		t(p+"attn_k.weight", embd, 16)
		t(p+"attn_v.weight", embd, 16)
		t(p+"attn_output.weight", embd, embd)
		t(p+"ffn_norm.weight", embd)
		t(p+"ffn_gate.weight", embd, ff)
		t(p+"ffn_up.weight", embd, ff)
		t(p+"ffn_down.weight", ff, embd)
	}
	t("output_norm.weight", embd)
	if !tied {
		t("output.weight", embd, vocab)
	}
	return f
}

const (
	fitLayerBytes  = 4 * (64 + 64*64 + 64*16 + 64*16 + 64*64 + 64 + 3*64*128)
	fitEmbdBytes   = 4 * 64 * 1000
	fitOutputBytes = 4*64 + 4*64*1000 // output_norm + output
	fitKVPerLayer  = 256 * 2 * 8 * 2 * 2
)

func gib(n float64) uint64 { return uint64(n * (1 << 30)) }

var (
	fitCPU  = llama.Device{Name: "CPU", Type: llama.DeviceCPU, FreeMemory: gib(16), TotalMemory: gib(32)}
	fitGPU0 = llama.Device{Name: "CUDA0", Type: llama.DeviceGPU, FreeMemory: gib(6), TotalMemory: gib(8)}
	fitGPU1 = llama.Device{Name: "CUDA1", Type: llama.DeviceGPU, FreeMemory: gib(2), TotalMemory: gib(4)}
	fitIGPU = llama.Device{Name: "Vulkan0", Type: llama.DeviceIntegratedGPU, FreeMemory: gib(4), TotalMemory: gib(4)}
)

func plan(t *testing.T, f *gguf.File, devs []llama.Device, mopts []llama.ModelOption, copts ...llama.ContextOption) *llama.FitPlan {
	t.Helper()
	copts = append([]llama.ContextOption{llama.WithContextSize(200)}, copts...)
	p, err := llama.PlanFit(f, devs, mopts, copts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type share struct {
	name          string
	layers        int
	input, output bool
	weights, kv   uint64
	compute, fits bool // compute: nonzero
}

func checkShares(t *testing.T, p *llama.FitPlan, want ...share) {
	t.Helper()
	if len(p.Devices) != len(want) {
		t.Fatalf("%d devices, want %d: %+v", len(p.Devices), len(want), p.Devices)
	}
	for i, w := range want {
		d := p.Devices[i]
		got := share{d.Name, d.Layers, d.Input, d.Output, d.Weights, d.KVCache, d.Compute > 0, d.Fits}
		if got != w {
			t.Errorf("device %d: %+v\nwant           %+v", i, got, w)
		}
	}
}

func TestPlanFitCPUOnly(t *testing.T) {
	p := plan(t, fitFile(false, uint32(2)), []llama.Device{fitCPU}, nil)
	if p.Layers != 4 || p.ContextSize != 256 || p.GPULayers != 0 || p.MaxGPULayers != -1 || !p.Fits {
		t.Errorf("plan %+v", p)
	}
	// Auto flash attention is off with the attention on the CPU, as
	// NewContext resolves it.
	if p.CacheTypeK != "f16" || p.CacheTypeV != "f16" || p.FlashAttention || p.SplitMode != "layer" {
		t.Errorf("plan %+v", p)
	}
	checkShares(t, p, share{"CPU", 4, true, true, fitEmbdBytes + 4*fitLayerBytes + fitOutputBytes, 4 * fitKVPerLayer, true, true})
	// The CPU's compute buffer: a layer's, larger than the logits of 256
	// tokens (the micro-batch is capped by the context): the feed-forward
	// and residual stream plus, without flash attention, the scores of 8
	// heads over 256 cells; and the input embeddings.
	// The attention mask, 256 × 256 floats, is counted too.
	if c := p.Devices[0].Compute; c != 4*256*(2*64+2*128)+4*256*8*256+4*256*256+4*256*2*64 {
		t.Errorf("CPU compute %d", c)
	}
}

func TestPlanFitAllOnGPU(t *testing.T) {
	p := plan(t, fitFile(false, uint32(2)), []llama.Device{fitCPU, fitGPU0}, []llama.ModelOption{llama.WithGPULayers(-1)})
	if p.GPULayers != 5 || p.MaxGPULayers != 5 || !p.Fits {
		t.Errorf("plan %+v", p)
	}
	checkShares(t, p,
		share{"CPU", 0, true, false, fitEmbdBytes, 0, true, true},
		share{"CUDA0", 4, false, true, 4*fitLayerBytes + fitOutputBytes, 4 * fitKVPerLayer, true, true})
}

// TestPlanFitPartial: -ngl n offloads the last n of the n_layer+1 layers,
// the output layer counting as the last.
func TestPlanFitPartial(t *testing.T) {
	f := fitFile(false, uint32(2))
	devs := []llama.Device{fitCPU, fitGPU0}
	p := plan(t, f, devs, []llama.ModelOption{llama.WithGPULayers(2)})
	checkShares(t, p,
		share{"CPU", 2, true, true, fitEmbdBytes + 2*fitLayerBytes + fitOutputBytes, 2 * fitKVPerLayer, true, true},
		share{"CUDA0", 2, false, false, 2 * fitLayerBytes, 2 * fitKVPerLayer, true, true})
	p = plan(t, f, devs, []llama.ModelOption{llama.WithGPULayers(5)})
	checkShares(t, p,
		share{"CPU", 0, true, false, fitEmbdBytes, 0, true, true},
		share{"CUDA0", 4, false, true, 4*fitLayerBytes + fitOutputBytes, 4 * fitKVPerLayer, true, true})
	p = plan(t, f, devs, []llama.ModelOption{llama.WithGPULayers(0)})
	checkShares(t, p,
		share{"CPU", 4, true, true, fitEmbdBytes + 4*fitLayerBytes + fitOutputBytes, 4 * fitKVPerLayer, true, true},
		share{"CUDA0", 0, false, false, 0, 0, false, true})
}

// TestPlanFitTensorSplit: with --tensor-split 3,1, layer i of the act
// offloaded ones goes to the first GPU whose cumulative share exceeds
// i/act, as llama.cpp's std::upper_bound.
func TestPlanFitTensorSplit(t *testing.T) {
	f := fitFile(false, uint32(2))
	devs := []llama.Device{fitCPU, fitGPU0, fitGPU1}
	// act = 5: 0/5, 1/5, 2/5, 3/5 < 0.75 go to CUDA0, 4/5 (the output) to CUDA1.
	p := plan(t, f, devs, []llama.ModelOption{llama.WithTensorSplit([]float32{3, 1})})
	checkShares(t, p,
		share{"CPU", 0, true, false, fitEmbdBytes, 0, true, true},
		share{"CUDA0", 4, false, false, 4 * fitLayerBytes, 4 * fitKVPerLayer, true, true},
		share{"CUDA1", 0, false, true, fitOutputBytes, 0, true, true})
	// 1,1: 0/5, 1/5, 2/5 < 0.5; 3/5, 4/5 on CUDA1.
	p = plan(t, f, devs, []llama.ModelOption{llama.WithTensorSplit([]float32{1, 1})})
	checkShares(t, p,
		share{"CPU", 0, true, false, fitEmbdBytes, 0, true, true},
		share{"CUDA0", 3, false, false, 3 * fitLayerBytes, 3 * fitKVPerLayer, true, true},
		share{"CUDA1", 1, false, true, fitLayerBytes + fitOutputBytes, fitKVPerLayer, true, true})
	// No split: by free memory, 6 GiB and 2 GiB, the same as 3,1.
	p = plan(t, f, devs, nil)
	if p.Devices[1].Layers != 4 || !p.Devices[2].Output {
		t.Errorf("split by free memory: %+v", p.Devices)
	}
	// --split-mode none: the main GPU only.
	p = plan(t, f, devs, []llama.ModelOption{llama.WithSplitMode(llama.SplitNone), llama.WithMainGPU(1)})
	checkShares(t, p,
		share{"CPU", 0, true, false, fitEmbdBytes, 0, true, true},
		share{"CUDA1", 4, false, true, 4*fitLayerBytes + fitOutputBytes, 4 * fitKVPerLayer, true, true})
	if _, err := llama.PlanFit(f, devs, []llama.ModelOption{llama.WithSplitMode(llama.SplitNone), llama.WithMainGPU(2)}, nil); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("main GPU 2 of 2: %v", err)
	}
}

// TestPlanFitTiedOutput: without output.weight llama.cpp copies the token
// embeddings to the output layer's device.
func TestPlanFitTiedOutput(t *testing.T) {
	p := plan(t, fitFile(true, uint32(2)), []llama.Device{fitCPU, fitGPU0}, nil)
	checkShares(t, p,
		share{"CPU", 0, true, false, fitEmbdBytes, 0, true, true},
		share{"CUDA0", 4, false, true, 4*fitLayerBytes + 4*64 + fitEmbdBytes, 4 * fitKVPerLayer, true, true})
	p = plan(t, fitFile(true, uint32(2)), []llama.Device{fitCPU}, nil)
	if w := p.Devices[0].Weights; w != fitEmbdBytes+4*fitLayerBytes+4*64 {
		t.Errorf("tied output on the CPU counted twice: %d", w)
	}
}

// TestPlanFitKV: cache types, per-layer KV heads, and an absent
// head_count_kv (as many as the heads).
func TestPlanFitKV(t *testing.T) {
	p := plan(t, fitFile(false, []uint32{2, 0, 2, 1}), []llama.Device{fitCPU}, nil,
		llama.WithCacheTypes(llama.CacheQ8_0, llama.CacheF32))
	// 256 positions × 8 values per head × heads × (34/32 + 4) bytes.
	if kv, want := p.Devices[0].KVCache, uint64(256*8*5*34/32+256*8*5*4); kv != want {
		t.Errorf("KV %d, want %d", kv, want)
	}
	p = plan(t, fitFile(false, nil), []llama.Device{fitCPU}, nil)
	if kv, want := p.Devices[0].KVCache, uint64(4*256*8*8*2*2); kv != want {
		t.Errorf("KV without head_count_kv %d, want %d", kv, want)
	}
}

// TestPlanFitMaxLayers: a GPU too small for the whole model; MaxGPULayers
// is the most that fit, and one more does not.
func TestPlanFitMaxLayers(t *testing.T) {
	f := fitFile(false, uint32(2))
	var layerNeed uint64 = fitLayerBytes + fitKVPerLayer
	small := fitGPU0
	// Room for the margin, the compute buffer of layers without the
	// output (4 bytes × 256 tokens × (2 × 64 + 2 × 128), and the mask,
	// 6 bytes × 256 tokens × 256 positions) and two and a half layers.
	small.FreeMemory = llama.FitMargin + 4*256*(2*64+2*128) + 6*256*256 + 5*layerNeed/2
	devs := []llama.Device{fitCPU, small}
	p := plan(t, f, devs, nil)
	if p.Fits || p.Devices[1].Fits || p.MaxGPULayers != 2 || p.GPULayers != 5 {
		t.Errorf("plan %+v %+v", p, p.Devices)
	}
	if q := plan(t, f, devs, []llama.ModelOption{llama.WithGPULayers(p.MaxGPULayers)}); !q.Fits {
		t.Errorf("-ngl %d does not fit: %+v", p.MaxGPULayers, q.Devices)
	}
	small.FreeMemory = llama.FitMargin / 2
	if p := plan(t, f, []llama.Device{fitCPU, small}, nil); p.MaxGPULayers != 0 || p.Fits {
		t.Errorf("no room: %+v", p)
	}
}

// TestPlanFitIntegratedGPU: integrated GPUs are used only without a
// discrete one, as llama.cpp does.
func TestPlanFitIntegratedGPU(t *testing.T) {
	f := fitFile(false, uint32(2))
	p := plan(t, f, []llama.Device{fitCPU, fitIGPU}, nil)
	if len(p.Devices) != 2 || p.Devices[1].Name != "Vulkan0" || p.Devices[1].Layers != 4 {
		t.Errorf("iGPU: %+v", p.Devices)
	}
	p = plan(t, f, []llama.Device{fitCPU, fitIGPU, fitGPU0}, nil)
	if len(p.Devices) != 2 || p.Devices[1].Name != "CUDA0" {
		t.Errorf("iGPU and GPU: %+v", p.Devices)
	}
}

// TestPlanFitFlashAttention: without flash attention the compute buffer
// holds the attention scores of every head over the context, and not the
// f16 copy of the mask that flash attention uses.
func TestPlanFitFlashAttention(t *testing.T) {
	f := fitFile(false, uint32(2))
	devs := []llama.Device{fitCPU, fitGPU0}
	on := plan(t, f, devs, []llama.ModelOption{llama.WithGPULayers(4)}, llama.WithContextSize(4096), llama.WithUBatchSize(512))
	off := plan(t, f, devs, []llama.ModelOption{llama.WithGPULayers(4)}, llama.WithContextSize(4096), llama.WithUBatchSize(512),
		llama.WithFlashAttention(llama.FlashAttentionOff))
	if off.FlashAttention || !on.FlashAttention {
		t.Fatal("flash attention not recorded")
	}
	if d := off.Devices[1].Compute - on.Devices[1].Compute; d != 4*512*8*4096-2*512*4096 {
		t.Errorf("attention scores: %d more bytes, want %d", d, 4*512*8*4096-2*512*4096)
	}
}

func TestPlanFitStories(t *testing.T) {
	f, err := gguf.Open(modelPath(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	// On the real devices of this machine, whatever they are.
	p, err := llama.PlanFit(f, nil, nil, []llama.ContextOption{llama.WithContextSize(0)})
	if err != nil {
		t.Fatal(err)
	}
	var weights uint64
	for _, d := range p.Devices {
		weights += d.Weights
	}
	// stories260K is F32 with tied embeddings; on the CPU alone, its
	// weights are the file's tensors.
	if p.MaxGPULayers < 0 && weights != f.TensorDataSize() {
		t.Errorf("weights %d, file %d", weights, f.TensorDataSize())
	}
	if p.Layers != 5 || p.ContextSize != 2048 {
		t.Errorf("plan %+v", p)
	}
	// KV: 2048 positions × 5 layers × 4 KV heads × 8 values × 2 bytes × K and V.
	var kv uint64
	for _, d := range p.Devices {
		kv += d.KVCache
	}
	if kv != 2048*5*4*8*2*2 {
		t.Errorf("KV %d", kv)
	}
}
