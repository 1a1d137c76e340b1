package llama_test

import (
	"context"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

// On Apple Silicon the pinned module's ggml package compiles its Metal
// backend in (ggml_darwin_arm64.go: GGML_USE_METAL, and the ggml-metal
// and ggml-blas packages), so the package needs no import of its own. This
// test checks it where it can run: on a Mac. It was written without one
// (see docs/gpu.md).
func TestMetal(t *testing.T) {
	if llama.BuildInfo().System {
		t.Skip("linked with an installed llama.cpp")
	}
	var metal *llama.Device
	for _, d := range llama.Devices() {
		if strings.Contains(strings.ToLower(d.Name), "metal") || strings.HasPrefix(d.Name, "MTL") {
			metal = &d
			break
		}
	}
	if metal == nil {
		t.Fatalf("no Metal device: %+v", llama.Devices())
	}
	if metal.Type != llama.DeviceGPU && metal.Type != llama.DeviceIntegratedGPU {
		t.Errorf("Metal device %+v is not a GPU", *metal)
	}
	if !llama.SupportsGPUOffload() {
		t.Error("SupportsGPUOffload is false")
	}
	// The same greedy text offloaded as on the CPU.
	gen := func(ngl int) string {
		m := loadModel(t, "stories260K.gguf", llama.WithGPULayers(ngl))
		c := newContext(t, m)
		res, err := c.Complete(context.Background(), "Once upon a time", llama.WithMaxTokens(16),
			llama.WithSampling(llama.WithGreedy()))
		if err != nil {
			t.Fatal(err)
		}
		return res.Text
	}
	if cpu, gpu := gen(0), gen(-1); cpu != gpu {
		t.Errorf("greedy text on Metal %q, on the CPU %q", gpu, cpu)
	}
}
