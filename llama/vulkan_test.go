package llama_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llamago/llamago/internal/testvulkan"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// The Vulkan backend (make vulkan) on Mesa's lavapipe, in child processes
// of the test binary that load it (see internal/testvulkan): stories260K
// with none, half and all of its layers offloaded against the CPU in this
// process, which loads no GPU backend.

// vulkanPrompt is the prompt of the greedy comparisons.
const vulkanPrompt = "Once upon a time"

// vulkanTokens is how many tokens each greedy generation makes: long enough
// for a story to diverge if the backend computed something else.
const vulkanTokens = 48

// Tolerances, against the CPU's figures. ggml-vulkan computes in another
// order than the CPU backend, so the logits are not bit-identical:
// stories260K's span about 20, and lavapipe's differ from the CPU's by
// 0.004 at most (see docs/gpu.md); the embeddings agree to a cosine of
// 0.99999 or better.
const (
	vulkanLogitTol  = 0.01   // the largest absolute difference of a logit
	vulkanCosineMin = 0.9999 // the cosine similarity of embeddings
)

// vulkanPass is what one model load, with some layers offloaded, gives.
type vulkanPass struct {
	NGL        int
	Offloaded  string          // llama.cpp's "offloaded N/M layers to GPU"
	Logits     []float32       // after the prompt, for the first token
	Text       string          // the greedy continuation
	Tokens     []llama.TokenID // its tokens
	Embeddings [][]float32     // of embedTexts: stories260K (mean pooling), then tiny-bert's (with -ngl -1)
}

type vulkanResult struct {
	Loads   []llama.BackendLoad
	Devices []llama.Device
	Offload bool
	Passes  []vulkanPass
}

// runVulkanPass loads the model with ngl layers offloaded and computes a
// vulkanPass; bert, if not "", is an embedding model to embed with too.
// log holds what llama.cpp logged, if the caller records it.
func runVulkanPass(path, bert string, ngl int, log *recordHandler) (vulkanPass, error) {
	ctx := context.Background()
	p := vulkanPass{NGL: ngl}
	var before int
	if log != nil {
		log.mu.Lock()
		before = len(log.msgs)
		log.mu.Unlock()
	}
	m, err := llama.Load(ctx, path, llama.WithGPULayers(ngl))
	if err != nil {
		return p, err
	}
	defer m.Close()
	if log != nil {
		log.mu.Lock()
		for _, msg := range log.msgs[before:] {
			if strings.Contains(msg, "offloaded") {
				p.Offloaded = strings.TrimSpace(msg)
			}
		}
		log.mu.Unlock()
	}
	c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
	if err != nil {
		return p, err
	}
	defer c.Close()
	toks, err := m.Tokenize(vulkanPrompt, llama.AddSpecial)
	if err != nil {
		return p, err
	}
	b, err := llama.NewBatch(len(toks), 1)
	if err != nil {
		return p, err
	}
	defer b.Close()
	for i, tok := range toks {
		if err := b.Add(tok, i, i == len(toks)-1, 0); err != nil {
			return p, err
		}
	}
	if err := c.Decode(ctx, b); err != nil {
		return p, err
	}
	if p.Logits, err = c.Logits(-1); err != nil {
		return p, err
	}
	if err := c.ClearMemory(); err != nil {
		return p, err
	}
	done, err := c.Complete(ctx, vulkanPrompt, llama.WithMaxTokens(vulkanTokens), llama.WithSampling(llama.WithGreedy()))
	if err != nil {
		return p, err
	}
	p.Text, p.Tokens = done.Text, done.Tokens
	e, err := m.Embed(ctx, embedTexts, oneThread, llama.WithPooling(llama.PoolingMean))
	if err != nil {
		return p, fmt.Errorf("embed: %w", err)
	}
	p.Embeddings = e
	if bert != "" {
		bm, err := llama.Load(ctx, bert, llama.WithGPULayers(ngl))
		if err != nil {
			return p, err
		}
		defer bm.Close()
		e, err := bm.Embed(ctx, embedTexts, oneThread)
		if err != nil {
			return p, fmt.Errorf("embed with tiny-bert: %w", err)
		}
		p.Embeddings = append(p.Embeddings, e...)
	}
	return p, nil
}

// TestVulkanHelper is the child process of the Vulkan tests.
func TestVulkanHelper(t *testing.T) {
	out := os.Getenv("LLAMAGO_TEST_VULKAN_HELPER")
	if out == "" {
		t.Skip("run by the Vulkan tests")
	}
	h := &recordHandler{}
	llama.SetLogger(slog.New(h))
	defer llama.SetLogger(nil)
	r := vulkanResult{
		Loads:   llama.BackendLoads(),
		Devices: llama.Devices(),
		Offload: llama.SupportsGPUOffload(),
	}
	for _, s := range strings.Split(os.Getenv("LLAMAGO_TEST_VULKAN_NGL"), ",") {
		ngl, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		// tiny-bert only with every layer offloaded: each load costs seconds
		// of lavapipe's shader compiles.
		bert := ""
		if ngl < 0 {
			bert = os.Getenv("LLAMAGO_TEST_VULKAN_BERT")
		}
		p, err := runVulkanPass(os.Getenv("LLAMAGO_TEST_VULKAN_MODEL"), bert, ngl, h)
		if err != nil {
			t.Fatalf("-ngl %d: %v", ngl, err)
		}
		r.Passes = append(r.Passes, p)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// runVulkanHelper runs TestVulkanHelper in env (testvulkan's), for each
// of ngls.
func runVulkanHelper(t *testing.T, env []string, bert string, ngls ...int) vulkanResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "result.json")
	var list []string
	for _, n := range ngls {
		list = append(list, strconv.Itoa(n))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestVulkanHelper$", "-test.count=1")
	cmd.Env = append(slices.Clip(env),
		"LLAMAGO_TEST_VULKAN_HELPER="+out,
		"LLAMAGO_TEST_VULKAN_MODEL="+modelPath(t, "stories260K.gguf"),
		"LLAMAGO_TEST_VULKAN_BERT="+bert,
		"LLAMAGO_TEST_VULKAN_NGL="+strings.Join(list, ","))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("helper wrote no result: %v\n%s", err, b)
	}
	var r vulkanResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Loads {
		t.Logf("load %+v", l)
	}
	for _, d := range r.Devices {
		t.Logf("device %+v", d)
	}
	return r
}

// tinyBertFile synthesizes the tiny-bert shape into a temporary file.
func tinyBertFile(t *testing.T) string {
	t.Helper()
	shape, ok := models.LookupShape("tiny-bert")
	if !ok {
		t.Fatal("no tiny-bert shape")
	}
	path := filepath.Join(t.TempDir(), "tiny-bert.gguf")
	if err := models.SynthesizeFile(path, models.SynthOptions{Shape: shape, Vocab: modelPath(t, "vocab/ggml-vocab-bert-bge.gguf"), Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return path
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

var offloadedRE = regexp.MustCompile(`offloaded (\d+)/(\d+) layers to GPU`)

// TestVulkanOffload compares stories260K with 0, half and all of its
// layers on lavapipe with the CPU: the offload llama.cpp reports, the
// logits after the prompt, the greedy text, and embeddings (stories260K's
// and tiny-bert's).
func TestVulkanOffload(t *testing.T) {
	env := testvulkan.Env(t)
	bert := tinyBertFile(t)
	if llama.SupportsGPUOffload() {
		t.Fatal("the test process itself has a GPU backend: the CPU reference would not be the CPU's")
	}
	cpu, err := runVulkanPass(modelPath(t, "stories260K.gguf"), bert, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CPU: %q", cpu.Text)

	// stories260K: 5 blocks and the output layer, 6 layers to offload.
	const layers = 6
	r := runVulkanHelper(t, env, bert, 0, layers/2, -1)

	var vk *llama.Device
	for i, d := range r.Devices {
		if strings.HasPrefix(d.Name, "Vulkan") {
			vk = &r.Devices[i]
		}
	}
	switch {
	case vk == nil:
		t.Fatalf("no Vulkan device: %+v (loads %+v)", r.Devices, r.Loads)
	case vk.Type != llama.DeviceGPU || vk.TotalMemory == 0 || vk.FreeMemory > vk.TotalMemory:
		t.Errorf("Vulkan device %+v: want a GPU with its memory", *vk)
	case !strings.Contains(vk.Description, "llvmpipe"):
		t.Errorf("Vulkan device %q: want lavapipe (llvmpipe)", vk.Description)
	}
	if !r.Offload {
		t.Error("SupportsGPUOffload is false with the Vulkan backend loaded")
	}
	if len(r.Passes) != 3 {
		t.Fatalf("%d passes, want 3", len(r.Passes))
	}
	for i, p := range r.Passes {
		offloaded := []int{0, layers / 2, layers}[i]
		m := offloadedRE.FindStringSubmatch(p.Offloaded)
		if m == nil || m[1] != strconv.Itoa(offloaded) || m[2] != strconv.Itoa(layers) {
			t.Errorf("-ngl %d: llama.cpp logged %q, want offloaded %d/%d layers", p.NGL, p.Offloaded, offloaded, layers)
		}
		d := maxAbsDiff(p.Logits, cpu.Logits)
		t.Logf("-ngl %d: logits differ from the CPU's by at most %.2g; %q", p.NGL, d, p.Text)
		if d > vulkanLogitTol {
			t.Errorf("-ngl %d: a logit differs from the CPU's by %g, more than %g", p.NGL, d, vulkanLogitTol)
		}
		if argmax(p.Logits) != argmax(cpu.Logits) {
			t.Errorf("-ngl %d: the first token is %d, the CPU's %d", p.NGL, argmax(p.Logits), argmax(cpu.Logits))
		}
		if !slices.Equal(p.Tokens, cpu.Tokens) {
			t.Errorf("-ngl %d: greedy text\n%q\nwant the CPU's\n%q", p.NGL, p.Text, cpu.Text)
		}
		want := len(embedTexts) // stories260K's
		if p.NGL < 0 {
			want *= 2 // and tiny-bert's
		}
		if len(p.Embeddings) != want {
			t.Fatalf("-ngl %d: %d embeddings, want %d", p.NGL, len(p.Embeddings), want)
		}
		for j := range p.Embeddings {
			if c := cosine(p.Embeddings[j], cpu.Embeddings[j]); !(c >= vulkanCosineMin) {
				t.Errorf("-ngl %d: embedding %d has cosine %f with the CPU's, want at least %f", p.NGL, j, c, vulkanCosineMin)
			}
		}
	}
	if len(cpu.Tokens) != vulkanTokens {
		t.Errorf("the CPU generated %d tokens, want %d: the comparison would be short", len(cpu.Tokens), vulkanTokens)
	}
}

// TestVulkanFallback: with the backend unable to work (no driver), or
// working without a device it may use (lavapipe is a CPU, which
// ggml-vulkan skips unless GGML_VK_VISIBLE_DEVICES names it), the load says
// why and the model runs on the CPU, with the CPU's text.
func TestVulkanFallback(t *testing.T) {
	cpu, err := runVulkanPass(modelPath(t, "stories260K.gguf"), "", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
		want func(l llama.BackendLoad) bool
		what string
	}{
		{"no driver", testvulkan.NoDriverEnv(t), func(l llama.BackendLoad) bool {
			return !l.Loaded && strings.Contains(l.Err, "failed to initialize") && strings.Contains(l.Err, "no usable Vulkan driver")
		}, "not loaded: failed to initialize, no usable Vulkan driver"},
		{"CPU device not named", testvulkan.NoDevicesEnv(t), func(l llama.BackendLoad) bool {
			return l.Loaded && l.Devices == 0 && strings.Contains(l.Note, "GGML_VK_VISIBLE_DEVICES")
		}, "loaded without devices, with a note naming GGML_VK_VISIBLE_DEVICES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runVulkanHelper(t, tc.env, "", -1)
			var found bool
			for _, l := range r.Loads {
				if filepath.Base(l.Path) == "libggml-vulkan.so" {
					found = true
					if !tc.want(l) {
						t.Errorf("load %+v: want %s", l, tc.what)
					}
				}
			}
			if !found {
				t.Errorf("libggml-vulkan.so is not among the loads %+v", r.Loads)
			}
			if r.Offload || len(r.Devices) != 1 || r.Devices[0].Type != llama.DeviceCPU {
				t.Errorf("devices %+v, offload %v: want the CPU only", r.Devices, r.Offload)
			}
			p := r.Passes[0]
			if m := offloadedRE.FindStringSubmatch(p.Offloaded); m != nil && m[1] != "0" {
				t.Errorf("llama.cpp logged %q, want nothing offloaded", p.Offloaded)
			}
			if !slices.Equal(p.Tokens, cpu.Tokens) {
				t.Errorf("greedy text %q, want the CPU's %q", p.Text, cpu.Text)
			}
		})
	}
}
