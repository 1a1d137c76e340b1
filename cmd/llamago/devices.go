package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/llamago/llamago/llama"
)

// devicesOptions are the flags and streams of "llamago devices".
type devicesOptions struct {
	IO   *iostreams
	JSON bool
}

func newDevicesCmd(streams *iostreams, runF func(*devicesOptions) error) *cobra.Command {
	opts := &devicesOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the devices llama.cpp can run on, with their memory",
		Long: "List ggml's devices: the CPU and the GPUs of the backends loaded at start-up,\n" +
			"with their free and total memory. GPU backends are libraries (see docs/gpu.md;\n" +
			"make cuda and make vulkan build them) loaded from the directories of\n" +
			"$LLAMAGO_BACKEND_PATH, or by default lib/ beside the executable and\n" +
			"../lib/llamago; a library that cannot be loaded is listed with the reason.\n\n" +
			"The # column numbers the GPUs as --main-gpu and --tensor-split do.\n\n" +
			"Vulkan lists GPUs only; GGML_VK_VISIBLE_DEVICES=0 (a list of indexes of\n" +
			"vulkaninfo --summary) selects devices itself, CPU ones such as Mesa's\n" +
			"lavapipe included.",
		Example: `  llamago devices
  LLAMAGO_BACKEND_PATH=/opt/llamago/lib llamago devices --json
  GGML_VK_VISIBLE_DEVICES=0 llamago devices`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runDevices(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON object")
	return cmd
}

// devicesJSON is the object "llamago devices --json" prints.
type devicesJSON struct {
	Devices    []deviceJSON        `json:"devices"`
	SearchPath []string            `json:"search_path"`
	Libraries  []llama.BackendLoad `json:"libraries"`
	GPUOffload bool                `json:"gpu_offload"`
	LlamaCpp   llama.Build         `json:"llama_cpp"`
}

type deviceJSON struct {
	GPU         *int   `json:"gpu,omitempty"` // the index of --main-gpu
	Name        string `json:"name"`
	Description string `json:"description"`
	Type        string `json:"type"`
	FreeMemory  uint64 `json:"free_memory"`
	TotalMemory uint64 `json:"total_memory"`
}

func runDevices(_ context.Context, opts *devicesOptions) error {
	devs := llama.Devices()
	gpuIndex := offloadIndexes(devs)
	out := devicesJSON{
		SearchPath: llama.BackendSearchPath(),
		Libraries:  llama.BackendLoads(),
		GPUOffload: llama.SupportsGPUOffload(),
		LlamaCpp:   llama.BuildInfo(),
	}
	for i, d := range devs {
		dj := deviceJSON{Name: d.Name, Description: d.Description, Type: d.Type.String(), FreeMemory: d.FreeMemory, TotalMemory: d.TotalMemory}
		if g, ok := gpuIndex[i]; ok {
			dj.GPU = &g
		}
		out.Devices = append(out.Devices, dj)
	}
	if out.SearchPath == nil {
		out.SearchPath = []string{}
	}
	if out.Libraries == nil {
		out.Libraries = []llama.BackendLoad{}
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return printDevices(opts.IO.Out, out)
}

// offloadIndexes numbers the devices llama.cpp offloads to, as its
// main_gpu and tensor_split do: the GPUs in ggml's order, or the
// integrated GPUs if there is no other. The map is from the index in devs.
func offloadIndexes(devs []llama.Device) map[int]int {
	m := map[int]int{}
	for _, typ := range []llama.DeviceType{llama.DeviceGPU, llama.DeviceIntegratedGPU} {
		for i, d := range devs {
			if d.Type == typ {
				m[i] = len(m)
			}
		}
		if len(m) > 0 {
			break
		}
	}
	return m
}

func printDevices(w io.Writer, d devicesJSON) error {
	var b strings.Builder
	rows := [][]string{{"#", "NAME", "TYPE", "FREE", "TOTAL", "DESCRIPTION"}}
	for _, dev := range d.Devices {
		idx := "-"
		if dev.GPU != nil {
			idx = strconv.Itoa(*dev.GPU)
		}
		rows = append(rows, []string{idx, dev.Name, dev.Type, humanBytes(dev.FreeMemory), humanBytes(dev.TotalMemory), dev.Description})
	}
	writeTable(&b, rows)
	fmt.Fprintf(&b, "\nllama.cpp: %s\n", d.LlamaCpp)
	_, set := os.LookupEnv(llama.BackendPathEnv)
	switch {
	case len(d.SearchPath) == 0 && set:
		fmt.Fprintf(&b, "backend libraries: not searched (%s is empty)\n", llama.BackendPathEnv)
	case len(d.SearchPath) == 0:
		fmt.Fprintf(&b, "backend libraries: only the installed llama.cpp's own, and those of %s (not set)\n", llama.BackendPathEnv)
	default:
		fmt.Fprintf(&b, "backend libraries: searched in %s\n", strings.Join(d.SearchPath, string(filepath.ListSeparator)))
	}
	for _, l := range d.Libraries {
		switch {
		case l.Loaded && l.Note != "":
			fmt.Fprintf(&b, "  loaded   %s: %s, %d device(s): %s\n", l.Path, l.Backend, l.Devices, l.Note)
		case l.Loaded:
			fmt.Fprintf(&b, "  loaded   %s: %s, %d device(s)\n", l.Path, l.Backend, l.Devices)
		case strings.HasPrefix(l.Err, "skipped: "):
			fmt.Fprintf(&b, "  skipped  %s: %s\n", l.Path, strings.TrimPrefix(l.Err, "skipped: "))
		default:
			fmt.Fprintf(&b, "  failed   %s: %s\n", l.Path, l.Err)
		}
	}
	if len(d.Libraries) == 0 && len(d.SearchPath) > 0 {
		b.WriteString("  none found\n")
	}
	loaded := false
	for _, l := range d.Libraries {
		loaded = loaded || (l.Loaded && !strings.EqualFold(l.Backend, "cpu"))
	}
	switch {
	case d.GPUOffload:
		b.WriteString("GPU offload: yes\n")
	case loaded:
		b.WriteString("GPU offload: no (no GPU device; see above and docs/gpu.md)\n")
	default:
		b.WriteString("GPU offload: no (no GPU backend loaded; see docs/gpu.md)\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeTable writes rows in columns separated by two spaces, the last
// column unpadded.
func writeTable(b *strings.Builder, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-len([]rune(c))+2))
		}
		b.WriteString("\n")
	}
}

// gpuFlags are the multi-GPU flags of run and chat (--split-mode,
// --main-gpu, --tensor-split), as llama.cpp's.
type gpuFlags struct {
	SplitMode   string
	MainGPU     int
	TensorSplit string

	// Set by validate.
	split       llama.SplitMode
	tensorSplit []float32
	gpus        int // GPUs llama.cpp can offload to; counted only when --split-mode none or --main-gpu asks
}

// addGPUFlags registers --split-mode (-sm), --main-gpu (-mg) and
// --tensor-split (-ts).
func addGPUFlags(f *pflag.FlagSet, g *gpuFlags) {
	f.StringVar(&g.SplitMode, "split-mode", "layer", "how to split the model across GPUs: none (--main-gpu only), layer or row (short -sm)")
	f.IntVar(&g.MainGPU, "main-gpu", 0, "the GPU for the whole model with --split-mode none, for intermediate results with row (short -mg; see llamago devices)")
	f.StringVar(&g.TensorSplit, "tensor-split", "", "proportions of the model per GPU, e.g. 3,1 (short -ts; default: by free memory)")
}

// gpuCount counts the devices llama.cpp offloads to; a variable for tests.
var gpuCount = func() int { return len(offloadIndexes(llama.Devices())) }

func (g *gpuFlags) validate() error {
	var err error
	if g.split, err = parseSplitMode(g.SplitMode); err != nil {
		return usageErrorf("--split-mode: %v", err)
	}
	if g.MainGPU < 0 {
		return usageErrorf("--main-gpu must be 0 or more, not %d", g.MainGPU)
	}
	if g.tensorSplit, err = parseTensorSplit(g.TensorSplit); err != nil {
		return usageErrorf("--tensor-split: %v", err)
	}
	g.gpus = -1
	if g.split == llama.SplitNone || g.MainGPU > 0 {
		g.gpus = gpuCount()
		if g.gpus > 0 && g.MainGPU >= g.gpus {
			return usageErrorf("--main-gpu %d: there are %d GPUs, numbered from 0 (see llamago devices)", g.MainGPU, g.gpus)
		}
	}
	return nil
}

// modelOptions are the options of Load the flags set. Without a GPU they
// have nothing to split, and --split-mode none, which llama.cpp refuses
// there, is left out.
func (g *gpuFlags) modelOptions() []llama.ModelOption {
	var opts []llama.ModelOption
	if g.split != llama.SplitNone || g.gpus != 0 {
		opts = append(opts, llama.WithSplitMode(g.split))
	}
	opts = append(opts, llama.WithMainGPU(g.MainGPU))
	if len(g.tensorSplit) > 0 {
		opts = append(opts, llama.WithTensorSplit(g.tensorSplit))
	}
	return opts
}

func parseSplitMode(s string) (llama.SplitMode, error) {
	switch strings.ToLower(s) {
	case "none":
		return llama.SplitNone, nil
	case "layer", "":
		return llama.SplitLayer, nil
	case "row":
		return llama.SplitRow, nil
	}
	return 0, fmt.Errorf("%q is not none, layer or row", s)
}

// parseTensorSplit parses llama.cpp's --tensor-split: proportions
// separated by commas or slashes ("3,1", "3/1"); "" is none.
func parseTensorSplit(s string) ([]float32, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '/' })
	if len(parts) == 0 {
		return nil, fmt.Errorf("%q has no proportions", s)
	}
	const maxDevices = 16 // llama_max_devices
	if len(parts) > maxDevices {
		return nil, fmt.Errorf("%d proportions, at most %d", len(parts), maxDevices)
	}
	out := make([]float32, len(parts))
	sum := 0.0
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("%q is not a proportion (a number, 0 or more)", p)
		}
		out[i] = float32(v)
		sum += v
	}
	if sum == 0 {
		return nil, fmt.Errorf("%q: every proportion is 0", s)
	}
	return out, nil
}

// benchSplit is one combination of bench's --split-mode, --main-gpu and
// --tensor-split.
type benchSplit struct {
	mode        llama.SplitMode
	mainGPU     int
	tensorSplit []float32
}

// benchSplits parses bench's list flags into every combination, in
// llama-bench's nesting order; the default is one: layer, 0, none.
func benchSplits(modes, mains, splits []string) ([]benchSplit, error) {
	ms := []llama.SplitMode{llama.SplitLayer}
	if vals := splitList(modes); len(vals) > 0 {
		ms = nil
		for _, s := range vals {
			m, err := parseSplitMode(s)
			if err != nil {
				return nil, usageErrorf("--split-mode: %v", err)
			}
			ms = append(ms, m)
		}
	}
	mgs, err := parseIntRanges("--main-gpu", mains, 0)
	if err != nil {
		return nil, err
	}
	if len(mgs) == 0 {
		mgs = []int{0}
	}
	tss := [][]float32{nil}
	if vals := splitList(splits); len(vals) > 0 {
		tss = nil
		for _, s := range vals {
			ts, err := parseTensorSplit(s)
			if err != nil {
				return nil, usageErrorf("--tensor-split: %v", err)
			}
			tss = append(tss, ts)
		}
	}
	var out []benchSplit
	for _, m := range ms {
		for _, mg := range mgs {
			for _, ts := range tss {
				out = append(out, benchSplit{mode: m, mainGPU: mg, tensorSplit: ts})
			}
		}
	}
	return out, nil
}

func (s benchSplit) modeName() string {
	switch s.mode {
	case llama.SplitNone:
		return "none"
	case llama.SplitRow:
		return "row"
	}
	return "layer"
}

// tensorSplitString formats the split as llama-bench reports it:
// "3.00/1.00", or "0.00" for none.
func (s benchSplit) tensorSplitString() string {
	if len(s.tensorSplit) == 0 {
		return "0.00"
	}
	parts := make([]string, len(s.tensorSplit))
	for i, f := range s.tensorSplit {
		parts[i] = strconv.FormatFloat(float64(f), 'f', 2, 32)
	}
	return strings.Join(parts, "/")
}

func (s benchSplit) key() string {
	return fmt.Sprintf("%s/%d/%s", s.modeName(), s.mainGPU, s.tensorSplitString())
}

func (s benchSplit) modelOptions() []llama.ModelOption {
	g := gpuFlags{split: s.mode, MainGPU: s.mainGPU, tensorSplit: s.tensorSplit, gpus: -1}
	if s.mode == llama.SplitNone {
		g.gpus = gpuCount()
	}
	return g.modelOptions()
}

// noteCPUFallback writes, on the stderr of ctx's command, one line saying
// why the model will run on the CPU although ngl layers were to be
// offloaded (see cpuFallbackLine).
func noteCPUFallback(ctx context.Context, ngl int) {
	if ngl == 0 {
		return
	}
	if line := cpuFallbackLine(ngl, llama.SupportsGPUOffload(), llama.BackendLoads(), llama.BackendSearchPath()); line != "" {
		fmt.Fprintln(modelEnvFrom(ctx).ErrOut, line)
	}
}

// cpuFallbackLine is the line of noteCPUFallback, or "" when there is
// nothing to say: a GPU takes the layers (offload), no layer was asked for,
// or no backend library was found and ngl is the default -1 (all, if there
// is a GPU: a CPU-only install stays quiet). A library that failed to load,
// or loaded without a device, is the reason given; with none, an explicit
// ngl > 0 gets the search path.
func cpuFallbackLine(ngl int, offload bool, loads []llama.BackendLoad, dirs []string) string {
	if ngl == 0 || offload {
		return ""
	}
	var reasons []string
	for _, l := range loads {
		switch {
		case l.Backend == "cpu" || strings.HasPrefix(l.Err, "skipped: "):
		case l.Loaded && l.Devices == 0:
			reasons = append(reasons, fmt.Sprintf("%s: %s", filepath.Base(l.Path), l.Note))
		case !l.Loaded:
			reasons = append(reasons, fmt.Sprintf("%s: %s", filepath.Base(l.Path), l.Err))
		}
	}
	const prefix = "llamago: no GPU to offload to, running on the CPU: "
	switch {
	case len(reasons) == 1:
		return prefix + reasons[0]
	case len(reasons) > 1:
		return prefix + reasons[0] + fmt.Sprintf(" (and %d more: llamago devices)", len(reasons)-1)
	case ngl < 0:
		return ""
	case len(dirs) == 0:
		if _, set := os.LookupEnv(llama.BackendPathEnv); set {
			return prefix + "no backend library is searched for (" + llama.BackendPathEnv + " is empty)"
		}
		return prefix + "the installed llama.cpp has no GPU backend (docs/gpu.md)"
	}
	return prefix + "no GPU backend library in " + strings.Join(dirs, string(filepath.ListSeparator)) +
		" (make vulkan or make cuda builds one; docs/gpu.md)"
}
