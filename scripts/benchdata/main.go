// Command benchdata regenerates docs/benchmarks.md; `make bench` runs it.
//
// It synthesizes the benchmark models once into a cache directory (F16
// weights of the llama-60m and tinyllama-1.1b shapes with llama.cpp's SPM
// vocabulary, quantized to Q8_0, Q4_K_M and Q4_0), runs `llamago bench`
// over them and over stories260K, measures the memory bandwidth, and
// rewrites the generated sections of the document (between
// "<!-- bench:begin NAME -->" and "<!-- bench:end NAME -->"), its plot and
// the raw results next to it. The prose around the sections is kept.
//
//	go run ./scripts/benchdata -bin bin/llamago -dir ~/.cache/llamago/bench
//
// Build it with the cgo environment (scripts/cgo-env.sh): it quantizes
// with package llama.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/llamago/llamago/bench"
	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

var (
	binFlag    = flag.String("bin", "bin/llamago", "the llamago binary")
	dirFlag    = flag.String("dir", defaultDir(), "cache directory of the synthetic models and raw results ($BENCH_DIR)")
	modelsFlag = flag.String("models", "../shared/models", "directory of stories260K.gguf and vocab/ggml-vocab-llama-spm.gguf")
	docFlag    = flag.String("doc", "docs/benchmarks.md", "the document whose generated sections are rewritten")
	quickFlag  = flag.Bool("quick", false, "a short run over llama-60m only, to check the pipeline (does not write -doc)")
	prepFlag   = flag.Bool("prepare", false, "only synthesize and quantize the models")
	renderFlag = flag.Bool("render", false, "rewrite -doc from the results of the last run in -dir, measuring nothing")
	cmakeFlag  = flag.String("cmake", "", "instead: compare -bin with this llamago, linked with llama.cpp built by ggml's CMake (make bench-cmake), and rewrite the document's cmake section")
	baseFlag   = flag.String("baseline", "", "also compare -bin with this llamago-baseline (scripts/baseline), process by process, in the document's baseline section")
	baseOnly   = flag.Bool("baseline-only", false, "with -baseline: only the comparison")
)

func defaultDir() string {
	if d := os.Getenv("BENCH_DIR"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "llamago", "bench")
}

// The quantizations of each synthetic shape, largest first.
var (
	shapes = []string{"llama-60m", "tinyllama-1.1b"}
	quants = []string{"F16", "Q8_0", "Q4_K_M", "Q4_0"}
)

// benchRun is one `llamago bench` command line.
type benchRun struct {
	name    string
	args    []string // after "bench"; {{DIR}} and {{MODELS}} are substituted
	binding bool     // measures the Go/C ratio only; not in the summary and plot
}

// runs is the plan. The 1.1B models are the slow part on two cores (about
// eight minutes when the machine is quiet): three repetitions.
//
// The Go/C ratios come from runs of their own, with one thread: with two,
// ggml's barriers between threads on a shared two-core machine scatter the
// times by tens of percent from one repetition to the next, which buries
// a binding cost of a percent or less. Many repetitions narrow the
// confidence interval where they are cheap.
func runs(quick bool) []benchRun {
	if quick {
		return []benchRun{
			{"stories260K", strings.Fields("-m {{MODELS}}/stories260K.gguf -p 64 -n 16 --e2e 64,16 -r 3"), false},
			{"llama-60m", strings.Fields("-m {{DIR}}/llama-60m -p 64 -n 16 --e2e 64,16 -r 2"), false},
			{"binding-stories260K", strings.Fields("-m {{MODELS}}/stories260K.gguf -t 1 -p 64 -n 16 -r 5 --native"), true},
		}
	}
	q := func(shape string, quants ...string) string {
		var fs []string
		for _, q := range quants {
			fs = append(fs, "{{DIR}}/"+shape+"/"+shape+"-"+q+".gguf")
		}
		return strings.Join(fs, ",")
	}
	return []benchRun{
		{"stories260K", strings.Fields("-m {{MODELS}}/stories260K.gguf -p 512 -n 128 --e2e 512,128 -r 10"), false},
		{"llama-60m", strings.Fields("-m {{DIR}}/llama-60m -p 512 -n 128 --e2e 512,128 -r 5"), false},
		{"tinyllama-1.1b", strings.Fields("-m {{DIR}}/tinyllama-1.1b -p 512 -n 128 --e2e 512,128 -r 3"), false},
		{"binding-stories260K", strings.Fields("-m {{MODELS}}/stories260K.gguf -t 1 -p 512 -n 128 -r 100 --native"), true},
		{"binding-llama-60m", strings.Fields("-m " + q("llama-60m", quants...) + " -t 1 -p 512 -n 128 -r 20 --native"), true},
		{"binding-tinyllama-1.1b", strings.Fields("-m " + q("tinyllama-1.1b", "Q8_0", "Q4_0") + " -t 1 -p 512 -n 128 -r 4 --native"), true},
	}
}

func main() {
	flag.Parse()
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "benchdata:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchdata: "+format+"\n", args...)
}

// extras is what a run measured besides `llamago bench`, kept in the
// results directory with the bench output so that -render can rewrite the
// document without measuring again.
type extras struct {
	Start      time.Time
	Took       time.Duration
	Served     []serverResult
	Bandwidths []bench.Bandwidth
}

func run(ctx context.Context) error {
	plan := runs(*quickFlag)
	resDir := filepath.Join(*dirFlag, "results")
	if *cmakeFlag != "" {
		return compare(ctx, cmakeComparison(*cmakeFlag), resDir)
	}
	if *baseFlag != "" {
		if err := compare(ctx, baselineComparison(*baseFlag), resDir); err != nil || *baseOnly {
			return err
		}
	}
	perRun := map[string][]bench.Result{}
	var ex extras
	if *renderFlag {
		for _, r := range plan {
			f, err := os.Open(filepath.Join(resDir, r.name+".jsonl"))
			if err != nil {
				return err
			}
			rs, err := bench.ReadResults(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			perRun[r.name] = rs
		}
		b, err := os.ReadFile(filepath.Join(resDir, "extras.json"))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &ex); err != nil {
			return err
		}
	} else {
		var err error
		if ex, err = measure(ctx, plan, resDir, perRun); err != nil || *prepFlag {
			return err
		}
	}

	var all, binding []bench.Result
	for _, r := range plan {
		if r.binding {
			binding = append(binding, perRun[r.name]...)
		} else {
			all = append(all, perRun[r.name]...)
		}
	}
	if *quickFlag {
		for _, s := range []string{summary(all, binding), native(binding), ceiling(all, ex.Bandwidths), serverTable(ex.Served)} {
			fmt.Println(s)
		}
		logf("quick run done in %s", ex.Took.Round(time.Second))
		return nil
	}

	docDir := filepath.Dir(*docFlag)
	base := strings.TrimSuffix(filepath.Base(*docFlag), ".md")
	plot := filepath.Join(docDir, base+".svg")
	if err := bench.PlotFile(plot, all); err != nil {
		return err
	}
	var raw bytes.Buffer
	p, _ := bench.NewPrinter("jsonl", &raw, bench.MarkdownOptions{})
	for _, rs := range [][]bench.Result{all, binding} {
		for i := range rs {
			p.Print(&rs[i])
		}
	}
	if err := os.WriteFile(filepath.Join(docDir, base+".jsonl"), raw.Bytes(), 0o644); err != nil {
		return err
	}

	shown := func(r benchRun) string {
		return "llamago bench " + strings.NewReplacer("{{DIR}}", "$BENCH_DIR", "{{MODELS}}", *modelsFlag).Replace(strings.Join(r.args, " "))
	}
	var tables strings.Builder
	var cmds []string
	for _, r := range plan {
		cmds = append(cmds, shown(r))
		fmt.Fprintf(&tables, "`%s`\n\n", shown(r))
		tables.WriteString(markdown(perRun[r.name], r.binding))
		tables.WriteString("\n")
	}
	sections := map[string]string{
		"machine":  machine(ex.Start, ex.Took),
		"commands": "```sh\n" + strings.Join(cmds, "\n") + "\n```\n",
		"summary":  summary(all, binding),
		"native":   native(binding),
		"ceiling":  ceiling(all, ex.Bandwidths),
		"tables":   tables.String(),
		"server":   serverTable(ex.Served),
	}
	if err := rewrite(*docFlag, sections); err != nil {
		return err
	}
	logf("wrote %s, %s", *docFlag, plot)
	return nil
}

// compare measures a comparison (unless -render) and rewrites its
// section of the document.
func compare(ctx context.Context, cmp comparison, resDir string) error {
	if !*renderFlag {
		if err := cmp.measure(ctx, resDir); err != nil {
			return err
		}
	}
	t, err := cmp.table(resDir)
	if err != nil {
		return err
	}
	if *quickFlag {
		fmt.Println(t)
		return nil
	}
	return rewrite(*docFlag, map[string]string{cmp.name: t})
}

// measure prepares the models, runs the plan, the server measurements and
// the bandwidth measurement, and saves everything in resDir.
func measure(ctx context.Context, plan []benchRun, resDir string, perRun map[string][]bench.Result) (extras, error) {
	ex := extras{Start: time.Now()}
	warnLoad()
	sh := shapes
	if *quickFlag {
		sh = shapes[:1]
	}
	for _, s := range sh {
		if err := prepare(ctx, s); err != nil {
			return ex, err
		}
	}
	if *prepFlag {
		return ex, nil
	}
	if err := os.MkdirAll(resDir, 0o755); err != nil {
		return ex, err
	}
	for _, r := range plan {
		args := []string{"bench"}
		for _, a := range r.args {
			a = strings.ReplaceAll(a, "{{DIR}}", *dirFlag)
			a = strings.ReplaceAll(a, "{{MODELS}}", *modelsFlag)
			args = append(args, a)
		}
		args = append(args, "-o", "jsonl")
		logf("%s", strings.Join(args, " "))
		t0 := time.Now()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, *binFlag, args...)
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			return ex, fmt.Errorf("%s: %w", r.name, err)
		}
		if err := os.WriteFile(filepath.Join(resDir, r.name+".jsonl"), out.Bytes(), 0o644); err != nil {
			return ex, err
		}
		rs, err := bench.ReadResults(&out)
		if err != nil {
			return ex, err
		}
		logf("%s: %d results in %s", r.name, len(rs), time.Since(t0).Round(time.Second))
		perRun[r.name] = rs
	}

	for _, c := range serverCases(*quickFlag) {
		c.Model = strings.NewReplacer("{{DIR}}", *dirFlag, "{{MODELS}}", *modelsFlag).Replace(c.Model)
		logf("llamago serve -m %s: 1 stream, then %d", c.Model, c.Streams)
		r, err := measureServer(ctx, *binFlag, c)
		if err != nil {
			return ex, fmt.Errorf("serve %s: %w", c.Model, err)
		}
		ex.Served = append(ex.Served, r)
	}

	logf("measuring the memory bandwidth")
	for _, t := range slices.Compact([]int{1, 2, llama.DefaultThreads()}) {
		ex.Bandwidths = append(ex.Bandwidths, bench.MeasureBandwidth(1<<30, t, 3))
	}
	ex.Took = time.Since(ex.Start)
	b, err := json.MarshalIndent(ex, "", "  ")
	if err != nil {
		return ex, err
	}
	return ex, os.WriteFile(filepath.Join(resDir, "extras.json"), b, 0o644)
}

// warnLoad warns when other work is running: with every core busy, the
// spinning barriers of ggml's thread pool make multi-threaded decoding
// orders of magnitude slower, and the run both long and meaningless.
func warnLoad() {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	var load float64
	if _, err := fmt.Sscan(string(b), &load); err == nil && load > 0.5*float64(runtime.NumCPU()) {
		logf("warning: load average %.1f on %d CPUs: other work is running, the timings will be noisy (and slow)", load, runtime.NumCPU())
	}
}

// prepare synthesizes the F16 model of a shape and quantizes it, skipping
// the files that exist.
func prepare(ctx context.Context, shape string) error {
	dir := filepath.Join(*dirFlag, shape)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f16 := filepath.Join(dir, shape+"-F16.gguf")
	if _, err := os.Stat(f16); err != nil {
		s, ok := models.LookupShape(shape)
		if !ok {
			return fmt.Errorf("no shape %s", shape)
		}
		logf("synthesizing %s", f16)
		tmp := f16 + ".partial"
		if err := models.SynthesizeFile(tmp, models.SynthOptions{
			Shape: s, Vocab: filepath.Join(*modelsFlag, "vocab", "ggml-vocab-llama-spm.gguf"),
			Type: gguf.TensorF16, Seed: 1,
		}); err != nil {
			return err
		}
		if err := os.Rename(tmp, f16); err != nil {
			return err
		}
	}
	for _, q := range quants[1:] {
		out := filepath.Join(dir, shape+"-"+q+".gguf")
		if _, err := os.Stat(out); err == nil {
			continue
		}
		ft, err := llama.ParseFileType(q)
		if err != nil {
			return err
		}
		logf("quantizing %s", out)
		if err := llama.Quantize(ctx, f16, out, ft); err != nil {
			return err
		}
	}
	return nil
}

// markdown renders results as `llamago bench` does.
func markdown(rs []bench.Result, native bool) string {
	var b strings.Builder
	p, _ := bench.NewPrinter("md", &b, bench.MarkdownOptions{Params: []string{"n_threads"}, Native: native, E2E: !native})
	p.Header()
	for i := range rs {
		p.Print(&rs[i])
	}
	p.Footer()
	return b.String()
}

type modelRow struct {
	label string
	pp    *bench.Result
	tg    *bench.Result
	e2e   *bench.Result
	any   *bench.Result
}

// byModel groups the results of each model file, in order.
func byModel(rs []bench.Result) []*modelRow {
	var rows []*modelRow
	idx := map[string]*modelRow{}
	for i := range rs {
		r := &rs[i]
		row := idx[r.ModelLabel()]
		if row == nil {
			row = &modelRow{label: r.ModelLabel(), any: r}
			idx[row.label] = row
			rows = append(rows, row)
		}
		switch {
		case r.E2E:
			row.e2e = r
		case r.NGen == 0:
			row.pp = r
		case r.NPrompt == 0:
			row.tg = r
		}
		if r.PeakRSS > row.any.PeakRSS {
			c := *row.any
			c.PeakRSS = r.PeakRSS
			row.any = &c
		}
	}
	return rows
}

func ts(r *bench.Result) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%.2f ± %.2f", r.AvgTS, r.StddevTS)
}

func ratio(r *bench.Result) string {
	if r == nil || r.GoCRatio == 0 {
		return ""
	}
	return fmt.Sprintf("%.3f", r.GoCRatio)
}

// summary has a row per model file of the main runs, with the Go/C ratios
// of the one-thread runs where there are some.
func summary(rs, binding []bench.Result) string {
	ratios := map[string]*modelRow{}
	for _, m := range byModel(binding) {
		ratios[m.label] = m
	}
	var b strings.Builder
	b.WriteString("| model file | size | params | pp t/s | tg t/s | Go/C pp (1 thread) | Go/C tg (1 thread) | e2e | TTFT ms | ITL p50 / p95 / p99 ms | load ms | peak RSS |\n")
	b.WriteString("| :-- | --: | --: | --: | --: | --: | --: | :-- | --: | --: | --: | --: |\n")
	for _, m := range byModel(rs) {
		e2e, ttft, itl := "", "", ""
		if m.e2e != nil {
			e2e = m.e2e.Test
			ttft = fmt.Sprintf("%.1f ± %.1f", float64(m.e2e.TTFTAvgNS)/1e6, float64(m.e2e.TTFTStddevNS)/1e6)
			itl = fmt.Sprintf("%.2f / %.2f / %.2f", float64(m.e2e.ITLP50NS)/1e6, float64(m.e2e.ITLP95NS)/1e6, float64(m.e2e.ITLP99NS)/1e6)
		}
		var rpp, rtg string
		if n := ratios[m.label]; n != nil {
			rpp, rtg = ratio(n.pp), ratio(n.tg)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %s |\n",
			m.label, bench.FormatBytes(m.any.ModelSize), bench.FormatParams(m.any.ModelNParams),
			ts(m.pp), ts(m.tg), rpp, rtg, e2e, ttft, itl, float64(m.any.LoadNS)/1e6, bench.FormatBytes(m.any.PeakRSS))
	}
	return b.String()
}

// native compares the Go/C ratios with the targets: tg at least 0.97 on
// stories260K and 0.99 on the larger models, pp at least 0.99. A target is
// met when the whole 95% confidence interval is above it, missed when the
// whole interval is below, and undecided by this run otherwise.
func native(rs []bench.Result) string {
	var b strings.Builder
	b.WriteString("| model file | test | reps | Go t/s | C t/s | Go/C | 95% interval | target | met |\n")
	b.WriteString("| :-- | :-- | --: | --: | --: | --: | :-: | --: | :-: |\n")
	for _, r := range rs {
		if r.GoCRatio == 0 {
			continue
		}
		target := 0.99
		if r.NPrompt == 0 && strings.HasPrefix(r.ModelLabel(), "stories") {
			target = 0.97
		}
		met := "undecided"
		switch {
		case r.GoCRatioLow >= target:
			met = "yes"
		case r.GoCRatioHigh < target:
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %.3f | %.3f–%.3f | %.2f | %s |\n", r.ModelLabel(), r.Test, len(r.SamplesNS),
			ts(&r), fmt.Sprintf("%.2f ± %.2f", r.NativeAvgTS, r.NativeStddevTS), r.GoCRatio, r.GoCRatioLow, r.GoCRatioHigh, target, met)
	}
	return b.String()
}

// ceiling computes the decode ceiling of each model: generating a token
// reads every weight once, so tokens/s cannot exceed the memory bandwidth
// divided by the size of the weights.
func ceiling(rs []bench.Result, bws []bench.Bandwidth) string {
	var b strings.Builder
	b.WriteString("| threads | read GB/s | copy GB/s |\n| --: | --: | --: |\n")
	for _, bw := range bws {
		fmt.Fprintf(&b, "| %d | %.1f | %.1f |\n", bw.Threads, bw.Read/1e9, bw.Copy/1e9)
	}
	b.WriteString("\n| model file | weights (bytes/token) | ceiling t/s | measured tg t/s | of the ceiling |\n")
	b.WriteString("| :-- | --: | --: | --: | --: |\n")
	for _, m := range byModel(rs) {
		if m.tg == nil {
			continue
		}
		var bw bench.Bandwidth
		for _, x := range bws {
			if x.Threads == m.tg.NThreads {
				bw = x
			}
		}
		if bw.Read == 0 {
			continue
		}
		c := bw.Read / float64(m.tg.ModelSize)
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.2f | %.0f%% |\n", m.label, bench.FormatBytes(m.tg.ModelSize), c, m.tg.AvgTS, 100*m.tg.AvgTS/c)
	}
	return b.String()
}

func machine(start time.Time, took time.Duration) string {
	cpu, cores := "unknown", map[string]bool{}
	var phys string
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			k, v, _ := strings.Cut(s.Text(), ":")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch k {
			case "model name":
				cpu = v
			case "physical id":
				phys = v
			case "core id":
				cores[phys+"/"+v] = true
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb uint64
				fmt.Sscan(strings.TrimSpace(v), &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	var b strings.Builder
	fmt.Fprintf(&b, "- CPU: %s, %d logical CPUs (%d physical cores), %s RAM\n", cpu, runtime.NumCPU(), len(cores), mem)
	fmt.Fprintf(&b, "- OS: %s %s %s; %s\n", runtime.GOOS, runtime.GOARCH, strings.TrimSpace(string(kernel)), runtime.Version())
	fmt.Fprintf(&b, "- llama.cpp: ec98e2002 (vendored in github.com/ollama/ollama v0.17.4), `-O3 -march=native`, CPU backend only\n")
	fmt.Fprintf(&b, "- llama.cpp system info: `%s`\n", llama.SystemInfo())
	fmt.Fprintf(&b, "- threads: %d (llama.DefaultThreads)\n", llama.DefaultThreads())
	fmt.Fprintf(&b, "- run: %s, `make bench` took %s\n", start.UTC().Format("2006-01-02 15:04 MST"), took.Round(time.Second))
	return b.String()
}

// rewrite replaces the body of each "<!-- bench:begin NAME -->" ...
// "<!-- bench:end NAME -->" section of the document.
func rewrite(path string, sections map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(b)
	for name, body := range sections {
		begin, end := "<!-- bench:begin "+name+" -->", "<!-- bench:end "+name+" -->"
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			return fmt.Errorf("%s: no section %q (%s ... %s)", path, name, begin, end)
		}
		doc = doc[:i+len(begin)] + "\n" + strings.TrimRight(body, "\n") + "\n" + doc[j:]
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
