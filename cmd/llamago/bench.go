package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/bench"
	"github.com/llamago/llamago/internal/clock"
	"github.com/llamago/llamago/llama"
)

// benchOptions are the flags and streams of "llamago bench". The list
// flags take comma-separated values and may be repeated, as llama-bench's;
// every combination of their values is run.
type benchOptions struct {
	IO *iostreams

	Models     []string // files, or directories of .gguf files
	NPrompt    []string
	NGen       []string
	PG         []string // pp,tg pairs
	E2E        []string // pp,tg pairs
	Parallel   []string // generations at once in the e2e tests
	Threads    []string
	Batch      []string
	UBatch     []string
	GPULayers  []string
	SplitMode  []string // none, layer, row
	MainGPU    []string
	TSplit     []string // tensor splits, proportions separated by "/"
	FlashAttn  []string
	CacheTypeK []string
	CacheTypeV []string
	Mmap       []string
	Reps       int
	Output     string
	Plot       string
	Native     bool
	Progress   bool
	NoWarmup   bool
	MMProj     string    // --mmproj: the e2e prompts get images
	Images     []string  // --image
	Temp       float32   // e2e sampling
	Spec       specFlags // e2e: run each test without and with speculation

	// Set by validate from the flags above.
	models         []string
	nPrompt, nGen  []int
	pg, e2e        [][2]int
	parallel       []int
	threads        []int
	batch, ubatch  []int
	ngl            []int
	splits         []benchSplit // every combination of SplitMode, MainGPU and TSplit
	fa             []llama.FlashAttention
	typeK, typeV   []llama.CacheType
	mmap           []bool
	markdownParams []string // optional columns of the markdown table
	threadsDefault int
}

// llama-bench's defaults, but for the threads (llama.DefaultThreads) and
// the GPU layers (99, llama-bench's long-standing "all").
var (
	benchDefaultPrompt = []int{512}
	benchDefaultGen    = []int{128}
	benchDefaultBatch  = []int{2048}
	benchDefaultUBatch = []int{512}
	benchDefaultNGL    = []int{99}
	benchDefaultFA     = []llama.FlashAttention{llama.FlashAttentionOff} // llama-bench's -fa 0
	benchDefaultCache  = []llama.CacheType{llama.CacheF16}
	benchDefaultMmap   = []bool{true}
)

func newBenchCmd(streams *iostreams, runF func(*benchOptions) error) *cobra.Command {
	opts := &benchOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "bench -m MODEL [flags]",
		Short: "Measure prompt processing and generation speed, as llama-bench",
		Long: "Measure prompt processing and generation speed with llama-bench's method and\n" +
			"vocabulary: pp512 decodes 512 random prompt tokens in batches, tg128\n" +
			"generates 128 tokens one at a time, pp512+tg128 (-pg 512,128) does both. Each\n" +
			"test runs once to warm up, then --repetitions times with the KV cache cleared\n" +
			"before each; nothing is sampled in the timed loop. Speeds are tokens/s per\n" +
			"repetition, reported as mean ± sample standard deviation.\n\n" +
			"Every flag but -r, -o and the switches takes a comma-separated list, or ranges\n" +
			"first-last, first-last+step, first-last*mult, and may be repeated; every\n" +
			"combination is run. -m also takes a directory: its .gguf files (say, the\n" +
			"quantizations of one model), largest first.\n\n" +
			"Beyond llama-bench: --e2e pp,tg generates tg tokens with sampling after a\n" +
			"pp-token prompt through the high-level API and reports the time to first\n" +
			"token and the inter-token latency percentiles; --parallel N decodes N sequences\n" +
			"at once (tg128x4: a token of each per batch; e2e16+128x4: four generations\n" +
			"batched by the library), the tokens/s counting them all; --native runs each\n" +
			"pp/tg test also with llama-bench's loop written in C, alternating with the Go\n" +
			"one (by repetition, and for tg every 8 tokens), and reports the ratio Go/C with its\n" +
			"95% confidence interval; every result carries the model's load time and the\n" +
			"peak resident memory; --plot draws tokens/s per model.\n\n" +
			"The output (-o) is llama-bench's markdown table, or CSV, JSON or JSON Lines\n" +
			"with llama-bench's field names plus llamago's (test, load_ns, peak_rss_bytes,\n" +
			"native_*, go_c_ratio, ttft_*, itl_*). A progress line goes to stderr when it\n" +
			"is a terminal. Ctrl-C stops after the current repetition.",
		Example: `  llamago bench -m stories260K.gguf
  llamago bench -m model.gguf -p 512 -n 128 -pg 512,128 -t 1,2 -o json
  llamago bench -m ~/models/llama-60m/ --native --e2e 512,128 --plot speed.svg
  llamago bench -m a.gguf,b.gguf -ngl 0,99 -fa on,off -ctk q8_0 -ctv q8_0 -o csv`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runBench(cmd.Context(), opts)
		},
	}

	f := cmd.Flags()
	f.SortFlags = false
	list := func(p *[]string, name, short, typ, usage string) {
		f.VarP(&listValue{p: p, typ: typ}, name, short, usage)
	}
	list(&opts.Models, "model", "m", "files", "model files, or directories of .gguf files (required)")
	list(&opts.NPrompt, "n-prompt", "p", "list", "prompt lengths of the pp tests; 0: none (default 512)")
	list(&opts.NGen, "n-gen", "n", "list", "generation lengths of the tg tests; 0: none (default 128)")
	list(&opts.PG, "prompt-gen", "", "pp,tg", "test pp prompt tokens then tg generated ones, in one repetition (short -pg)")
	list(&opts.E2E, "e2e", "", "pp,tg", "end-to-end test: tg tokens generated with sampling after a pp-token prompt")
	list(&opts.Parallel, "parallel", "", "list", "sequences decoded at once: a token of each per batch, or e2e generations at once (default 1)")
	f.StringVar(&opts.MMProj, "mmproj", "", "vision projector of the model: each e2e prompt starts with the --image files, and the time to encode them is shown")
	f.StringArrayVar(&opts.Images, "image", nil, "image file for the e2e prompts (repeatable; needs --mmproj)")
	list(&opts.Threads, "threads", "t", "list", fmt.Sprintf("threads (default %d)", llama.DefaultThreads()))
	list(&opts.Batch, "batch-size", "b", "list", "logical batch sizes (default 2048)")
	list(&opts.UBatch, "ubatch-size", "", "list", "physical batch sizes (short -ub; default 512)")
	list(&opts.GPULayers, "n-gpu-layers", "", "list", "layers to offload to GPUs, -1 for all (short -ngl; default 99)")
	list(&opts.SplitMode, "split-mode", "", "list", "how to split the model across GPUs: none, layer or row (short -sm; default layer)")
	list(&opts.MainGPU, "main-gpu", "", "list", "the GPU of --split-mode none (short -mg; default 0)")
	list(&opts.TSplit, "tensor-split", "", "list", "proportions of the model per GPU separated by /, e.g. 3/1 (short -ts; default: by free memory)")
	list(&opts.FlashAttn, "flash-attn", "", "list", "flash attention: on, off, auto, or 1, 0, -1 (short -fa; default off, as llama-bench)")
	list(&opts.CacheTypeK, "cache-type-k", "", "list", "K cache types: "+cacheTypeNames+" (short -ctk; default f16)")
	list(&opts.CacheTypeV, "cache-type-v", "", "list", "V cache types, as --cache-type-k (short -ctv; default f16)")
	list(&opts.Mmap, "mmap", "", "list", "memory-map the model file: 1 or 0 (short -mmp; default 1)")
	f.IntVarP(&opts.Reps, "repetitions", "r", 5, "timed repetitions of each test")
	f.StringVarP(&opts.Output, "output", "o", "md", "output format: md, csv, json, jsonl or none")
	f.StringVar(&opts.Plot, "plot", "", "draw tokens/s per model and test, with error bars, to this .svg or .png file")
	f.BoolVar(&opts.Native, "native", false, "also run each pp/tg test with the C loop, alternating, and report Go/C")
	f.BoolVar(&opts.Progress, "progress", false, "report progress on stderr even when it is not a terminal")
	f.BoolVar(&opts.NoWarmup, "no-warmup", false, "skip the warm-up run of each test")
	f.Float32Var(&opts.Temp, "temp", 0.8, "temperature of the e2e tests' sampling (0: greedy)")
	addSpecFlags(f, &opts.Spec)
	return cmd
}

// validate parses the lists, fills in the defaults and checks the values.
func (o *benchOptions) validate() error {
	var err error
	if o.models, err = expandModels(splitList(o.Models)); err != nil {
		return err
	}
	if len(o.models) == 0 {
		return usageErrorf("--model is required")
	}
	ints := func(flag string, vals []string, def []int, lo int) ([]int, error) {
		v, err := parseIntRanges(flag, vals, lo)
		if err != nil {
			return nil, err
		}
		if len(v) == 0 {
			v = def
		}
		return v, nil
	}
	if o.nPrompt, err = ints("--n-prompt", o.NPrompt, benchDefaultPrompt, 0); err != nil {
		return err
	}
	if o.nGen, err = ints("--n-gen", o.NGen, benchDefaultGen, 0); err != nil {
		return err
	}
	if o.pg, err = parsePairs("--prompt-gen", o.PG, 0); err != nil {
		return err
	}
	if o.e2e, err = parsePairs("--e2e", o.E2E, 1); err != nil {
		return err
	}
	if o.parallel, err = ints("--parallel", o.Parallel, []int{1}, 1); err != nil {
		return err
	}
	switch {
	case (o.MMProj != "") != (len(o.Images) > 0):
		return usageErrorf("--mmproj and --image go together")
	case o.MMProj != "" && len(o.e2e) == 0:
		return usageErrorf("--mmproj and --image are for the --e2e tests")
	case o.MMProj != "" && len(o.Models) != 1:
		return usageErrorf("--mmproj is the projector of one model: give one --model")
	case len(o.Images) > llama.MaxImagesPerPrompt:
		return usageErrorf("at most %d images, not %d", llama.MaxImagesPerPrompt, len(o.Images))
	}
	for _, p := range o.parallel {
		if p > llama.MaxSequences() {
			return usageErrorf("--parallel: %d sequences, at most %d", p, llama.MaxSequences())
		}
		if p > 1 && o.Native {
			return usageErrorf("--native measures one sequence: drop --parallel %d", p)
		}
	}
	o.threadsDefault = llama.DefaultThreads()
	if o.threads, err = ints("--threads", o.Threads, []int{o.threadsDefault}, 1); err != nil {
		return err
	}
	if o.batch, err = ints("--batch-size", o.Batch, benchDefaultBatch, 1); err != nil {
		return err
	}
	if o.ubatch, err = ints("--ubatch-size", o.UBatch, benchDefaultUBatch, 1); err != nil {
		return err
	}
	if o.ngl, err = ints("--n-gpu-layers", o.GPULayers, benchDefaultNGL, -1); err != nil {
		return err
	}
	if o.splits, err = benchSplits(o.SplitMode, o.MainGPU, o.TSplit); err != nil {
		return err
	}
	o.fa = nil
	for _, s := range splitList(o.FlashAttn) {
		fa, err := flashAttnFlag(s)
		if err != nil {
			return err
		}
		o.fa = append(o.fa, fa)
	}
	faDefault := len(o.fa) == 0
	if faDefault {
		o.fa = benchDefaultFA
	}
	cacheTypes := func(flag string, vals []string) ([]llama.CacheType, error) {
		var ts []llama.CacheType
		for _, s := range splitList(vals) {
			t, err := parseCacheType(flag, s)
			if err != nil {
				return nil, err
			}
			ts = append(ts, t)
		}
		if len(ts) == 0 {
			ts = benchDefaultCache
		}
		return ts, nil
	}
	if o.typeK, err = cacheTypes("--cache-type-k", o.CacheTypeK); err != nil {
		return err
	}
	if o.typeV, err = cacheTypes("--cache-type-v", o.CacheTypeV); err != nil {
		return err
	}
	o.mmap = nil
	for _, s := range splitList(o.Mmap) {
		b, ok := parseBool01(s)
		if !ok {
			return usageErrorf("--mmap: %q is not 1 or 0", s)
		}
		o.mmap = append(o.mmap, b)
	}
	if len(o.mmap) == 0 {
		o.mmap = benchDefaultMmap
	}
	if faDefault && slices.ContainsFunc(o.typeV, quantized) {
		o.fa = []llama.FlashAttention{llama.FlashAttentionOn} // what a quantized V cache needs
	}
	for _, fa := range o.fa {
		for _, t := range o.typeV {
			if fa == llama.FlashAttentionOff && quantized(t) {
				return usageErrorf("a quantized V cache (--cache-type-v %s) needs flash attention: drop --flash-attn off", t)
			}
		}
	}
	if o.Reps < 1 {
		return usageErrorf("--repetitions must be at least 1, not %d", o.Reps)
	}
	if !finite(o.Temp) || o.Temp < 0 {
		return usageErrorf("--temp must be 0 (greedy) or positive, not %v", o.Temp)
	}
	if err := o.Spec.validate(); err != nil {
		return err
	}
	if o.Spec.on() && len(o.e2e) == 0 {
		return usageErrorf("speculative decoding (--model-draft, --spec-ngram) is measured by the --e2e tests: give --e2e")
	}
	if !slices.Contains(bench.Formats, o.Output) {
		return usageErrorf("--output must be one of %s, not %q", strings.Join(bench.Formats, ", "), o.Output)
	}
	if o.Plot != "" {
		if ext := strings.ToLower(filepath.Ext(o.Plot)); ext != ".svg" && ext != ".png" {
			return usageErrorf("--plot: the file name must end in .svg or .png, not %q", o.Plot)
		}
	}
	if len(o.tests()) == 0 {
		return usageErrorf("no test to run: every --n-prompt and --n-gen is 0, and no --prompt-gen or --e2e")
	}

	// The markdown table's parameter columns, chosen as llama-bench does.
	o.markdownParams = nil
	show := func(name string, differs bool) {
		if differs {
			o.markdownParams = append(o.markdownParams, name)
		}
	}
	cpu := !llama.SupportsGPUOffload()
	show("n_gpu_layers", !cpu)
	show("n_threads", cpu || !slices.Equal(o.threads, []int{o.threadsDefault}))
	show("n_batch", !slices.Equal(o.batch, benchDefaultBatch))
	show("n_ubatch", !slices.Equal(o.ubatch, benchDefaultUBatch))
	show("type_k", !slices.Equal(o.typeK, benchDefaultCache))
	show("type_v", !slices.Equal(o.typeV, benchDefaultCache))
	show("flash_attn", !slices.Equal(o.fa, benchDefaultFA))
	show("use_mmap", !slices.Equal(o.mmap, benchDefaultMmap))
	return nil
}

// benchTest is one test of a parameter combination.
type benchTest struct {
	nPrompt, nGen int
	e2e           bool
	spec          bool // e2e with speculative decoding
}

// tests lists the tests of each combination in llama-bench's order: the
// pp tests, the tg tests, the pp+tg tests; then the end-to-end ones.
func (o *benchOptions) tests() []benchTest {
	var ts []benchTest
	for _, n := range o.nPrompt {
		if n > 0 {
			ts = append(ts, benchTest{nPrompt: n})
		}
	}
	for _, n := range o.nGen {
		if n > 0 {
			ts = append(ts, benchTest{nGen: n})
		}
	}
	for _, p := range o.pg {
		if p[0] > 0 || p[1] > 0 {
			ts = append(ts, benchTest{nPrompt: p[0], nGen: p[1]})
		}
	}
	for _, p := range o.e2e {
		ts = append(ts, benchTest{nPrompt: p[0], nGen: p[1], e2e: true})
		if o.Spec.on() {
			ts = append(ts, benchTest{nPrompt: p[0], nGen: p[1], e2e: true, spec: true})
		}
	}
	return ts
}

// benchInstance is one test with one combination of the parameters.
type benchInstance struct {
	model           string
	ngl             int
	split           benchSplit
	mmap            bool
	nBatch, nUBatch int
	typeK, typeV    llama.CacheType
	fa              llama.FlashAttention
	threads         int
	parallel        int // e2e: generations at once
	benchTest
}

// modelKey is what needs the model reloaded when it changes.
type modelKey struct {
	path  string
	ngl   int
	split string
	mmap  bool
}

func (in benchInstance) modelKey() modelKey {
	return modelKey{in.model, in.ngl, in.split.key(), in.mmap}
}

// instances lists every combination, nested as llama-bench nests them:
// the model parameters outermost, so a model is loaded once for all its
// tests.
func (o *benchOptions) instances() []benchInstance {
	var out []benchInstance
	tests := o.tests()
	for _, m := range o.models {
		for _, ngl := range o.ngl {
			for _, split := range o.splits {
				for _, mmap := range o.mmap {
					for _, nb := range o.batch {
						for _, nub := range o.ubatch {
							for _, tk := range o.typeK {
								for _, tv := range o.typeV {
									for _, fa := range o.fa {
										for _, nt := range o.threads {
											for _, t := range tests {
												for _, np := range o.parallel {
													out = append(out, benchInstance{
														model: m, ngl: ngl, split: split, mmap: mmap, nBatch: nb, nUBatch: nub,
														typeK: tk, typeV: tv, fa: fa, threads: nt, parallel: np, benchTest: t,
													})
												}
											}
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	return out
}

// listValue is a flag that may be repeated, each value a comma-separated
// list (split by validate); typ names its values in the help.
type listValue struct {
	p   *[]string
	typ string
}

func (v *listValue) Set(s string) error { *v.p = append(*v.p, s); return nil }
func (v *listValue) String() string     { return strings.Join(*v.p, ",") }
func (v *listValue) Type() string       { return v.typ }

// splitList splits every value at commas and drops empty items.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for s := range strings.SplitSeq(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

var intRange = regexp.MustCompile(`^(-?\d+)(?:-(\d+)(?:([+*])(\d+))?)?$`)

// parseIntRanges parses llama-bench's integer lists: comma-separated
// values and ranges first-last, first-last+step, first-last*mult. Values
// below lo are refused.
func parseIntRanges(flag string, vals []string, lo int) ([]int, error) {
	var out []int
	for _, s := range splitList(vals) {
		m := intRange.FindStringSubmatch(s)
		if m == nil {
			return nil, usageErrorf("%s: %q is not a number or a range first-last[+step|*mult]", flag, s)
		}
		first, err1 := strconv.Atoi(m[1])
		last, err2 := first, error(nil)
		if m[2] != "" {
			last, err2 = strconv.Atoi(m[2])
		}
		op, step, err3 := "+", 1, error(nil)
		if m[3] != "" {
			op = m[3]
			step, err3 = strconv.Atoi(m[4])
		}
		if err := errors.Join(err1, err2, err3); err != nil || first > 1<<24 || last > 1<<24 || step > 1<<24 {
			return nil, usageErrorf("%s: %q is out of range", flag, s)
		}
		if first < lo {
			return nil, usageErrorf("%s: %d is below %d", flag, first, lo)
		}
		if last < first {
			return nil, usageErrorf("%s: empty range %q", flag, s)
		}
		for i := first; i <= last; {
			out = append(out, i)
			next := i + step
			if op == "*" {
				next = i * step
			}
			if next <= i {
				return nil, usageErrorf("%s: range %q does not advance", flag, s)
			}
			i = next
		}
		if len(out) > 1<<12 {
			return nil, usageErrorf("%s: too many values", flag)
		}
	}
	return out, nil
}

// parsePairs parses pp,tg pairs: each value of the flag is one pair or
// several ("512,128,1024,256").
func parsePairs(flag string, vals []string, lo int) ([][2]int, error) {
	var out [][2]int
	for _, v := range vals {
		items := splitList([]string{v})
		if len(items) == 0 || len(items)%2 != 0 {
			return nil, usageErrorf("%s: %q is not a pair pp,tg", flag, v)
		}
		for i := 0; i < len(items); i += 2 {
			var p [2]int
			for j := range 2 {
				n, err := strconv.Atoi(items[i+j])
				if err != nil || n < lo || n > 1<<24 {
					return nil, usageErrorf("%s: %q is not a pair of token counts pp,tg (each at least %d)", flag, v, lo)
				}
				p[j] = n
			}
			out = append(out, p)
		}
	}
	return out, nil
}

func parseBool01(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "1", "true", "on", "yes":
		return true, true
	case "0", "false", "off", "no":
		return false, true
	}
	return false, false
}

var shardName = regexp.MustCompile(`-(\d{5})-of-\d{5}\.gguf$`)

// expandModels replaces each directory by its .gguf files (the first
// shard of split models), largest first, so that the quantizations of a
// model come in order; files are kept as given.
func expandModels(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil || !st.IsDir() {
			out = append(out, p) // a missing file fails at its load
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		type file struct {
			path string
			size int64
		}
		var files []file
		for _, e := range ents {
			name := e.Name()
			if !strings.HasSuffix(strings.ToLower(name), ".gguf") {
				continue
			}
			if m := shardName.FindStringSubmatch(name); m != nil && m[1] != "00001" {
				continue
			}
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() && info.Mode()&os.ModeSymlink == 0 {
				continue
			}
			if fi, err := os.Stat(filepath.Join(p, name)); err == nil && fi.Mode().IsRegular() {
				files = append(files, file{filepath.Join(p, name), fi.Size()})
			}
		}
		if len(files) == 0 {
			return nil, usageErrorf("--model: directory %s has no .gguf files", p)
		}
		slices.SortStableFunc(files, func(a, b file) int {
			return cmp.Or(cmp.Compare(b.size, a.size), strings.Compare(a.path, b.path))
		})
		for _, f := range files {
			out = append(out, f.path)
		}
	}
	return out, nil
}

// benchEnv is what every result says of the machine.
type benchEnv struct {
	cpuInfo, gpuInfo, backends string
}

func newBenchEnv() benchEnv {
	var cpus, gpus, names []string
	for _, d := range llama.Devices() {
		switch d.Type {
		case llama.DeviceCPU, llama.DeviceAccelerator:
			cpus = append(cpus, d.Description)
		default:
			gpus = append(gpus, d.Description)
			names = append(names, d.Name)
		}
	}
	e := benchEnv{cpuInfo: strings.Join(cpus, ", "), gpuInfo: strings.Join(gpus, ", "), backends: "CPU"}
	if len(names) > 0 {
		e.backends = strings.Join(names, ",")
	}
	return e
}

// runBench runs every combination, printing each result as it is done.
func runBench(ctx context.Context, opts *benchOptions) (err error) {
	printer, err := bench.NewPrinter(opts.Output, opts.IO.Out, bench.MarkdownOptions{
		Params: opts.markdownParams,
		Native: opts.Native,
		E2E:    len(opts.e2e) > 0,
		Images: len(opts.Images) > 0,
		Spec:   opts.Spec.on(),
		Build:  fmt.Sprintf("%s (0), llamago %s", llamaCppCommit, version),
	})
	if err != nil {
		return usageErrorf("%v", err)
	}
	tty := isTerminal(opts.IO.ErrOut)
	var progress *bench.Progress
	if tty || opts.Progress {
		progress = bench.NewProgress(opts.IO.ErrOut, tty)
	}
	defer progress.Clear()

	if err := printer.Header(); err != nil {
		return err
	}
	// The footer closes a JSON array even after an error.
	defer func() {
		progress.Clear()
		if ferr := printer.Footer(); err == nil {
			err = ferr
		}
	}()

	// Bench offloads 99 layers by default, as llama-bench: without a GPU
	// that is not worth a line unless -ngl was given.
	ngl := -1
	if len(opts.GPULayers) > 0 {
		ngl = 0
		for _, n := range opts.ngl {
			if n > 0 || (n < 0 && ngl == 0) {
				ngl = n
			}
		}
	}
	noteCPUFallback(ctx, ngl)

	if err := opts.Spec.load(ctx); err != nil {
		return err
	}
	defer opts.Spec.close()

	env := newBenchEnv()
	insts := opts.instances()
	images, err := loadImages(opts.Images)
	if err != nil {
		return err
	}
	var proj *llama.Projector
	var (
		model   *llama.Model
		key     modelKey
		loadNS  uint64
		results []bench.Result
	)
	defer func() {
		if model != nil {
			model.Close()
		}
	}()
	for i, in := range insts {
		if err := ctx.Err(); err != nil {
			return err
		}
		label := fmt.Sprintf("%d/%d %s %s", i+1, len(insts), strings.TrimSuffix(filepath.Base(in.model), ".gguf"),
			bench.TestName(in.nPrompt, in.nGen, in.e2e))
		if model == nil || in.modelKey() != key {
			if model != nil {
				model.Close()
				model = nil
			}
			progress.Update("%s: loading", label)
			bench.ResetPeakRSS()
			t0 := clock.Now()
			m, err := loadModel(ctx, in.model, append(in.split.modelOptions(), llama.WithGPULayers(in.ngl), llama.WithMmap(in.mmap))...)
			if err != nil {
				return err
			}
			model, key, loadNS = m, in.modelKey(), uint64(clock.Since(t0))
			if opts.MMProj != "" {
				if proj, err = model.LoadProjector(opts.MMProj, llama.WithProjectorThreads(in.threads)); err != nil {
					return fmt.Errorf("--mmproj %s: %w", opts.MMProj, unprefixed{err})
				}
			}
		}
		r := bench.Result{
			BuildCommit: llamaCppCommit, CPUInfo: env.cpuInfo, GPUInfo: env.gpuInfo, Backends: env.backends,
			ModelFilename: in.model, ModelType: model.Description(), ModelSize: model.Size(), ModelNParams: model.ParameterCount(),
			NBatch: in.nBatch, NUBatch: in.nUBatch, NThreads: in.threads, CPUMask: "0x0", Poll: 50,
			TypeK: in.typeK.String(), TypeV: in.typeV.String(), NGPULayers: in.ngl, SplitMode: in.split.modeName(), MainGPU: in.split.mainGPU,
			FlashAttn: int(in.fa), TensorSplit: in.split.tensorSplitString(), TensorBuftOverrides: "none", UseMmap: in.mmap,
			NPrompt: in.nPrompt, NGen: in.nGen, E2E: in.e2e,
			TestTime: time.Now().UTC().Format(time.RFC3339),
		}
		test := bench.Test{
			NPrompt: in.nPrompt, NGen: in.nGen, E2E: in.e2e, Parallel: in.parallel,
			Batch: in.nBatch, UBatch: in.nUBatch, Threads: in.threads, TypeK: in.typeK, TypeV: in.typeV, FlashAttn: in.fa,
			Sampling: []llama.SamplerOption{llama.WithTemperature(opts.Temp)},
		}
		if in.spec {
			sp := opts.Spec.speculation()
			test.Spec, test.Draft = &sp, opts.Spec.draft
			r.Spec = opts.Spec.describe()
		}
		if in.e2e && proj != nil {
			test.Projector, test.Images = proj, images
			r.NImages = len(images)
		}
		if err := bench.Run(ctx, model, test, bench.RunOptions{
			Reps: opts.Reps, Native: opts.Native, NoWarmup: opts.NoWarmup,
			Status: func(format string, args ...any) {
				progress.Update("%s: %s", label, fmt.Sprintf(format, args...))
			},
		}, &r); err != nil {
			return fmt.Errorf("%s %s: %w", in.model, bench.TestName(in.nPrompt, in.nGen, in.e2e), err)
		}
		if in.parallel > 1 {
			r.NParallel = in.parallel
		}
		r.LoadNS, r.PeakRSS = loadNS, bench.PeakRSS()
		r.Finish()
		progress.Clear()
		if err := printer.Print(&r); err != nil {
			return err
		}
		results = append(results, r)
	}
	if opts.Plot != "" {
		if err := bench.PlotFile(opts.Plot, results); err != nil {
			return err
		}
	}
	return nil
}
