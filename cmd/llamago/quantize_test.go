package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

func TestQuantizeFlags(t *testing.T) {
	q4km, _ := llama.ParseFileType("Q4_K_M")
	tests := []struct {
		name    string
		args    []string
		want    func(o *quantizeOptions)
		wantErr string
	}{
		{name: "three arguments", args: []string{"quantize", "in.gguf", "out.gguf", "Q4_K_M"}, want: func(o *quantizeOptions) {}},
		{name: "no output", args: []string{"quantize", "in.gguf", "q4_k_m"}, want: func(o *quantizeOptions) {
			o.Output, o.Type = "", "q4_k_m"
		}},
		{name: "flags", args: []string{"quantize", "--threads", "3", "--allow-requantize", "--leave-output-tensor", "--pure", "--keep-split",
			"in.gguf", "out.gguf", "Q4_K_M"}, want: func(o *quantizeOptions) {
			o.Threads, o.AllowRequantize, o.LeaveOutputTensor, o.Pure, o.KeepSplit = 3, true, true, true, true
		}},
		{name: "short threads", args: []string{"quantize", "in.gguf", "out.gguf", "Q4_K_M", "-t", "2"}, want: func(o *quantizeOptions) { o.Threads = 2 }},
		{name: "one argument", args: []string{"quantize", "in.gguf"}, wantErr: "want INPUT [OUTPUT] TYPE, got 1 arguments"},
		{name: "four arguments", args: []string{"quantize", "a", "b", "Q8_0", "4"}, wantErr: "want INPUT [OUTPUT] TYPE, got 4 arguments"},
		{name: "unknown type", args: []string{"quantize", "in", "out", "Q4_K_X"}, wantErr: `TYPE: unknown type "Q4_K_X" (want one of BF16, F16, F32, `},
		{name: "type needing an imatrix", args: []string{"quantize", "in", "out", "IQ1_S"}, wantErr: "TYPE: IQ1_S needs an importance matrix"},
		{name: "threads", args: []string{"quantize", "in", "out", "Q8_0", "-t", "0"}, wantErr: "--threads must be positive, not 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *quantizeOptions
			code, err := parseFlags(t, newQuantizeCmd(&iostreams{}, func(o *quantizeOptions) error { got = o; return nil }), tt.args...)
			if tt.wantErr != "" {
				if code != exitUsage || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("exit %d, error %v, want a usage error with %q", code, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := quantizeOptions{Input: "in.gguf", Output: "out.gguf", Type: "Q4_K_M", Threads: llama.DefaultThreads(), ftype: q4km}
			tt.want(&want)
			got.IO = nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("options\n%+v, want\n%+v", *got, want)
			}
		})
	}
}

// tensorTypes returns the types of the tensors of the GGUF file at path, by
// name, and its general.file_type.
func tensorTypes(t *testing.T, path string) (map[string]string, string) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, ti := range f.Tensors {
		types[ti.Name] = ti.Type.String()
	}
	ft, _ := f.Uint(gguf.KeyFileType)
	return types, gguf.FileType(uint32(ft))
}

// quantizeCLI runs "llamago quantize" and checks its one line of output.
func quantizeCLI(t *testing.T, in, out, typ string, flags ...string) {
	t.Helper()
	stdout, stderr, code := cli(t, "", append([]string{"quantize", in, out, typ}, flags...)...)
	want := regexp.MustCompile(`^` + regexp.QuoteMeta(out) + `: ` + strings.ToUpper(typ) +
		`, [0-9.]+ [KM]iB \(was [0-9.]+ [KM]iB\), [0-9.]+ bits per weight, in [0-9.]+m?s\n$`)
	if code != exitOK || stderr != "" || !want.MatchString(stdout) {
		t.Fatalf("quantize %s %s: exit %d, stdout %q, stderr %q", typ, flags, code, stdout, stderr)
	}
}

// TestQuantizeTypes quantizes the tiny synthetic llama to several types,
// then loads each and generates.
func TestQuantizeTypes(t *testing.T) {
	dir := t.TempDir()
	f16 := synthCLI(t, filepath.Join(dir, "tiny-f16.gguf"), "--shape", "tiny", "--vocab", modelPath(t, "vocab/ggml-vocab-llama-spm.gguf"))
	for _, typ := range []string{"Q8_0", "Q4_0", "Q4_K_M", "Q6_K"} {
		t.Run(typ, func(t *testing.T) {
			out := filepath.Join(dir, "tiny-"+strings.ToLower(typ)+".gguf")
			quantizeCLI(t, f16, out, typ)
			types, ft := tensorTypes(t, out)
			if ft != typ {
				t.Errorf("general.file_type %s, want %s", ft, typ)
			}
			// The tiny shape's rows of 64 values are too short for the
			// k-quants' blocks of 256: llama.cpp falls back to Q5_0 or
			// Q8_0 for those.
			wantAttn := map[string]string{"Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_K_M": "Q5_0", "Q6_K": "Q8_0"}[typ]
			if types["blk.0.attn_q.weight"] != wantAttn || types["blk.0.attn_norm.weight"] != "F32" {
				t.Errorf("tensor types %v", types)
			}
			c := testGenerate(t, out, 4)
			t.Logf("%s: %q", typ, c.Text)
		})
	}
	// Two arguments: ggml-model-TYPE.gguf beside the input, as llama-quantize.
	stdout, stderr, code := cli(t, "", "quantize", f16, "q8_0")
	if want := filepath.Join(dir, "ggml-model-Q8_0.gguf"); code != exitOK || !strings.HasPrefix(stdout, want+": Q8_0, ") {
		t.Errorf("quantize without output: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	for _, e := range mustReadDir(t, dir) {
		if strings.Contains(e, "partial") {
			t.Errorf("left in the directory: %s", e)
		}
	}
}

// TestQuantizeKQuants quantizes a model with rows of 256 values, so that
// the k-quants apply, and checks the options that choose tensor types.
func TestQuantizeKQuants(t *testing.T) {
	dir := t.TempDir()
	f16 := filepath.Join(dir, "k-f16.gguf")
	shape := models.Shape{Name: "k256", Arch: "llama", Embd: 256, Layers: 1, Heads: 4, KVHeads: 4, FF: 256, Context: 256, RopeBase: 10000}
	// stories260K's vocabulary of 512 tokens keeps the model small.
	err := models.SynthesizeFile(f16, models.SynthOptions{Shape: shape, Vocab: modelPath(t, "stories260K.gguf"), Type: gguf.TensorF16, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}

	mix := filepath.Join(dir, "q4_k_m.gguf")
	quantizeCLI(t, f16, mix, "Q4_K_M")
	types, _ := tensorTypes(t, mix)
	// The Q4_K_M mix: Q6_K for the output and (in half the layers) the
	// attention's V and the FFN's down projection.
	if types["blk.0.attn_q.weight"] != "Q4_K" || types["output.weight"] != "Q6_K" || types["blk.0.ffn_down.weight"] != "Q6_K" {
		t.Errorf("Q4_K_M: %v", types)
	}
	testGenerate(t, mix, 4)

	pure := filepath.Join(dir, "pure.gguf")
	quantizeCLI(t, f16, pure, "Q4_K_M", "--pure")
	types, _ = tensorTypes(t, pure)
	for name, typ := range types {
		if !strings.HasSuffix(name, "norm.weight") && typ != "Q4_K" {
			t.Errorf("--pure: %s is %s", name, typ)
		}
	}

	leave := filepath.Join(dir, "leave.gguf")
	quantizeCLI(t, f16, leave, "Q4_0", "--leave-output-tensor")
	types, _ = tensorTypes(t, leave)
	if types["output.weight"] != "F16" || types["blk.0.attn_q.weight"] != "Q4_0" {
		t.Errorf("--leave-output-tensor: %v", types)
	}

	// Requantizing needs --allow-requantize.
	stdout, stderr, code := cli(t, "", "quantize", mix, filepath.Join(dir, "re.gguf"), "Q4_0")
	if code != exitError || stdout != "" || !strings.Contains(stderr, "quantize "+mix+" to Q4_0: requantizing from type") {
		t.Errorf("requantize: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	oneLine(t, stderr)
	re := filepath.Join(dir, "re.gguf")
	quantizeCLI(t, mix, re, "Q4_0", "--allow-requantize")
	if types, _ := tensorTypes(t, re); types["blk.0.attn_q.weight"] != "Q4_0" {
		t.Errorf("requantized: %v", types)
	}
}

func TestQuantizeKeepSplit(t *testing.T) {
	dir := t.TempDir()
	f16 := synthCLI(t, filepath.Join(dir, "tiny.gguf"), "--shape", "tiny", "--vocab", modelPath(t, "vocab/ggml-vocab-llama-spm.gguf"))
	parts := splitGGUF(t, f16, filepath.Join(dir, "split"), "tiny-F16", 2)
	testGenerate(t, parts[0], 2)

	// Without --keep-split, one file.
	one := filepath.Join(dir, "one.gguf")
	quantizeCLI(t, parts[0], one, "Q8_0")
	testGenerate(t, one, 2)

	// With it, as many parts, named after the output.
	out := filepath.Join(dir, "out", "tiny-Q8_0.gguf")
	os.Mkdir(filepath.Dir(out), 0o755)
	stdout, stderr, code := cli(t, "", "quantize", "--keep-split", parts[0], out, "Q8_0")
	first := filepath.Join(dir, "out", "tiny-Q8_0-00001-of-00002.gguf")
	if code != exitOK || !strings.HasPrefix(stdout, first+" (2 parts): Q8_0, ") {
		t.Fatalf("--keep-split: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got, want := mustReadDir(t, filepath.Dir(out)), []string{"tiny-Q8_0-00001-of-00002.gguf", "tiny-Q8_0-00002-of-00002.gguf"}; !reflect.DeepEqual(got, want) {
		t.Errorf("output directory %v, want %v", got, want)
	}
	testGenerate(t, first, 2)

	// A model in one file: --keep-split changes nothing.
	single := filepath.Join(dir, "single.gguf")
	quantizeCLI(t, f16, single, "Q8_0", "--keep-split")
	testGenerate(t, single, 2)
}

func TestQuantizeErrors(t *testing.T) {
	testStore(t)
	dir := t.TempDir()
	stories := modelPath(t, "stories260K.gguf")
	missing := filepath.Join(dir, "missing.gguf")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing input", []string{"quantize", missing, filepath.Join(dir, "out.gguf"), "Q8_0"}, missing},
		{"output is input", []string{"quantize", stories, stories, "Q8_0"}, "the output " + stories + " is the input"},
		{"truncated input", []string{"quantize", modelPath(t, "ollama-test-truncated.gguf"), filepath.Join(dir, "out.gguf"), "Q8_0"}, "ollama-test-truncated.gguf"},
		{"missing output directory", []string{"quantize", stories, filepath.Join(dir, "no", "out.gguf"), "Q8_0"}, "cannot write the output"},
		{"unknown model", []string{"quantize", "no-such-model", filepath.Join(dir, "out.gguf"), "Q8_0"}, `model "no-such-model" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, "", tt.args...)
			if code != exitError || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q, want %q", code, stdout, stderr, tt.want)
			}
			oneLine(t, stderr)
		})
	}
	if got := mustReadDir(t, dir); len(got) != 0 {
		t.Errorf("left in the directory: %v", got)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
