package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
)

// fitFlags are the flags of "llamago info --fit", the dry-run fit planner:
// the offloading options of run and chat, planned on the devices of this
// machine (see llama.PlanFit).
type fitFlags struct {
	Fit        bool
	GPULayers  int
	UBatchSize int
	FlashAttn  string
	GPU        gpuFlags

	flashAttn llama.FlashAttention
}

func addFitFlags(f *pflag.FlagSet, o *fitFlags) {
	f.BoolVar(&o.Fit, "fit", false, "plan where the layers would go and the memory of each device (weights, KV cache, compute)")
	f.IntVar(&o.GPULayers, "n-gpu-layers", -1, "for --fit: layers to offload to GPUs (short -ngl; -1: all)")
	f.IntVar(&o.UBatchSize, "ubatch-size", 512, "for --fit: physical batch size, which sizes the compute buffers (short -ub)")
	f.StringVar(&o.FlashAttn, "flash-attn", "auto", "for --fit: "+flashAttnUsage)
	addGPUFlags(f, &o.GPU)
}

func (o *fitFlags) validate() error {
	if o.GPULayers < -1 {
		return usageErrorf("--n-gpu-layers must be -1 (all) or at least 0, not %d", o.GPULayers)
	}
	if o.UBatchSize < 1 {
		return usageErrorf("--ubatch-size must be positive, not %d", o.UBatchSize)
	}
	fa, err := flashAttnFlag(o.FlashAttn)
	if err != nil {
		return err
	}
	o.flashAttn = fa
	return o.GPU.validate()
}

// plan runs the planner for the model f with a context of nCtx positions
// (0: the trained context) and the cache types of info's flags.
func (o *fitFlags) plan(f *gguf.File, devices []llama.Device, nCtx int, typeK, typeV llama.CacheType) (*llama.FitPlan, error) {
	mopts := append([]llama.ModelOption{llama.WithGPULayers(o.GPULayers)}, o.GPU.modelOptions()...)
	copts := []llama.ContextOption{
		llama.WithContextSize(nCtx),
		llama.WithBatchSize(max(o.UBatchSize, 2048)),
		llama.WithUBatchSize(o.UBatchSize),
		llama.WithCacheTypes(typeK, typeV),
		llama.WithFlashAttention(o.flashAttn),
	}
	return llama.PlanFit(f, devices, mopts, copts)
}

// printFit writes the plan as a table, one row per device.
func printFit(b *strings.Builder, p *llama.FitPlan) {
	fa := "off"
	if p.FlashAttention {
		fa = "on"
	}
	fmt.Fprintf(b, "%-16s%d tokens (K %s, V %s), micro-batch %d, flash attention %s, split %s\n",
		"fit", p.ContextSize, p.CacheTypeK, p.CacheTypeV, p.UBatchSize, fa, p.SplitMode)
	rows := [][]string{{"", "DEVICE", "LAYERS", "WEIGHTS", "KV CACHE", "COMPUTE", "TOTAL", "FREE", "FITS"}}
	for _, d := range p.Devices {
		layers := fmt.Sprintf("%d/%d", d.Layers, p.Layers)
		var extra []string
		if d.Input {
			extra = append(extra, "input")
		}
		if d.Output {
			extra = append(extra, "output")
		}
		if len(extra) > 0 {
			layers += " + " + strings.Join(extra, ", ")
		}
		fits := "yes"
		switch {
		case d.Type == llama.DeviceCPU:
			fits = "-"
		case !d.Fits:
			fits = "NO"
		}
		rows = append(rows, []string{"", d.Name, layers, humanBytes(d.Weights), humanBytes(d.KVCache), humanBytes(d.Compute),
			humanBytes(d.Total()), humanBytes(d.FreeMemory), fits})
	}
	var t strings.Builder
	writeTable(&t, rows)
	for _, line := range strings.SplitAfter(t.String(), "\n") {
		if line != "" {
			b.WriteString(strings.Repeat(" ", 14) + line)
		}
	}
	var verdict string
	switch {
	case p.MaxGPULayers < 0:
		verdict = "no GPU: everything runs on the CPU (llamago devices; docs/gpu.md)"
	case p.Fits && p.GPULayers == p.Layers+1:
		verdict = fmt.Sprintf("the whole model fits on the GPUs (-ngl %d), leaving %s free on each", p.GPULayers, humanBytes(p.Margin))
	case p.Fits:
		verdict = fmt.Sprintf("%d of %d layers offloaded fit; at most %d would (-ngl %d)", p.GPULayers, p.Layers+1, p.MaxGPULayers, p.MaxGPULayers)
	case p.MaxGPULayers == 0:
		verdict = fmt.Sprintf("does not fit: not even one layer fits on the GPUs with %s left free (-ngl 0)", humanBytes(p.Margin))
	default:
		verdict = fmt.Sprintf("does not fit: at most %d of %d layers would, leaving %s free on each GPU (-ngl %d)",
			p.MaxGPULayers, p.Layers+1, humanBytes(p.Margin), p.MaxGPULayers)
	}
	fmt.Fprintf(b, "%-16s%s\n", "", verdict)
}
