package bench

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// llamaBenchFields are the fields of llama-bench's CSV and JSON that
// results must carry, to be compared with llama-bench's.
var llamaBenchFields = []string{
	"build_commit", "model_filename", "model_type", "model_size", "model_n_params", "n_batch", "n_ubatch",
	"n_threads", "type_k", "type_v", "n_gpu_layers", "flash_attn", "use_mmap", "n_prompt", "n_gen",
	"test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts",
}

func sampleResults() []Result {
	base := Result{
		BuildCommit: "ec98e2002", CPUInfo: "AMD EPYC", Backends: "CPU", ModelFilename: "/m/llama-60m-Q4_0.gguf",
		ModelType: "llama ?B Q4_0", ModelSize: 40 << 20, ModelNParams: 60e6, NBatch: 2048, NUBatch: 512, NThreads: 2,
		CPUMask: "0x0", Poll: 50, TypeK: "f16", TypeV: "f16", NGPULayers: 99, SplitMode: "layer", FlashAttn: -1,
		TensorSplit: "0.00", TensorBuftOverrides: "none", UseMmap: true, TestTime: "2026-01-02T03:04:05Z",
		LoadNS: 12e6, PeakRSS: 100 << 20,
	}
	pp, tg, e2e := base, base, base
	pp.NPrompt, pp.SamplesNS, pp.NativeSamplesNS = 512, []uint64{1e9, 1e9}, []uint64{1e9, 1e9}
	tg.NGen, tg.SamplesNS = 128, []uint64{5e8, 5e8, 5e8}
	tg.ModelFilename, tg.ModelSize, tg.PeakRSS = "/m/tinyllama-1.1b-F16.gguf", 2<<30, 3<<30
	e2e.NPrompt, e2e.NGen, e2e.E2E, e2e.SamplesNS, e2e.TTFTSamplesNS = 16, 4, true, []uint64{1e8}, []uint64{5e7}
	e2e.AddITL(1e7, 2e7, 3e7)
	rs := []Result{pp, tg, e2e}
	for i := range rs {
		rs[i].Finish()
	}
	return rs
}

func render(t *testing.T, format string, rs []Result, md MarkdownOptions) string {
	t.Helper()
	var b bytes.Buffer
	p, err := NewPrinter(format, &b, md)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Header(); err != nil {
		t.Fatal(err)
	}
	for i := range rs {
		if err := p.Print(&rs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Footer(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCSV(t *testing.T) {
	rs := sampleResults()
	recs, err := csv.NewReader(strings.NewReader(render(t, "csv", rs, MarkdownOptions{}))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(rs) {
		t.Fatalf("%d records, want a header and %d rows", len(recs), len(rs))
	}
	head := recs[0]
	if !slices.Equal(head, Fields()) {
		t.Errorf("header = %v, want %v", head, Fields())
	}
	for _, f := range append(llamaBenchFields, "test", "load_ns", "peak_rss_bytes", "go_c_ratio", "ttft_avg_ns", "itl_p99_ns") {
		if !slices.Contains(head, f) {
			t.Errorf("CSV has no column %s", f)
		}
	}
	row := map[string]string{}
	for i, h := range head {
		row[h] = recs[1][i]
	}
	for k, want := range map[string]string{
		"model_filename": "/m/llama-60m-Q4_0.gguf", "n_prompt": "512", "n_gen": "0", "use_mmap": "1",
		"cpu_strict": "0", "flash_attn": "-1", "avg_ns": "1000000000", "avg_ts": "512.000000",
		"stddev_ts": "0.000000", "test": "pp512", "go_c_ratio": "1.000000", "ttft_avg_ns": "",
	} {
		if row[k] != want {
			t.Errorf("CSV %s = %q, want %q", k, row[k], want)
		}
	}
}

func TestJSONAndJSONL(t *testing.T) {
	rs := sampleResults()
	js := render(t, "json", rs, MarkdownOptions{})
	var objs []map[string]any
	if err := json.Unmarshal([]byte(js), &objs); err != nil {
		t.Fatalf("-o json does not parse: %v\n%s", err, js)
	}
	var lines []map[string]any
	for l := range strings.Lines(render(t, "jsonl", rs, MarkdownOptions{})) {
		var o map[string]any
		if err := json.Unmarshal([]byte(l), &o); err != nil {
			t.Fatalf("-o jsonl line does not parse: %v\n%s", err, l)
		}
		lines = append(lines, o)
	}
	for name, got := range map[string][]map[string]any{"json": objs, "jsonl": lines} {
		if len(got) != len(rs) {
			t.Fatalf("%s: %d objects, want %d", name, len(got), len(rs))
		}
		for _, f := range append(llamaBenchFields, "samples_ns", "samples_ts", "test", "load_ns", "peak_rss_bytes") {
			if _, ok := got[0][f]; !ok {
				t.Errorf("%s has no field %s", name, f)
			}
		}
		if got[0]["use_mmap"] != true || got[0]["n_prompt"] != 512.0 || got[0]["model_type"] != "llama ?B Q4_0" {
			t.Errorf("%s: use_mmap %v, n_prompt %v, model_type %v", name, got[0]["use_mmap"], got[0]["n_prompt"], got[0]["model_type"])
		}
		if ts, ok := got[1]["samples_ts"].([]any); !ok || len(ts) != 3 || ts[0] != 256.0 {
			t.Errorf("%s: samples_ts = %v, want three of 256", name, got[1]["samples_ts"])
		}
		if got[0]["go_c_ratio"] != 1.0 || got[0]["native_samples_ts"] == nil {
			t.Errorf("%s: native fields missing: %v", name, got[0])
		}
		if _, ok := got[1]["go_c_ratio"]; ok {
			t.Errorf("%s: go_c_ratio present without a native run", name)
		}
		if got[2]["e2e"] != true || got[2]["ttft_avg_ns"] != 5e7 || got[2]["itl_p50_ns"] != 2e7 {
			t.Errorf("%s: e2e fields = %v", name, got[2])
		}
	}

	// Both read back into the same results.
	for _, format := range []string{"json", "jsonl"} {
		back, err := ReadResults(strings.NewReader(render(t, format, rs, MarkdownOptions{})))
		if err != nil {
			t.Fatal(err)
		}
		want := sampleResults()
		for i := range want {
			want[i].itlNS = nil
		}
		if !reflect.DeepEqual(back, want) {
			t.Errorf("%s does not read back:\n got %+v\nwant %+v", format, back, want)
		}
	}
	if empty := render(t, "json", nil, MarkdownOptions{}); empty != "[\n]\n" {
		t.Errorf("empty JSON = %q", empty)
	}
	if rs, err := ReadResults(strings.NewReader("  \n")); err != nil || rs != nil {
		t.Errorf("ReadResults(blank) = %v, %v", rs, err)
	}
	if _, err := ReadResults(strings.NewReader("{")); err == nil {
		t.Error("ReadResults accepted broken JSON")
	}
}

func TestMarkdown(t *testing.T) {
	rs := sampleResults()
	md := render(t, "md", rs, MarkdownOptions{Params: []string{"n_threads", "flash_attn"}, Native: true, E2E: true, Build: "ec98e2002 (0)"})
	lines := strings.Split(md, "\n")
	cells := func(l string) []string {
		f := strings.Split(strings.Trim(l, "|"), "|")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		return f
	}
	head := cells(lines[0])
	want := []string{"model", "size", "params", "backend", "threads", "fa", "test", "t/s", "C t/s", "Go/C", "TTFT ms", "ITL p50/p95/p99 ms"}
	if !slices.Equal(head, want) {
		t.Fatalf("header = %q, want %q", head, want)
	}
	if !strings.HasPrefix(lines[1], "| ------------------------------ | ---------: | ---------: | ---------- | ------: |") {
		t.Errorf("rule = %q", lines[1])
	}
	rows := map[string][]string{}
	for _, l := range lines[2:5] {
		c := cells(l)
		if len(c) != len(head) {
			t.Fatalf("row %q has %d cells, want %d", l, len(c), len(head))
		}
		if utf8Len(l) != utf8Len(lines[0]) {
			t.Errorf("row %q is not as wide as the header", l)
		}
		rows[c[6]] = c
	}
	if r := rows["pp512"]; r == nil || r[0] != "llama ?B Q4_0" || r[1] != "40.00 MiB" || r[2] != "60.00 M" || r[3] != "CPU" ||
		r[4] != "2" || r[5] != "-1" || r[7] != "512.00 ± 0.00" || r[8] != "512.00 ± 0.00" || r[9] != "1.000 (1.000–1.000)" || r[10] != "" {
		t.Errorf("pp512 row = %q", r)
	}
	if r := rows["tg128"]; r == nil || r[1] != "2.00 GiB" || r[7] != "256.00 ± 0.00" || r[8] != "" {
		t.Errorf("tg128 row = %q", r)
	}
	if r := rows["e2e16+4"]; r == nil || r[10] != "50.00 ± 0.00" || r[11] != "20.00/29.00/29.80" {
		t.Errorf("e2e row = %q", r)
	}
	for _, s := range []string{"\nbuild: ec98e2002 (0)\n", "| llama-60m-Q4_0                 |    12.0 | 100.00 MiB |", "| tinyllama-1.1b-F16             |    12.0 |   3.00 GiB |"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func utf8Len(s string) int { return len([]rune(s)) }

func TestNewPrinterUnknown(t *testing.T) {
	if _, err := NewPrinter("sql", &bytes.Buffer{}, MarkdownOptions{}); err == nil {
		t.Error("NewPrinter(sql) succeeded")
	}
	if out := render(t, "none", sampleResults(), MarkdownOptions{}); out != "" {
		t.Errorf("-o none wrote %q", out)
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[uint64]string{0: "0.00 MiB", 1 << 20: "1.00 MiB", 1<<30 - 1: "1024.00 MiB", 1 << 30: "1.00 GiB", 2254857830: "2.10 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[uint64]string{292160: "0.29 M", 999999999: "1000.00 M", 1100048384: "1.10 B"} {
		if got := FormatParams(n); got != want {
			t.Errorf("FormatParams(%d) = %q, want %q", n, got, want)
		}
	}
}
