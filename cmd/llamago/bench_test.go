package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/llamago/llamago/bench"
	"github.com/llamago/llamago/llama"
)

func parseBench(t *testing.T, args ...string) (*benchOptions, error) {
	t.Helper()
	var got *benchOptions
	cmd := newBenchCmd(&iostreams{}, func(o *benchOptions) error { got = o; return nil })
	code, err := parseFlags(t, cmd, append([]string{"bench"}, args...)...)
	if err != nil {
		if code != exitUsage {
			t.Errorf("exit code %d for %v, want %d", code, err, exitUsage)
		}
		if got != nil {
			t.Error("runF was called despite the error")
		}
		return nil, err
	}
	return got, nil
}

func TestBenchFlags(t *testing.T) {
	nt := llama.DefaultThreads()
	auto, on, off := llama.FlashAttentionAuto, llama.FlashAttentionOn, llama.FlashAttentionOff
	f16, q8 := llama.CacheF16, llama.CacheQ8_0
	type parsed struct {
		models                      []string
		nPrompt, nGen               []int
		pg, e2e                     [][2]int
		threads, batch, ubatch, ngl []int
		fa                          []llama.FlashAttention
		typeK, typeV                []llama.CacheType
		mmap                        []bool
		reps                        int
		output                      string
		native                      bool
		instances                   int
		params                      []string
	}
	get := func(o *benchOptions) parsed {
		return parsed{o.models, o.nPrompt, o.nGen, o.pg, o.e2e, o.threads, o.batch, o.ubatch, o.ngl, o.fa,
			o.typeK, o.typeV, o.mmap, o.Reps, o.Output, o.Native, len(o.instances()), o.markdownParams}
	}
	defaults := parsed{
		models: []string{"m.gguf"}, nPrompt: []int{512}, nGen: []int{128}, threads: []int{nt},
		batch: []int{2048}, ubatch: []int{512}, ngl: []int{99}, fa: []llama.FlashAttention{off},
		typeK: []llama.CacheType{f16}, typeV: []llama.CacheType{f16}, mmap: []bool{true}, reps: 5, output: "md",
		instances: 2, params: []string{"n_threads"},
	}
	tests := []struct {
		name    string
		args    []string
		want    func(p *parsed) // changes to defaults
		wantErr string
	}{
		{name: "defaults", args: []string{"-m", "m.gguf"}, want: func(p *parsed) {}},
		{name: "multi-letter short flags", args: []string{
			"-m", "a.gguf,b.gguf", "-p", "16,32", "-n", "8", "-pg", "16,8", "-t", "1,2", "-b", "64", "-ub", "8",
			"-ngl", "0", "-fa", "on,off", "-ctk", "q8_0", "-ctv", "f16", "-mmp", "0,1", "-r", "2", "-o", "json", "--native",
		}, want: func(p *parsed) {
			p.models, p.nPrompt, p.nGen, p.pg, p.threads = []string{"a.gguf", "b.gguf"}, []int{16, 32}, []int{8}, [][2]int{{16, 8}}, []int{1, 2}
			p.batch, p.ubatch, p.ngl, p.fa = []int{64}, []int{8}, []int{0}, []llama.FlashAttention{on, off}
			p.typeK, p.mmap, p.reps, p.output, p.native = []llama.CacheType{q8}, []bool{false, true}, 2, "json", true
			// 2 models × 2 mmap × 2 fa × 2 threads × (2 pp + 1 tg + 1 pg)
			p.instances = 2 * 2 * 2 * 2 * 4
			p.params = []string{"n_threads", "n_batch", "n_ubatch", "type_k", "flash_attn", "use_mmap"}
		}},
		{name: "long forms", args: []string{
			"--model", "a.gguf", "--model", "b.gguf", "--n-prompt", "1-4", "--n-gen", "0", "--prompt-gen", "4,2,8,4",
			"--threads", "1", "--batch-size", "8-32*2", "--ubatch-size", "4", "--n-gpu-layers", "-1", "--flash-attn", "auto",
			"--cache-type-k", "q8_0", "--cache-type-v", "q8_0", "--mmap", "1", "--repetitions", "3", "--output", "csv",
		}, want: func(p *parsed) {
			p.models, p.nPrompt, p.nGen, p.pg = []string{"a.gguf", "b.gguf"}, []int{1, 2, 3, 4}, []int{0}, [][2]int{{4, 2}, {8, 4}}
			p.threads, p.batch, p.ubatch, p.ngl = []int{1}, []int{8, 16, 32}, []int{4}, []int{-1}
			p.typeK, p.typeV, p.reps, p.output = []llama.CacheType{q8}, []llama.CacheType{q8}, 3, "csv"
			p.instances = 2 * 3 * (4 + 2) // tg0 is no test
			p.fa = []llama.FlashAttention{auto}
			p.params = []string{"n_threads", "n_batch", "n_ubatch", "type_k", "type_v", "flash_attn"}
			if nt == 1 {
				p.params = []string{"n_threads", "n_batch", "n_ubatch", "type_k", "type_v"}
			}
		}},
		{name: "attached values and repeats", args: []string{"-m=m.gguf", "-pg=4,2", "-mmp=0", "-fa=1", "-p", "0-10+5", "-p", "64", "--e2e", "8,4", "-ngl=5"}, want: func(p *parsed) {
			p.pg, p.mmap, p.fa, p.nPrompt, p.e2e, p.ngl = [][2]int{{4, 2}}, []bool{false}, []llama.FlashAttention{on}, []int{0, 5, 10, 64}, [][2]int{{8, 4}}, []int{5}
			p.instances = 3 + 1 + 1 + 1
			p.params = []string{"n_threads", "flash_attn", "use_mmap"}
		}},
		{name: "only e2e", args: []string{"-m", "m.gguf", "-p", "0", "-n", "0", "--e2e", "16,8"}, want: func(p *parsed) {
			p.nPrompt, p.nGen, p.e2e, p.instances = []int{0}, []int{0}, [][2]int{{16, 8}}, 1
		}},

		{name: "no model", args: []string{"-p", "16"}, wantErr: "--model is required"},
		{name: "argument", args: []string{"-m", "m", "extra"}, wantErr: `unexpected argument "extra"`},
		{name: "zero repetitions", args: []string{"-m", "m", "-r", "0"}, wantErr: "--repetitions"},
		{name: "unknown output", args: []string{"-m", "m", "-o", "sql"}, wantErr: "--output must be one of md, csv, json, jsonl, none"},
		{name: "negative prompt", args: []string{"-m", "m", "-p", "-1"}, wantErr: "--n-prompt: -1 is below 0"},
		{name: "not a number", args: []string{"-m", "m", "-n", "many"}, wantErr: `--n-gen: "many" is not a number`},
		{name: "empty range", args: []string{"-m", "m", "-p", "8-4"}, wantErr: "empty range"},
		{name: "range that does not advance", args: []string{"-m", "m", "-p", "0-8*2"}, wantErr: "does not advance"},
		{name: "zero threads", args: []string{"-m", "m", "-t", "0"}, wantErr: "--threads: 0 is below 1"},
		{name: "ngl below -1", args: []string{"-m", "m", "-ngl", "-2"}, wantErr: "--n-gpu-layers: -2 is below -1"},
		{name: "odd pair", args: []string{"-m", "m", "-pg", "512"}, wantErr: `--prompt-gen: "512" is not a pair`},
		{name: "e2e without prompt", args: []string{"-m", "m", "--e2e", "0,8"}, wantErr: "--e2e"},
		{name: "parallel with native", args: []string{"-m", "m", "--parallel", "1,4", "--native"}, wantErr: "--native measures one sequence"},
		{name: "zero parallel", args: []string{"-m", "m", "--e2e", "8,8", "--parallel", "0"}, wantErr: "--parallel: 0 is below 1"},
		{name: "bad flash-attn", args: []string{"-m", "m", "-fa", "maybe"}, wantErr: `--flash-attn must be on, off or auto (or 1, 0, -1), not "maybe"`},
		{name: "bad cache type", args: []string{"-m", "m", "-ctk", "q9_0"}, wantErr: `--cache-type-k: unknown cache type "q9_0"`},
		{name: "bad mmap", args: []string{"-m", "m", "-mmp", "2"}, wantErr: `--mmap: "2" is not 1 or 0`},
		{name: "quantized V turns the default flash attention on", args: []string{"-m", "m.gguf", "-ctv", "q8_0"}, want: func(p *parsed) {
			p.typeV, p.fa = []llama.CacheType{q8}, []llama.FlashAttention{on}
			p.params = append(p.params, "type_v", "flash_attn")
		}},
		{name: "quantized V without flash attention", args: []string{"-m", "m", "-fa", "on,off", "-ctv", "q8_0"}, wantErr: "needs flash attention"},
		{name: "plot format", args: []string{"-m", "m", "--plot", "x.pdf"}, wantErr: "--plot"},
		{name: "nothing to run", args: []string{"-m", "m", "-p", "0", "-n", "0"}, wantErr: "no test to run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseBench(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults
			tt.want(&want)
			if got := get(o); !reflect.DeepEqual(got, want) {
				t.Errorf("options\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestBenchInstancesOrder(t *testing.T) {
	o, err := parseBench(t, "-m", "a,b", "-p", "16", "-n", "8", "-pg", "16,8", "--e2e", "4,2", "-t", "1,2")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range o.instances() {
		got = append(got, in.model+" t"+string(rune('0'+in.threads))+" "+bench.TestName(in.nPrompt, in.nGen, in.e2e))
	}
	// As llama-bench: model parameters outermost, then the context ones,
	// then the tests of each combination.
	want := []string{
		"a t1 pp16", "a t1 tg8", "a t1 pp16+tg8", "a t1 e2e4+2",
		"a t2 pp16", "a t2 tg8", "a t2 pp16+tg8", "a t2 e2e4+2",
		"b t1 pp16", "b t1 tg8", "b t1 pp16+tg8", "b t1 e2e4+2",
		"b t2 pp16", "b t2 tg8", "b t2 pp16+tg8", "b t2 e2e4+2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("instances\n got %q\nwant %q", got, want)
	}
}

func TestBenchModelDirectory(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"small-Q4_0.gguf": 10, "big-F16.gguf": 100, "mid-Q8_0.GGUF": 50,
		"notes.txt": 1000, "split-00002-of-00002.gguf": 1000, "split-00001-of-00002.gguf": 20} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.gguf"), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := parseBench(t, "-m", dir+",x.gguf")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{"big-F16.gguf", "mid-Q8_0.GGUF", "split-00001-of-00002.gguf", "small-Q4_0.gguf"} {
		want = append(want, filepath.Join(dir, n))
	}
	want = append(want, "x.gguf")
	if !slices.Equal(o.models, want) {
		t.Errorf("models = %q, want %q (largest first)", o.models, want)
	}
	empty := t.TempDir()
	if _, err := parseBench(t, "-m", empty); err == nil || !strings.Contains(err.Error(), "no .gguf files") {
		t.Errorf("empty directory: error %v", err)
	}
}

func TestNormalizeBenchArgs(t *testing.T) {
	root := newRootCmd(&iostreams{})
	in := []string{"bench", "-pg", "512,128", "-mmp", "0", "-ngl", "99", "-ub", "256", "-fa", "1", "-ctk", "q8_0", "-ctv=q8_0", "-pg=1,2", "-p", "-pg"}
	want := []string{"bench", "--prompt-gen", "512,128", "--mmap", "0", "--n-gpu-layers", "99", "--ubatch-size", "256",
		"--flash-attn", "1", "--cache-type-k", "q8_0", "--cache-type-v=q8_0", "--prompt-gen=1,2", "-p", "-pg"}
	if got := normalizeArgs(root, in); !reflect.DeepEqual(got, want) {
		t.Errorf("normalizeArgs\n got %q\nwant %q", got, want)
	}
}

// benchFields are llama-bench's fields every result must carry.
var benchFields = []string{
	"build_commit", "model_filename", "model_type", "model_size", "model_n_params", "n_batch", "n_ubatch",
	"n_threads", "type_k", "type_v", "n_gpu_layers", "flash_attn", "use_mmap", "n_prompt", "n_gen",
	"avg_ns", "stddev_ns", "avg_ts", "stddev_ts",
}

// TestBenchRun runs real benchmarks of stories260K, small ones, in every
// output format, and checks that the output parses and carries the fields.
func TestBenchRun(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	base := []string{"bench", "-m", stories, "-p", "16", "-n", "8", "-r", "2", "-t", "1"}
	run := func(t *testing.T, args ...string) (string, string) {
		t.Helper()
		stdout, stderr, code := cli(t, "", append(slices.Clone(base), args...)...)
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		return stdout, stderr
	}
	checkObjects := func(t *testing.T, objs []map[string]any, tests ...string) {
		t.Helper()
		if len(objs) != len(tests) {
			t.Fatalf("%d results, want %d", len(objs), len(tests))
		}
		for i, o := range objs {
			for _, f := range append(benchFields, "samples_ns", "samples_ts", "test", "load_ns", "peak_rss_bytes") {
				if _, ok := o[f]; !ok {
					t.Errorf("result %d has no %s", i, f)
				}
			}
			if o["test"] != tests[i] || o["model_filename"] != stories || o["n_threads"] != 1.0 || o["use_mmap"] != true {
				t.Errorf("result %d: test %v, model %v, threads %v, mmap %v", i, o["test"], o["model_filename"], o["n_threads"], o["use_mmap"])
			}
			if ts, _ := o["samples_ts"].([]any); len(ts) != 2 || o["avg_ts"].(float64) <= 0 || o["peak_rss_bytes"].(float64) <= 0 {
				t.Errorf("result %d: samples_ts %v, avg_ts %v, peak RSS %v", i, o["samples_ts"], o["avg_ts"], o["peak_rss_bytes"])
			}
		}
	}

	t.Run("md", func(t *testing.T) {
		out, _ := run(t)
		lines := strings.Split(out, "\n")
		if len(lines) < 4 {
			t.Fatalf("output %q", out)
		}
		var head []string
		for _, c := range strings.Split(strings.Trim(lines[0], "|"), "|") {
			head = append(head, strings.TrimSpace(c))
		}
		if want := []string{"model", "size", "params", "backend", "threads", "test", "t/s"}; !slices.Equal(head, want) {
			t.Errorf("header %q, want columns %q", lines[0], want)
		}
		for i, test := range []string{"pp16", "tg8"} {
			if row := lines[2+i]; !strings.Contains(row, "| llama ?B all F32 (guessed)") || !strings.Contains(row, " "+test+" |") || !strings.Contains(row, " ± ") {
				t.Errorf("row %d = %q", i, row)
			}
		}
		if !strings.Contains(out, "\nbuild: "+llamaCppCommit) || !strings.Contains(out, "| stories260K ") {
			t.Errorf("footer missing:\n%s", out)
		}
	})
	t.Run("csv", func(t *testing.T) {
		out, _ := run(t, "-o", "csv")
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil || len(recs) != 3 {
			t.Fatalf("CSV: %v, %d records\n%s", err, len(recs), out)
		}
		var objs []map[string]any
		for _, rec := range recs[1:] {
			o := map[string]any{}
			for i, h := range recs[0] {
				o[h] = rec[i]
			}
			objs = append(objs, o)
		}
		for i, want := range []string{"pp16", "tg8"} {
			for _, f := range benchFields {
				if objs[i][f] == "" || objs[i][f] == nil {
					t.Errorf("CSV row %d: %s is empty", i, f)
				}
			}
			if objs[i]["test"] != want || objs[i]["use_mmap"] != "1" || objs[i]["n_threads"] != "1" {
				t.Errorf("CSV row %d = %v", i, objs[i])
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out, _ := run(t, "-o", "json", "-pg", "16,8")
		var objs []map[string]any
		if err := json.Unmarshal([]byte(out), &objs); err != nil {
			t.Fatalf("JSON: %v\n%s", err, out)
		}
		checkObjects(t, objs, "pp16", "tg8", "pp16+tg8")
	})
	t.Run("jsonl", func(t *testing.T) {
		out, _ := run(t, "-o", "jsonl")
		var objs []map[string]any
		for l := range strings.Lines(out) {
			var o map[string]any
			if err := json.Unmarshal([]byte(l), &o); err != nil {
				t.Fatalf("JSONL: %v\n%s", err, out)
			}
			objs = append(objs, o)
		}
		checkObjects(t, objs, "pp16", "tg8")
	})
	t.Run("native", func(t *testing.T) {
		out, _ := run(t, "-o", "jsonl", "--native")
		rs, err := bench.ReadResults(strings.NewReader(out))
		if err != nil || len(rs) != 2 {
			t.Fatalf("%d results, %v", len(rs), err)
		}
		for _, r := range rs {
			if r.GoCRatio <= 0 || r.NativeAvgTS <= 0 || len(r.NativeSamplesNS) != 2 || len(r.SamplesNS) != 2 {
				t.Errorf("%s: Go/C %v, C %v t/s, %d C samples, %d Go samples", r.Test, r.GoCRatio, r.NativeAvgTS, len(r.NativeSamplesNS), len(r.SamplesNS))
			}
			t.Logf("%s: Go %.0f t/s, C %.0f t/s, Go/C %.3f", r.Test, r.AvgTS, r.NativeAvgTS, r.GoCRatio)
		}
		md, _ := run(t, "--native")
		if !strings.Contains(md, " C t/s |") || !strings.Contains(md, " Go/C |") {
			t.Errorf("markdown lacks the native columns:\n%s", md)
		}
	})
	t.Run("e2e", func(t *testing.T) {
		out, stderr, code := cli(t, "", "bench", "-m", stories, "-p", "0", "-n", "0", "--e2e", "16,8", "-r", "2", "-t", "1", "-o", "jsonl")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		rs, err := bench.ReadResults(strings.NewReader(out))
		if err != nil || len(rs) != 1 {
			t.Fatalf("%d results, %v", len(rs), err)
		}
		r := rs[0]
		if r.Test != "e2e16+8" || !r.E2E || len(r.TTFTSamplesNS) != 2 || r.TTFTAvgNS == 0 ||
			r.ITLP50NS == 0 || r.ITLP95NS < r.ITLP50NS || r.ITLP99NS < r.ITLP95NS || r.AvgTS <= 0 {
			t.Errorf("e2e result %+v", r)
		}
	})
	t.Run("e2e parallel", func(t *testing.T) {
		out, stderr, code := cli(t, "", "bench", "-m", stories, "-p", "0", "-n", "0", "--e2e", "16,8", "--parallel", "1,3", "-r", "2", "-t", "1", "-o", "jsonl")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		rs, err := bench.ReadResults(strings.NewReader(out))
		if err != nil || len(rs) != 2 {
			t.Fatalf("%d results, %v", len(rs), err)
		}
		one, three := rs[0], rs[1]
		if one.Test != "e2e16+8" || one.NParallel != 0 || three.Test != "e2e16+8x3" || three.NParallel != 3 {
			t.Errorf("tests %q (%d) and %q (%d)", one.Test, one.NParallel, three.Test, three.NParallel)
		}
		// Three generations a repetition: their TTFTs, and tokens/s over
		// all three.
		if len(three.TTFTSamplesNS) != 6 || len(three.SamplesNS) != 2 || three.ITLP50NS == 0 {
			t.Errorf("e2e x3 result %+v", three)
		}
		if want := 3 * 24 / (float64(three.SamplesNS[0]) / 1e9); math.Abs(three.SamplesTS[0]-want) > 1e-9*want {
			t.Errorf("x3 tokens/s %v, want %v", three.SamplesTS[0], want)
		}
	})
	t.Run("directory plot progress", func(t *testing.T) {
		dir := t.TempDir()
		b, err := os.ReadFile(stories)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"a.gguf", "b.gguf"} {
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		plot := filepath.Join(dir, "speed.svg")
		stdout, stderr, code := cli(t, "", "bench", "-m", dir, "-p", "8", "-n", "4", "-r", "1", "-t", "1", "-o", "jsonl", "--plot", plot, "--progress", "-mmp", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		rs, err := bench.ReadResults(strings.NewReader(stdout))
		if err != nil || len(rs) != 4 {
			t.Fatalf("%d results, %v", len(rs), err)
		}
		if rs[0].ModelLabel() != "a" || rs[2].ModelLabel() != "b" || rs[0].UseMmap || rs[0].LoadNS == 0 {
			t.Errorf("results %+v", rs)
		}
		if svg, err := os.ReadFile(plot); err != nil || !bytes.Contains(svg, []byte("<svg")) {
			t.Errorf("plot: %v", err)
		}
		for _, s := range []string{"1/4 a pp8: loading", "1/4 a pp8: go 1/1", "4/4 b tg4: warm-up"} {
			if !strings.Contains(stderr, s) {
				t.Errorf("progress lacks %q:\n%s", s, stderr)
			}
		}
	})
}

func TestBenchErrors(t *testing.T) {
	stdout, stderr, code := cli(t, "", "bench", "-m", filepath.Join(t.TempDir(), "missing.gguf"), "-o", "json")
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	oneLine(t, stderr)
	if !strings.Contains(stderr, "missing.gguf") {
		t.Errorf("stderr = %q", stderr)
	}
	var objs []any
	if err := json.Unmarshal([]byte(stdout), &objs); err != nil || len(objs) != 0 {
		t.Errorf("stdout after a failure is not an empty JSON array: %q", stdout)
	}

	_, stderr, code = cli(t, "", "bench", "-m", "m.gguf", "-o", "xml")
	if code != exitUsage || !strings.Contains(stderr, "--output") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, code = cliContext(t, ctx, "", "bench", "-m", modelPath(t, "stories260K.gguf"), "-p", "8", "-n", "0")
	if code != exitInterrupt {
		t.Errorf("cancelled: exit %d, want %d", code, exitInterrupt)
	}
}
