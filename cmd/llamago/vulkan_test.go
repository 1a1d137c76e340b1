package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llamago/llamago/internal/testvulkan"
	"github.com/llamago/llamago/llama"
)

// The commands on the Vulkan backend (make vulkan), on Mesa's lavapipe: a
// llamago binary run with the environment of internal/testvulkan, against
// the same binary on the CPU. The llama package's tests compare the
// numbers (llama/vulkan_test.go); these check that every command offloads
// with -ngl and says so, and falls back to the CPU with one line.

// vulkanCLI runs bin in the environment env.
func vulkanCLI(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// cpuEnv loads no backend library: the CPU reference.
var cpuEnv = append(os.Environ(), "LLAMAGO_BACKEND_PATH=", "LLAMAGO_CPU_VARIANTS=off")

var offloadedLine = regexp.MustCompile(`offloaded (\d+)/(\d+) layers to GPU`)

func TestVulkanCommands(t *testing.T) {
	env := testvulkan.Env(t)
	bin := buildLlamago(t)
	model := modelPath(t, "stories260K.gguf")
	gen := []string{"run", "-m", model, "-t", "1", "--temp", "0", "-n", "32", "-c", "256", "Once upon a time"}
	cpuText, stderr, err := vulkanCLI(t, bin, cpuEnv, gen...)
	if err != nil || stderr != "" {
		t.Fatalf("run on the CPU: %v\n%s", err, stderr)
	}
	if !strings.HasPrefix(cpuText, storiesGreedy) {
		t.Fatalf("run on the CPU gave %q", cpuText)
	}

	t.Run("devices", func(t *testing.T) {
		out, stderr, err := vulkanCLI(t, bin, env, "devices")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		t.Logf("\n%s", out)
		row := regexp.MustCompile(`(?m)^0\s+Vulkan0\s+GPU\s+[0-9.]+ [KMGT]?i?B\s+[0-9.]+ [KMGT]?i?B\s+.*llvmpipe`)
		if !row.MatchString(out) || !strings.Contains(out, "libggml-vulkan.so: Vulkan, 1 device(s)") ||
			!strings.Contains(out, "GPU offload: yes") {
			t.Errorf("want lavapipe as GPU 0 with its memory, the library loaded, and GPU offload")
		}
		out, _, err = vulkanCLI(t, bin, env, "devices", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var d devicesJSON
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatal(err)
		}
		if len(d.Devices) != 2 || d.Devices[1].Name != "Vulkan0" || d.Devices[1].GPU == nil || *d.Devices[1].GPU != 0 ||
			d.Devices[1].TotalMemory == 0 || !d.GPUOffload {
			t.Errorf("devices --json: %s", out)
		}
	})

	// run, with none, half and all of stories260K's 6 layers offloaded:
	// llama.cpp says how many went to the GPU (-v), and the text is the CPU's.
	t.Run("run", func(t *testing.T) {
		for _, tc := range []struct{ ngl, want string }{{"0", "0"}, {"3", "3"}, {"99", "6"}, {"-1", "6"}} {
			args := append([]string{"-v"}, gen...)
			out, stderr, err := vulkanCLI(t, bin, env, append(args, "-ngl", tc.ngl)...)
			if err != nil {
				t.Fatalf("-ngl %s: %v\n%s", tc.ngl, err, stderr)
			}
			if m := offloadedLine.FindStringSubmatch(stderr); m == nil || m[1] != tc.want || m[2] != "6" {
				t.Errorf("-ngl %s: the log says %q, want offloaded %s/6 layers", tc.ngl, m, tc.want)
			}
			if out != cpuText {
				t.Errorf("-ngl %s: %q, want the CPU's %q", tc.ngl, out, cpuText)
			}
		}
	})

	t.Run("chat", func(t *testing.T) {
		chat := []string{"chat", "-m", model, "-t", "1", "--temp", "0", "-n", "16", "-c", "256", "--chat-template", "chatml"}
		// Piped, chat answers each line of stdin.
		cmdCPU := exec.Command(bin, chat...)
		cmdCPU.Env = cpuEnv
		cmdCPU.Stdin = strings.NewReader("Tell me a story.\n")
		wantOut, err := cmdCPU.Output()
		if err != nil {
			t.Fatalf("chat on the CPU: %v", err)
		}
		cmdVK := exec.Command(bin, append([]string{"-v"}, append(chat, "-ngl", "99")...)...)
		cmdVK.Env = env
		cmdVK.Stdin = strings.NewReader("Tell me a story.\n")
		var errOut bytes.Buffer
		cmdVK.Stderr = &errOut
		got, err := cmdVK.Output()
		if err != nil {
			t.Fatalf("chat -ngl 99: %v\n%s", err, errOut.String())
		}
		if m := offloadedLine.FindStringSubmatch(errOut.String()); m == nil || m[1] != "6" {
			t.Errorf("chat -ngl 99: the log says %q, want offloaded 6/6 layers", m)
		}
		if string(got) != string(wantOut) || len(wantOut) == 0 {
			t.Errorf("chat -ngl 99: %q, want the CPU's %q", got, wantOut)
		}
	})

	t.Run("embed", func(t *testing.T) {
		args := []string{"embed", "-m", model, "--pooling", "mean", "hello world", "Once upon a time"}
		want, _, err := vulkanCLI(t, bin, cpuEnv, args...)
		if err != nil {
			t.Fatal(err)
		}
		got, stderr, err := vulkanCLI(t, bin, env, append([]string{"-v"}, append(args, "-ngl", "99")...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		if m := offloadedLine.FindStringSubmatch(stderr); m == nil || m[1] != "6" {
			t.Errorf("the log says %q, want offloaded 6/6 layers", m)
		}
		w, g := parseEmbeddings(t, want), parseEmbeddings(t, got)
		if len(w) != 2 || len(g) != 2 {
			t.Fatalf("embeddings: %d and %d, want 2", len(w), len(g))
		}
		for i := range w {
			if c := cosineSim(w[i], g[i]); !(c >= 0.9999) {
				t.Errorf("embedding %d: cosine %f with the CPU's", i, c)
			}
		}
	})

	t.Run("serve", func(t *testing.T) {
		cmd := exec.Command(bin, "-v", "serve", "-m", model, "--port", "0", "-t", "1", "-c", "256", "-ngl", "99", "--chat-template", "chatml")
		cmd.Env = env
		var errOut syncBuffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Signal(os.Interrupt)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}()
		var base string
		for deadline := time.Now().Add(2 * time.Minute); base == ""; {
			if m := servingLine.FindStringSubmatch(errOut.String()); m != nil {
				base = m[1]
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve did not start:\n%s", errOut.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if m := offloadedLine.FindStringSubmatch(errOut.String()); m == nil || m[1] != "6" {
			t.Errorf("serve -ngl 99: the log says %q, want offloaded 6/6 layers", m)
		}
		status, body := postJSON(t, base+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":32,"temperature":0}`)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, body)
		}
		var resp struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(body, &resp); err != nil || len(resp.Choices) != 1 {
			t.Fatalf("%s (%v)", body, err)
		}
		if got := resp.Choices[0].Text; got != cpuText {
			t.Errorf("the server on Vulkan gave %q, run on the CPU %q", got, cpuText)
		}
	})

	t.Run("bench", func(t *testing.T) {
		out, stderr, err := vulkanCLI(t, bin, env, "bench", "-m", model, "-p", "16", "-n", "8", "-r", "1", "-t", "1", "-ngl", "99", "-o", "jsonl")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		n := 0
		for line := range strings.Lines(out) {
			var r struct {
				Backends   string  `json:"backends"`
				GPUInfo    string  `json:"gpu_info"`
				NGPULayers int     `json:"n_gpu_layers"`
				AvgTS      float64 `json:"avg_ts"`
			}
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			n++
			if !strings.Contains(r.Backends, "Vulkan") || r.NGPULayers != 99 || !strings.Contains(r.GPUInfo, "llvmpipe") || !(r.AvgTS > 0) {
				t.Errorf("result %s: want the Vulkan backend, lavapipe, 99 layers and a speed", line)
			}
		}
		if n != 2 {
			t.Errorf("%d results, want pp16 and tg8:\n%s", n, out)
		}
	})

	t.Run("info --fit", func(t *testing.T) {
		out, stderr, err := vulkanCLI(t, bin, env, "info", model, "--fit", "-c", "256", "-ngl", "-1")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		// The planner counts stories260K's 5 blocks, and the output layer apart.
		if !regexp.MustCompile(`(?m)^\s+Vulkan0\s+5/5 \+ output\s.*\syes$`).MatchString(out) ||
			!strings.Contains(out, "the whole model fits on the GPUs") {
			t.Errorf("want every layer planned on Vulkan0:\n%s", out)
		}
	})
}

// TestVulkanFallback: without a Vulkan driver, or without the library, the
// commands say why in one line and run on the CPU.
func TestVulkanCommandsFallback(t *testing.T) {
	testvulkan.Lib(t) // skips or fails without the library
	bin := buildLlamago(t)
	model := modelPath(t, "stories260K.gguf")
	gen := []string{"run", "-m", model, "-t", "1", "--temp", "0", "-n", "16", "-c", "256", "Once upon a time"}
	cpuText, _, err := vulkanCLI(t, bin, cpuEnv, gen...)
	if err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		env  []string
		ngl  string
		want string // the line on stderr; "" none
	}{
		{"no driver", testvulkan.NoDriverEnv(t), "99",
			"llamago: no GPU to offload to, running on the CPU: libggml-vulkan.so: load_backend: failed to initialize backend from "},
		{"no driver, default -ngl", testvulkan.NoDriverEnv(t), "",
			"llamago: no GPU to offload to, running on the CPU: libggml-vulkan.so: load_backend: failed to initialize backend from "},
		{"CPU device not named", testvulkan.NoDevicesEnv(t), "99",
			"llamago: no GPU to offload to, running on the CPU: libggml-vulkan.so: no Vulkan GPU found; a CPU Vulkan device such as Mesa's lavapipe is used only when GGML_VK_VISIBLE_DEVICES names it"},
		{"no library", append(slices.Clip(cpuEnv), "LLAMAGO_BACKEND_PATH="+empty), "99",
			"llamago: no GPU to offload to, running on the CPU: no GPU backend library in " + empty + " (make vulkan or make cuda builds one; docs/gpu.md)"},
		{"no library, default -ngl", append(slices.Clip(cpuEnv), "LLAMAGO_BACKEND_PATH="+empty), "", ""},
		{"no driver, -ngl 0", testvulkan.NoDriverEnv(t), "0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := gen
			if tc.ngl != "" {
				args = append(slices.Clone(gen), "-ngl", tc.ngl)
			}
			out, stderr, err := vulkanCLI(t, bin, tc.env, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			if out != cpuText {
				t.Errorf("%q, want the CPU's %q", out, cpuText)
			}
			switch {
			case tc.want == "" && stderr != "":
				t.Errorf("stderr %q, want nothing", stderr)
			case tc.want != "" && (!strings.HasPrefix(stderr, tc.want) || strings.Count(stderr, "\n") != 1):
				t.Errorf("stderr %q, want one line starting %q", stderr, tc.want)
			}
		})
	}
}

func parseEmbeddings(t *testing.T, out string) [][]float32 {
	t.Helper()
	var vs [][]float32
	for line := range strings.Lines(out) {
		var v []float32
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func cosineSim(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range min(len(a), len(b)) {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if len(a) != len(b) {
		return math.NaN()
	}
	return ab / math.Sqrt(aa*bb)
}

// TestCPUFallbackLine: the reason given when layers were to be offloaded
// but no GPU can take them, without any backend library at hand.
func TestCPUFallbackLine(t *testing.T) {
	failed := llama.BackendLoad{Path: "/x/libggml-vulkan.so", Backend: "vulkan", Err: "libvulkan.so.1: cannot open shared object file"}
	noDev := llama.BackendLoad{Path: "/x/libggml-vulkan.so", Backend: "Vulkan", Loaded: true, Note: "no Vulkan GPU found"}
	skipped := llama.BackendLoad{Path: "/y/libggml-vulkan.so", Backend: "vulkan", Err: "skipped: vulkan is already loaded from /x/libggml-vulkan.so"}
	cpuVariant := llama.BackendLoad{Path: "/x/libggml-cpu-zen4.so", Backend: "cpu", Err: "some CPU variant problem"}
	dirs := []string{"/a", "/b"}
	const p = "llamago: no GPU to offload to, running on the CPU: "
	for _, tc := range []struct {
		name    string
		ngl     int
		offload bool
		loads   []llama.BackendLoad
		want    string
	}{
		{"GPU", 99, true, []llama.BackendLoad{failed}, ""},
		{"-ngl 0", 0, false, []llama.BackendLoad{failed}, ""},
		{"failed", -1, false, []llama.BackendLoad{failed}, p + "libggml-vulkan.so: libvulkan.so.1: cannot open shared object file"},
		{"no device", 5, false, []llama.BackendLoad{noDev, skipped}, p + "libggml-vulkan.so: no Vulkan GPU found"},
		{"two", -1, false, []llama.BackendLoad{failed, noDev}, p + "libggml-vulkan.so: libvulkan.so.1: cannot open shared object file (and 1 more: llamago devices)"},
		{"none, default", -1, false, []llama.BackendLoad{cpuVariant}, ""},
		{"none, asked", 99, false, nil, p + "no GPU backend library in /a:/b (make vulkan or make cuda builds one; docs/gpu.md)"},
	} {
		if got := cpuFallbackLine(tc.ngl, tc.offload, tc.loads, dirs); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
