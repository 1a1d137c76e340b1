package llama

/*
#include "llama.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/llamago/llamago/gguf"
)

// A dry-run fit planner: where llama.cpp would put each layer of a model
// for given options, and how much memory each device would need, computed
// from the GGUF tensor table before anything is loaded.

// FitMargin is the memory PlanFit leaves free on each GPU, as llama.cpp's
// --fit-target does by default (1 GiB): drivers, other processes and
// fragmentation take some.
const FitMargin = 1 << 30

// FitDevice is one device of a FitPlan and what it would hold.
type FitDevice struct {
	Device
	// Layers is the number of repeating layers (blocks) on the device.
	Layers int `json:"layers"`
	// Input and Output say whether it holds the input layer (token
	// embeddings; always the CPU) and the output layer.
	Input  bool `json:"input"`
	Output bool `json:"output"`
	// Weights, KVCache and Compute are the bytes of the model's tensors,
	// of the KV cache of its layers and of the compute buffers (an
	// estimate) on the device.
	Weights uint64 `json:"weights"`
	KVCache uint64 `json:"kv_cache"`
	Compute uint64 `json:"compute"`
	// Fits is false for a GPU whose free memory, less FitMargin, is below
	// Total. The CPU always fits: as llama.cpp's own fitting, the plan
	// takes system memory as unlimited (weights are memory-mapped).
	Fits bool `json:"fits"`
}

// Total is Weights + KVCache + Compute.
func (d FitDevice) Total() uint64 { return d.Weights + d.KVCache + d.Compute }

// FitPlan is the outcome of PlanFit.
type FitPlan struct {
	// Layers is the model's number of repeating layers (n_layer).
	Layers int `json:"layers"`
	// GPULayers is the number of layers offloaded, counted as llama.cpp's
	// n_gpu_layers counts them: the output layer is layer n_layer+1.
	GPULayers int `json:"gpu_layers"`
	// ContextSize is n_ctx, padded to a multiple of 256 as llama.cpp does.
	ContextSize int `json:"context_size"`
	// UBatchSize is the micro-batch the compute buffers are sized for.
	UBatchSize     int    `json:"ubatch_size"`
	CacheTypeK     string `json:"cache_type_k"`
	CacheTypeV     string `json:"cache_type_v"`
	FlashAttention bool   `json:"flash_attention"`
	SplitMode      string `json:"split_mode"`
	// Devices are the CPU, then the GPUs llama.cpp would use, in its order.
	Devices []FitDevice `json:"devices"`
	// Fits is true when every GPU fits.
	Fits bool `json:"fits"`
	// MaxGPULayers is the largest n_gpu_layers (at most Layers+1) for
	// which every GPU fits with the same split options; 0 if not even one
	// layer fits, -1 without a GPU.
	MaxGPULayers int `json:"max_gpu_layers"`
	// Margin is FitMargin.
	Margin uint64 `json:"margin"`
}

// fitModel is what the planner needs of a model: per-layer tensor bytes
// and the hyperparameters that size the KV cache and compute buffers.
type fitModel struct {
	nLayer       int
	nEmbd        int
	nHead        int
	nFF          int // the largest of the layers
	nVocab       int
	headKV       []int // per layer
	keyLen       int   // per head
	valLen       int
	noKV         bool     // encoder-only: no KV cache
	layerBytes   []uint64 // blk.N.*
	inputBytes   uint64   // token embeddings and other tensors outside the blocks
	outputBytes  uint64   // output.*, output_norm.*
	tiedOutput   uint64   // without output.weight: the token embeddings, duplicated on the output device
	nCtxTrain    int
	architecture string
}

// fitModelOf reads the planner's view of a GGUF file.
func fitModelOf(f *gguf.File) (fitModel, error) {
	arch := f.Architecture()
	m := fitModel{architecture: arch}
	u := func(key string) int {
		v, _ := f.Uint(arch + "." + key)
		return int(min(v, 1<<40))
	}
	m.nLayer = u("block_count")
	m.nEmbd = u("embedding_length")
	m.nCtxTrain = u("context_length")
	perLayer := func(key string) []int {
		out := make([]int, m.nLayer)
		v, ok := f.Lookup(arch + "." + key)
		if !ok {
			return out
		}
		if v.IsArray() {
			for i := range out {
				if i < v.Len() {
					n, _ := v.Index(i).Uint()
					out[i] = int(min(n, 1<<40))
				}
			}
			return out
		}
		n, _ := v.Uint()
		for i := range out {
			out[i] = int(min(n, 1<<40))
		}
		return out
	}
	heads := perLayer("attention.head_count")
	m.headKV = perLayer("attention.head_count_kv")
	for i := range m.headKV {
		m.nHead = max(m.nHead, heads[i])
		if m.headKV[i] == 0 {
			if _, ok := f.Lookup(arch + ".attention.head_count_kv"); !ok {
				m.headKV[i] = heads[i] // absent: as many as the heads
			}
		}
	}
	for _, n := range perLayer("feed_forward_length") {
		m.nFF = max(m.nFF, n)
	}
	if m.nHead > 0 {
		m.keyLen = m.nEmbd / m.nHead
	}
	m.valLen = m.keyLen
	if n := u("attention.key_length"); n > 0 {
		m.keyLen = n
	}
	if n := u("attention.value_length"); n > 0 {
		m.valLen = n
	}
	m.noKV = strings.Contains(arch, "bert") || arch == "t5encoder"
	if v, ok := f.Lookup("tokenizer.ggml.tokens"); ok {
		m.nVocab = v.Len()
	}

	m.layerBytes = make([]uint64, m.nLayer)
	hasOutput := false
	var tokEmbd uint64
	for _, t := range f.Tensors {
		size := t.Size()
		name := t.Name
		switch {
		case strings.HasPrefix(name, "blk."):
			rest := name[len("blk."):]
			i := strings.IndexByte(rest, '.')
			n, err := strconv.Atoi(rest[:max(i, 0)])
			if i < 0 || err != nil || n < 0 || n >= m.nLayer {
				m.inputBytes += size // not a layer llama.cpp knows
				continue
			}
			m.layerBytes[n] += size
		case strings.HasPrefix(name, "output.") || strings.HasPrefix(name, "output_norm."):
			m.outputBytes += size
			hasOutput = hasOutput || name == "output.weight"
		default:
			if name == "token_embd.weight" {
				tokEmbd = size
				if m.nVocab == 0 && len(t.Dims) == 2 {
					m.nVocab = int(min(t.Dims[1], 1<<40))
				}
			}
			m.inputBytes += size
		}
	}
	if !hasOutput {
		m.tiedOutput = tokEmbd
	}
	if m.nLayer == 0 {
		return m, fmt.Errorf("%w: %s.block_count is missing: the planner needs the layers", ErrInvalidModel, arch)
	}
	return m, nil
}

// fitParams are the options of Load and NewContext the plan depends on.
type fitParams struct {
	nGPULayers   int
	splitMode    SplitMode
	mainGPU      int
	tensorSplit  []float32
	nCtx         int
	nUBatch      int
	typeK, typeV CacheType
	flashAttn    FlashAttention
}

// PlanFit plans where llama.cpp would put the layers of the model f with
// the given options of Load (WithGPULayers, WithSplitMode, WithMainGPU,
// WithTensorSplit) and of NewContext (WithContextSize, WithUBatchSize,
// WithCacheTypes, WithFlashAttention), on devices (nil: Devices()), and
// how much memory each device would need. For a split model, f must hold
// the tensors of every part.
//
// The layer assignment is llama.cpp's (llama_model::load_tensors): the
// input layer stays on the CPU; the last n_gpu_layers of the n_layer+1
// layers (the output layer last) go to the GPUs, split by the proportions
// of WithTensorSplit or else by free memory; SplitNone uses MainGPU only.
// SplitRow is planned as SplitLayer. Weights are the tensor sizes of the
// file; the KV cache is n_ctx × (K and V head sizes × KV heads) per layer,
// with the cache types' sizes, on the layer's device (sliding-window and
// recurrent layers are counted as full attention layers: an upper bound);
// compute buffers are an estimate from the micro-batch, the context, the
// model's widths and the vocabulary, which llama.cpp measures only when
// it builds the graph.
func PlanFit(f *gguf.File, devices []Device, modelOpts []ModelOption, ctxOpts []ContextOption) (*FitPlan, error) {
	m, err := fitModelOf(f)
	if err != nil {
		return nil, err
	}
	mc := modelConfig{params: C.llama_model_default_params()}
	for _, o := range modelOpts {
		o(&mc)
	}
	cc := contextConfig{params: C.llama_context_default_params()}
	for _, o := range ctxOpts {
		o(&cc)
	}
	if err := errors.Join(mc.err, cc.err); err != nil {
		return nil, err
	}
	p := fitParams{
		nGPULayers:  int(mc.params.n_gpu_layers),
		splitMode:   SplitMode(mc.params.split_mode),
		mainGPU:     int(mc.params.main_gpu),
		tensorSplit: mc.split,
		nCtx:        int(cc.params.n_ctx),
		nUBatch:     int(min(cc.params.n_ubatch, cc.params.n_batch)),
		typeK:       CacheType(cc.params.type_k),
		typeV:       CacheType(cc.params.type_v),
		flashAttn:   FlashAttention(cc.params.flash_attn_type),
	}
	if devices == nil {
		devices = Devices()
	}
	return planFit(m, devices, p)
}

// cacheTypeBytes is the size of a KV cache element, block types averaged
// over their 32-value block.
var cacheTypeBytes = map[CacheType]float64{
	CacheF32: 4, CacheF16: 2, CacheBF16: 2, CacheQ8_0: 34.0 / 32, CacheQ4_0: 18.0 / 32, CacheQ4_1: 20.0 / 32,
	CacheIQ4_NL: 18.0 / 32, CacheQ5_0: 22.0 / 32, CacheQ5_1: 24.0 / 32,
}

var splitModeNames = map[SplitMode]string{SplitNone: "none", SplitLayer: "layer", SplitRow: "row"}

func planFit(m fitModel, devices []Device, p fitParams) (*FitPlan, error) {
	bk, okK := cacheTypeBytes[p.typeK]
	bv, okV := cacheTypeBytes[p.typeV]
	if !okK || !okV {
		return nil, invalidArg("cache types %d, %d", p.typeK, p.typeV)
	}
	// The CPU, and the GPUs llama.cpp offloads to: the discrete ones, or
	// the integrated ones if there are none (llama_model_load_from_file).
	var cpu *Device
	var gpus, igpus []Device
	for i := range devices {
		switch devices[i].Type {
		case DeviceCPU:
			if cpu == nil {
				cpu = &devices[i]
			}
		case DeviceGPU:
			gpus = append(gpus, devices[i])
		case DeviceIntegratedGPU:
			igpus = append(igpus, devices[i])
		}
	}
	if cpu == nil {
		return nil, fmt.Errorf("llama: no CPU device")
	}
	if len(gpus) == 0 {
		gpus = igpus
	}
	if p.splitMode == SplitNone && len(gpus) > 0 {
		if p.mainGPU >= len(gpus) {
			return nil, invalidArg("main GPU %d: there are %d GPUs", p.mainGPU, len(gpus))
		}
		gpus = gpus[p.mainGPU : p.mainGPU+1]
	}

	nCtx := p.nCtx
	if nCtx <= 0 {
		nCtx = m.nCtxTrain
	}
	nCtx = (max(nCtx, 1) + 255) / 256 * 256
	nUB := min(max(p.nUBatch, 1), nCtx)
	// Flash attention: auto resolves as NewContext resolves it; with GPUs
	// to plan for, on, since CUDA, Metal and Vulkan have the kernels.
	fa := p.flashAttn == FlashAttentionOn ||
		(p.flashAttn == FlashAttentionAuto && flashAttnWanted(len(gpus) == 0 || p.nGPULayers == 0, p.typeV))

	plan := &FitPlan{
		Layers:         m.nLayer,
		ContextSize:    nCtx,
		UBatchSize:     nUB,
		CacheTypeK:     p.typeK.String(),
		CacheTypeV:     p.typeV.String(),
		FlashAttention: fa,
		SplitMode:      splitModeNames[p.splitMode],
		Margin:         FitMargin,
		MaxGPULayers:   -1,
	}
	assign := func(ngl int) []FitDevice {
		return assignLayers(m, *cpu, gpus, p, ngl, nCtx, nUB, fa, bk, bv)
	}
	ngl := p.nGPULayers
	if ngl < 0 || ngl > m.nLayer+1 {
		ngl = m.nLayer + 1
	}
	if len(gpus) == 0 {
		ngl = 0
	}
	plan.GPULayers = ngl
	plan.Devices = assign(ngl)
	plan.Fits = allFit(plan.Devices)
	if len(gpus) > 0 {
		plan.MaxGPULayers = 0
		for n := m.nLayer + 1; n > 0; n-- {
			if allFit(assign(n)) {
				plan.MaxGPULayers = n
				break
			}
		}
	}
	return plan, nil
}

func allFit(devs []FitDevice) bool {
	for _, d := range devs {
		if !d.Fits {
			return false
		}
	}
	return true
}

// assignLayers places the layers as llama_model::load_tensors does with
// n_gpu_layers ngl, and sizes each device's share.
func assignLayers(m fitModel, cpu Device, gpus []Device, p fitParams, ngl, nCtx, nUB int, fa bool, bk, bv float64) []FitDevice {
	devs := make([]FitDevice, 1+len(gpus))
	devs[0] = FitDevice{Device: cpu, Input: true}
	for i, g := range gpus {
		devs[i+1] = FitDevice{Device: g}
	}
	// Split points: the tensor split if it is not all zero, otherwise
	// the free memory of each GPU; cumulative, normalized.
	splits := make([]float64, len(gpus))
	allZero := true
	for i := range gpus {
		if i < len(p.tensorSplit) && p.tensorSplit[i] != 0 {
			allZero = false
		}
	}
	sum := 0.0
	for i, g := range gpus {
		v := float64(g.FreeMemory)
		if !allZero {
			v = 0
			if i < len(p.tensorSplit) {
				v = float64(p.tensorSplit[i])
			}
		}
		sum += v
		splits[i] = sum
	}
	for i := range splits {
		if sum > 0 {
			splits[i] /= sum
		} else {
			splits[i] = float64(i+1) / float64(len(splits))
		}
	}
	iGPUStart := max(m.nLayer-ngl, 0)
	act := 0
	if len(gpus) > 0 {
		act = min(ngl, m.nLayer+1)
	}
	// device returns the index in devs of layer il (n_layer: the output).
	device := func(il int) int {
		if il < iGPUStart || il-iGPUStart >= act {
			return 0
		}
		// std::upper_bound over the split points, in float32 as llama.cpp.
		x := float64(float32(il-iGPUStart) / float32(act))
		g := sort.Search(len(splits), func(i int) bool { return float64(float32(splits[i])) > x })
		return 1 + min(g, len(gpus)-1)
	}

	kvLayer := func(il int) uint64 {
		if m.noKV {
			return 0
		}
		n := float64(nCtx) * float64(m.headKV[il])
		return uint64(n*float64(m.keyLen)*bk + n*float64(m.valLen)*bv)
	}
	devs[0].Weights += m.inputBytes
	for il := 0; il < m.nLayer; il++ {
		d := &devs[device(il)]
		d.Layers++
		d.Weights += m.layerBytes[il]
		d.KVCache += kvLayer(il)
	}
	out := device(m.nLayer)
	devs[out].Output = true
	devs[out].Weights += m.outputBytes
	if out != 0 {
		devs[out].Weights += m.tiedOutput
	}
	for i := range devs {
		d := &devs[i]
		d.Compute = computeEstimate(m, d.Layers > 0, d.Output, d.Input, nCtx, nUB, fa)
		d.Fits = i == 0 || d.Total()+FitMargin <= d.FreeMemory
	}
	return devs
}

// computeEstimate estimates a device's compute buffer. llama.cpp sizes it
// by allocating the graph of a full micro-batch of nUB tokens, all of them
// outputs, reusing memory as tensors die; the peak is the larger of a
// layer's (the feed-forward's up and gate and the residual stream, f32;
// the attention mask over the whole context, f32 and with flash attention
// an f16 copy; without flash attention, the attention scores of every
// head over the context) and the output layer's (the logits of every
// token), plus the input embeddings on the CPU. Against llama.cpp's own
// figures for TinyLlama 1.1B at n_ctx 4096 on the CPU (70.5 MiB with flash
// attention, 281 MiB without) this gives 71.5 and 302 MiB; for
// stories260K at n_ctx 2000128, where the mask is nearly all of it, 5860
// MiB as llama.cpp's.
func computeEstimate(m fitModel, layers, output, input bool, nCtx, nUB int, fa bool) uint64 {
	t := uint64(nUB)
	var peak uint64
	if layers {
		peak = 4 * t * (2*uint64(m.nEmbd) + 2*uint64(m.nFF))
		if fa {
			peak += 6 * t * uint64(nCtx)
		} else {
			peak += 4 * t * (uint64(m.nHead) + 1) * uint64(nCtx)
		}
	}
	if output {
		peak = max(peak, 4*t*(uint64(m.nVocab)+uint64(m.nEmbd)))
	}
	if input {
		peak += 4 * t * 2 * uint64(m.nEmbd)
	}
	return peak
}
