package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
)

// Result is one test of one parameter combination, with llama-bench's
// fields under llama-bench's names, so that its CSV and JSON can be
// compared with (and fed to the scripts written for) llama-bench's, then
// llamago's additions. Set the parameters and samples, then call Finish.
//
// A test is named as llama-bench names it: "pp512" for n_prompt 512 alone
// (prompt processing), "tg128" for n_gen 128 alone (generation, one token
// at a time), "pp512+tg128" for both in one repetition; llamago adds
// "e2e512+128", a generation with sampling through the high-level API, and
// a suffix "x4" for four sequences decoded at once (tg128x4: a token of
// each per batch; e2e512+128x4: four generations). Tokens per second are
// (n_prompt + n_gen) × sequences / time of a repetition.
type Result struct {
	BuildCommit         string    `json:"build_commit"`
	BuildNumber         int       `json:"build_number"`
	CPUInfo             string    `json:"cpu_info"`
	GPUInfo             string    `json:"gpu_info"`
	Backends            string    `json:"backends"`
	ModelFilename       string    `json:"model_filename"`
	ModelType           string    `json:"model_type"`
	ModelSize           uint64    `json:"model_size"`
	ModelNParams        uint64    `json:"model_n_params"`
	NBatch              int       `json:"n_batch"`
	NUBatch             int       `json:"n_ubatch"`
	NThreads            int       `json:"n_threads"`
	CPUMask             string    `json:"cpu_mask"`
	CPUStrict           bool      `json:"cpu_strict"`
	Poll                int       `json:"poll"`
	TypeK               string    `json:"type_k"`
	TypeV               string    `json:"type_v"`
	NGPULayers          int       `json:"n_gpu_layers"`
	SplitMode           string    `json:"split_mode"`
	MainGPU             int       `json:"main_gpu"`
	NoKVOffload         bool      `json:"no_kv_offload"`
	FlashAttn           int       `json:"flash_attn"` // -1 auto, 0 off, 1 on
	TensorSplit         string    `json:"tensor_split"`
	TensorBuftOverrides string    `json:"tensor_buft_overrides"`
	UseMmap             bool      `json:"use_mmap"`
	Embeddings          bool      `json:"embeddings"`
	NPrompt             int       `json:"n_prompt"`
	NGen                int       `json:"n_gen"`
	NDepth              int       `json:"n_depth"`
	TestTime            string    `json:"test_time"` // RFC 3339, UTC
	AvgNS               uint64    `json:"avg_ns"`
	StddevNS            uint64    `json:"stddev_ns"`
	AvgTS               float64   `json:"avg_ts"`
	StddevTS            float64   `json:"stddev_ts"`
	SamplesNS           []uint64  `json:"samples_ns"`
	SamplesTS           []float64 `json:"samples_ts"`

	// llamago's additions.

	Test string `json:"test"` // pp512, tg128, pp512+tg128, e2e512+128; x4 for 4 sequences
	E2E  bool   `json:"e2e"`  // an end-to-end generation with sampling
	// NParallel is the sequences decoded at once (0: one): a token of
	// each per batch, or the generations of an end-to-end test; tokens
	// per second count them all.
	NParallel int    `json:"n_parallel,omitempty"`
	LoadNS    uint64 `json:"load_ns"`        // loading the model
	PeakRSS   uint64 `json:"peak_rss_bytes"` // peak resident memory from the load to the end of this test

	// With --native: the same test run by the C loop, alternating with
	// the Go one, the ratio of the mean tokens/s (Go / C), and its 95%
	// confidence interval from the repetitions taken in pairs (RatioCI).
	NativeAvgNS     uint64    `json:"native_avg_ns,omitempty"`
	NativeStddevNS  uint64    `json:"native_stddev_ns,omitempty"`
	NativeAvgTS     float64   `json:"native_avg_ts,omitempty"`
	NativeStddevTS  float64   `json:"native_stddev_ts,omitempty"`
	NativeSamplesNS []uint64  `json:"native_samples_ns,omitempty"`
	NativeSamplesTS []float64 `json:"native_samples_ts,omitempty"`
	GoCRatio        float64   `json:"go_c_ratio,omitempty"`
	GoCRatioLow     float64   `json:"go_c_ratio_low,omitempty"`
	GoCRatioHigh    float64   `json:"go_c_ratio_high,omitempty"`

	// End-to-end tests: time to first token (prompt processing and the
	// first sampled token) per repetition, and the inter-token latency of
	// every later token, pooled over the repetitions.
	// With images (Test.Images): their count, and the time the
	// projector took to encode them, per generation.
	NImages              int      `json:"n_images,omitempty"`
	ImageEncodeAvgNS     uint64   `json:"image_encode_avg_ns,omitempty"`
	ImageEncodeSamplesNS []uint64 `json:"image_encode_samples_ns,omitempty"`

	TTFTAvgNS     uint64   `json:"ttft_avg_ns,omitempty"`
	TTFTStddevNS  uint64   `json:"ttft_stddev_ns,omitempty"`
	TTFTSamplesNS []uint64 `json:"ttft_samples_ns,omitempty"`
	ITLAvgNS      uint64   `json:"itl_avg_ns,omitempty"`
	ITLP50NS      uint64   `json:"itl_p50_ns,omitempty"`
	ITLP95NS      uint64   `json:"itl_p95_ns,omitempty"`
	ITLP99NS      uint64   `json:"itl_p99_ns,omitempty"`

	// End-to-end tests with speculative decoding: how it drafted (the
	// draft model's file, or "ngram N", and the limits), and the drafted
	// and accepted tokens of the timed repetitions. The test's name ends
	// in "+spec".
	Spec           string  `json:"spec,omitempty"`
	DraftTokens    int     `json:"draft_tokens,omitempty"`
	AcceptedTokens int     `json:"accepted_tokens,omitempty"`
	AcceptanceRate float64 `json:"acceptance_rate,omitempty"`

	itlNS []uint64 // inter-token latencies, for Finish
}

// TestName is llama-bench's name of the test: pp512, tg128, pp512+tg128;
// e2e512+128 for an end-to-end test.
func TestName(nPrompt, nGen int, e2e bool) string {
	switch {
	case e2e:
		return fmt.Sprintf("e2e%d+%d", nPrompt, nGen)
	case nGen == 0:
		return fmt.Sprintf("pp%d", nPrompt)
	case nPrompt == 0:
		return fmt.Sprintf("tg%d", nGen)
	}
	return fmt.Sprintf("pp%d+tg%d", nPrompt, nGen)
}

// AddITL records inter-token latencies of an end-to-end test.
func (r *Result) AddITL(ns ...uint64) { r.itlNS = append(r.itlNS, ns...) }

// Finish computes the test name and every statistic from the samples:
// means and sample standard deviations of the times and of the rates,
// the Go/C ratio, and the TTFT and inter-token latency summaries.
func (r *Result) Finish() {
	r.Test = TestName(r.NPrompt, r.NGen, r.E2E)
	n := r.NPrompt + r.NGen
	if r.NParallel > 1 {
		r.Test += fmt.Sprintf("x%d", r.NParallel)
		n *= r.NParallel
	}
	if r.Spec != "" {
		r.Test += "+spec"
	}
	if r.DraftTokens > 0 {
		r.AcceptanceRate = float64(r.AcceptedTokens) / float64(r.DraftTokens)
	}
	r.AvgNS, r.StddevNS, r.SamplesTS, r.AvgTS, r.StddevTS = timeStats(n, r.SamplesNS)
	if len(r.NativeSamplesNS) > 0 {
		r.NativeAvgNS, r.NativeStddevNS, r.NativeSamplesTS, r.NativeAvgTS, r.NativeStddevTS = timeStats(n, r.NativeSamplesNS)
		r.GoCRatio, r.GoCRatioLow, r.GoCRatioHigh = 0, 0, 0
		if r.NativeAvgTS > 0 {
			r.GoCRatio = r.AvgTS / r.NativeAvgTS
			// Go's speed over C's is C's time over Go's.
			if lo, hi, ok := RatioCI(r.GoCRatio, r.SamplesNS, r.NativeSamplesNS); ok {
				r.GoCRatioLow, r.GoCRatioHigh = lo, hi
			}
		}
	}
	if len(r.ImageEncodeSamplesNS) > 0 {
		r.ImageEncodeAvgNS = round(Mean(floats(r.ImageEncodeSamplesNS)))
	}
	if len(r.TTFTSamplesNS) > 0 {
		f := floats(r.TTFTSamplesNS)
		r.TTFTAvgNS, r.TTFTStddevNS = round(Mean(f)), round(StdDev(f))
	}
	if len(r.itlNS) > 0 {
		s := Summarize(floats(r.itlNS))
		r.ITLAvgNS, r.ITLP50NS, r.ITLP95NS, r.ITLP99NS = round(s.Mean), round(s.P50), round(s.P95), round(s.P99)
	}
}

func timeStats(n int, samples []uint64) (avgNS, sdNS uint64, ts []float64, avgTS, sdTS float64) {
	f := floats(samples)
	ts = Rate(n, samples)
	return round(Mean(f)), round(StdDev(f)), ts, Mean(ts), StdDev(ts)
}

func round(f float64) uint64 {
	if f <= 0 || math.IsNaN(f) {
		return 0
	}
	return uint64(math.Round(f))
}

// ModelLabel names the model of a result in tables and plots: the file
// name without its directory and .gguf extension.
func (r *Result) ModelLabel() string {
	return strings.TrimSuffix(filepath.Base(r.ModelFilename), ".gguf")
}

// Fields lists the CSV columns: every JSON field of Result in order, but
// the per-repetition arrays, which only JSON carries (as in llama-bench).
func Fields() []string {
	var names []string
	t := reflect.TypeFor[Result]()
	for i := range t.NumField() {
		if name, ok := csvField(t.Field(i)); ok {
			names = append(names, name)
		}
	}
	return names
}

func csvField(f reflect.StructField) (string, bool) {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" || name == "-" || f.Type.Kind() == reflect.Slice {
		return "", false
	}
	return name, true
}

// values renders the CSV columns of r, as llama-bench does: booleans as 0
// or 1, floats with six decimals; an unset optional field is empty.
func (r *Result) values() []string {
	var vals []string
	v := reflect.ValueOf(r).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if _, ok := csvField(f); !ok {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(f.Tag.Get("json"), ",omitempty") && fv.IsZero() {
			vals = append(vals, "")
			continue
		}
		var s string
		switch fv.Kind() {
		case reflect.String:
			s = fv.String()
		case reflect.Bool:
			s = "0"
			if fv.Bool() {
				s = "1"
			}
		case reflect.Int:
			s = strconv.FormatInt(fv.Int(), 10)
		case reflect.Uint64:
			s = strconv.FormatUint(fv.Uint(), 10)
		case reflect.Float64:
			s = strconv.FormatFloat(fv.Float(), 'f', 6, 64)
		default:
			panic("bench: unhandled field kind " + fv.Kind().String())
		}
		vals = append(vals, s)
	}
	return vals
}

// ReadResults reads results written as JSON (an array, as -o json) or
// JSON Lines (-o jsonl).
func ReadResults(rd io.Reader) ([]Result, error) {
	br := bufio.NewReader(rd)
	for {
		b, err := br.Peek(1)
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if !bytes.ContainsAny(b, " \t\r\n") {
			break
		}
		br.ReadByte()
	}
	var res []Result
	dec := json.NewDecoder(br)
	if b, _ := br.Peek(1); b[0] == '[' {
		if err := dec.Decode(&res); err != nil {
			return nil, fmt.Errorf("bench: read results: %w", err)
		}
		return res, nil
	}
	for {
		var r Result
		err := dec.Decode(&r)
		if err == io.EOF {
			return res, nil
		}
		if err != nil {
			return nil, fmt.Errorf("bench: read results: %w", err)
		}
		res = append(res, r)
	}
}
