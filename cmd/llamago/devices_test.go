package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

// defaultGPUFlags are the GPU flags of run and chat after validate, with
// no flag given.
func defaultGPUFlags() gpuFlags {
	return gpuFlags{SplitMode: "layer", split: llama.SplitLayer, gpus: -1}
}

// defaultFitFlags are the --fit flags of info without --fit.
func defaultFitFlags() fitFlags {
	return fitFlags{GPULayers: -1, UBatchSize: 512, FlashAttn: "auto", GPU: gpuFlags{SplitMode: "layer"}}
}

// withGPUs makes gpuCount report n GPUs for the test.
func withGPUs(t *testing.T, n int) {
	t.Helper()
	old := gpuCount
	gpuCount = func() int { return n }
	t.Cleanup(func() { gpuCount = old })
}

func TestRunGPUFlags(t *testing.T) {
	withGPUs(t, 2)
	tests := []struct {
		name    string
		args    []string
		want    gpuFlags
		wantErr string
	}{
		{name: "defaults", args: nil, want: defaultGPUFlags()},
		{name: "short", args: []string{"-sm", "none", "-mg", "1", "-ts", "3,1"},
			want: gpuFlags{SplitMode: "none", MainGPU: 1, TensorSplit: "3,1", split: llama.SplitNone, tensorSplit: []float32{3, 1}, gpus: 2}},
		{name: "long", args: []string{"--split-mode=row", "--main-gpu", "1", "--tensor-split", "0.5/0.25/0.25"},
			want: gpuFlags{SplitMode: "row", MainGPU: 1, TensorSplit: "0.5/0.25/0.25", split: llama.SplitRow, tensorSplit: []float32{0.5, 0.25, 0.25}, gpus: 2}},
		{name: "bad split mode", args: []string{"-sm", "rows"}, wantErr: `--split-mode: "rows" is not none, layer or row`},
		{name: "main GPU out of range", args: []string{"-mg", "2"}, wantErr: "--main-gpu 2: there are 2 GPUs"},
		{name: "negative main GPU", args: []string{"-mg", "-1"}, wantErr: "--main-gpu must be 0 or more"},
		{name: "bad tensor split", args: []string{"-ts", "3,x"}, wantErr: `--tensor-split: "x" is not a proportion`},
		{name: "negative tensor split", args: []string{"-ts", "1,-1"}, wantErr: `--tensor-split: "-1" is not a proportion`},
		{name: "zero tensor split", args: []string{"-ts", "0,0"}, wantErr: "every proportion is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *runOptions
			cmd := newRunCmd(&iostreams{}, func(o *runOptions) error { got = o; return nil })
			code, err := parseFlags(t, cmd, append([]string{"run", "-m", "m", "x"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || code != exitUsage {
					t.Fatalf("error = %v (exit %d), want a usage error containing %q", err, code, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.GPU, tt.want) {
				t.Errorf("GPU flags\n got %+v\nwant %+v", got.GPU, tt.want)
			}
		})
	}
}

// TestGPUModelOptions: without a GPU, --split-mode none is left out, since
// llama.cpp refuses a main GPU it does not have.
func TestGPUModelOptions(t *testing.T) {
	withGPUs(t, 0)
	g := gpuFlags{SplitMode: "none", TensorSplit: "1"}
	if err := g.validate(); err != nil {
		t.Fatal(err)
	}
	if n := len(g.modelOptions()); n != 2 { // main GPU and tensor split
		t.Errorf("%d options without a GPU, want 2", n)
	}
	withGPUs(t, 1)
	if err := g.validate(); err != nil {
		t.Fatal(err)
	}
	if n := len(g.modelOptions()); n != 3 {
		t.Errorf("%d options with a GPU, want 3", n)
	}
}

func TestChatGPUFlags(t *testing.T) {
	withGPUs(t, 2)
	var got *chatOptions
	cmd := newChatCmd(&iostreams{}, func(o *chatOptions) error { got = o; return nil })
	if _, err := parseFlags(t, cmd, "chat", "-m", "m", "-sm", "none", "-mg", "1", "-ts", "1,3"); err != nil {
		t.Fatal(err)
	}
	want := gpuFlags{SplitMode: "none", MainGPU: 1, TensorSplit: "1,3", split: llama.SplitNone, tensorSplit: []float32{1, 3}, gpus: 2}
	if !reflect.DeepEqual(got.Gen.GPU, want) {
		t.Errorf("GPU flags %+v, want %+v", got.Gen.GPU, want)
	}
}

func TestBenchGPUFlags(t *testing.T) {
	var got *benchOptions
	cmd := newBenchCmd(&iostreams{}, func(o *benchOptions) error { got = o; return nil })
	if _, err := parseFlags(t, cmd, "bench", "-m", "a.gguf", "-p", "8", "-n", "0", "-sm", "none,layer", "-mg", "0", "-ts", "3/1,1/1"); err != nil {
		t.Fatal(err)
	}
	if len(got.splits) != 4 || len(got.instances()) != 4 {
		t.Fatalf("splits %+v, %d instances", got.splits, len(got.instances()))
	}
	s := got.splits[1]
	if s.modeName() != "none" || s.tensorSplitString() != "1.00/1.00" || s.key() != "none/0/1.00/1.00" {
		t.Errorf("split %+v: %s %s", s, s.modeName(), s.tensorSplitString())
	}
	if k0, k1 := got.instances()[0].modelKey(), got.instances()[1].modelKey(); k0 == k1 {
		t.Error("instances with different splits share a model")
	}
	if d := (benchSplit{mode: llama.SplitLayer}); d.tensorSplitString() != "0.00" || d.modeName() != "layer" {
		t.Errorf("default split %s %s", d.modeName(), d.tensorSplitString())
	}
	for _, args := range [][]string{{"-ts", "3/x"}, {"-sm", "rows"}, {"-mg", "-1"}} {
		cmd := newBenchCmd(&iostreams{}, func(o *benchOptions) error { return nil })
		if code, err := parseFlags(t, cmd, append([]string{"bench", "-m", "a.gguf"}, args...)...); code != exitUsage {
			t.Errorf("%q: exit %d, %v; want a usage error", args, code, err)
		}
	}
}

func TestDevices(t *testing.T) {
	stdout, stderr, code := cli(t, "", "devices")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"NAME", "CPU", "llama.cpp: " + llamaCppCommit, "backend libraries: ", "GPU offload: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	stdout, _, code = cli(t, "", "devices", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var d devicesJSON
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(d.Devices) == 0 || d.Devices[0].Type != "CPU" || d.Devices[0].GPU != nil || d.Devices[0].TotalMemory == 0 {
		t.Errorf("devices %+v", d.Devices)
	}
	if d.LlamaCpp.Commit != llamaCppCommit || d.SearchPath == nil || d.Libraries == nil {
		t.Errorf("%+v", d)
	}
	if _, _, code := cli(t, "", "devices", "x"); code != exitUsage {
		t.Errorf("devices x: exit %d", code)
	}
}

func TestOffloadIndexes(t *testing.T) {
	cpu := llama.Device{Type: llama.DeviceCPU}
	gpu := llama.Device{Type: llama.DeviceGPU}
	igpu := llama.Device{Type: llama.DeviceIntegratedGPU}
	if got := offloadIndexes([]llama.Device{cpu, gpu, igpu, gpu}); !reflect.DeepEqual(got, map[int]int{1: 0, 3: 1}) {
		t.Errorf("GPUs: %v", got)
	}
	if got := offloadIndexes([]llama.Device{cpu, igpu}); !reflect.DeepEqual(got, map[int]int{1: 0}) {
		t.Errorf("iGPU: %v", got)
	}
	if got := offloadIndexes([]llama.Device{cpu}); len(got) != 0 {
		t.Errorf("CPU: %v", got)
	}
}

func TestInfoFit(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	stdout, stderr, code := cli(t, "", "info", stories, "--fit", "-c", "512", "-ngl", "3", "-fa", "off")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"fit             512 tokens (K f16, V f16), micro-batch 512, flash attention off, split layer",
		"DEVICE", "WEIGHTS", "KV CACHE", "COMPUTE", "CPU"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	stdout, _, code = cli(t, "", "info", stories, "--fit", "--json", "-ctk", "q8_0", "-ctv", "q8_0")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var got struct {
		Fit *llama.FitPlan `json:"fit"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatal(err)
	}
	p := got.Fit
	if p == nil || p.Layers != 5 || p.ContextSize != 2048 || p.CacheTypeK != "q8_0" || len(p.Devices) == 0 || p.Devices[0].Name != "CPU" {
		t.Fatalf("fit %+v", p)
	}
	// stories260K: 2048 positions × 5 layers × 4 KV heads × 8 values × 34/32 bytes × K and V.
	var kv uint64
	for _, d := range p.Devices {
		kv += d.KVCache
	}
	if kv != 2048*5*4*8*34/32*2 {
		t.Errorf("KV %d", kv)
	}
	// Without --fit, no plan.
	stdout, _, _ = cli(t, "", "info", stories, "--json")
	if strings.Contains(stdout, `"fit"`) {
		t.Error("a plan without --fit")
	}
	if _, stderr, code := cli(t, "", "info", stories, "--fit", "-ngl", "-2"); code != exitUsage {
		t.Errorf("-ngl -2: exit %d %s", code, stderr)
	}
}
