package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
)

// testGenerate loads the model at path and generates n tokens greedily,
// failing the test unless it gets n tokens.
func testGenerate(t *testing.T, path string, n int) llama.Completion {
	t.Helper()
	ctx := context.Background()
	m, err := llama.Load(ctx, path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	defer m.Close()
	// One thread: on a loaded machine the threads' barriers are slow.
	lctx, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
	if err != nil {
		t.Fatalf("context for %s: %v", path, err)
	}
	defer lctx.Close()
	c, err := lctx.Complete(ctx, "Once upon a time", llama.WithMaxTokens(n),
		llama.WithSampling(llama.WithGreedy(), llama.WithIgnoreEOS()))
	if err != nil {
		t.Fatalf("generate with %s: %v", path, err)
	}
	if len(c.Tokens) != n {
		t.Fatalf("generated %d tokens with %s, want %d", len(c.Tokens), path, n)
	}
	return c
}

// testEmbed loads the embedding model at path and returns the mean-pooled
// embedding of a sentence, checking that every value is finite.
func testEmbed(t *testing.T, path string) []float32 {
	t.Helper()
	ctx := context.Background()
	m, err := llama.Load(ctx, path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	defer m.Close()
	lctx, err := m.NewContext(llama.WithEmbeddings(llama.PoolingMean), llama.WithContextSize(512),
		llama.WithThreads(1), llama.WithBatchThreads(1))
	if err != nil {
		t.Fatalf("context for %s: %v", path, err)
	}
	defer lctx.Close()
	toks, err := m.Tokenize("The quick brown fox jumps over the lazy dog.", llama.AddSpecial|llama.ParseSpecial)
	if err != nil || len(toks) < 5 {
		t.Fatalf("tokenize: %v %v", toks, err)
	}
	b, err := llama.NewBatch(len(toks), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tok := range toks {
		if err := b.Add(tok, i, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := lctx.Decode(ctx, b); err != nil {
		t.Fatalf("decode with %s: %v", path, err)
	}
	emb, err := lctx.SequenceEmbeddings(0)
	if err != nil {
		t.Fatalf("embeddings of %s: %v", path, err)
	}
	nonzero := false
	for i, v := range emb {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("embedding[%d] = %v", i, v)
		}
		nonzero = nonzero || v != 0
	}
	if !nonzero {
		t.Fatal("embedding is all zeros")
	}
	return slices.Clone(emb)
}

// synthCLI runs "llamago synth" with args and returns the output file.
func synthCLI(t *testing.T, out string, args ...string) string {
	t.Helper()
	stdout, stderr, code := cli(t, "", append([]string{"synth", "-o", out}, args...)...)
	if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, out+": synthetic ") {
		t.Fatalf("synth %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
	}
	return out
}

func TestSynthFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    func(o *synthOptions)
		wantErr string
	}{
		{name: "minimal", args: []string{"synth", "--shape", "tiny", "--vocab", "v.gguf", "-o", "m.gguf"}, want: func(o *synthOptions) {}},
		{name: "all", args: []string{"synth", "--arch", "qwen2", "--shape", "tiny-qwen2", "--vocab", "v.gguf", "--output", "m.gguf",
			"--type", "q4_k_m", "--seed", "42", "-t", "3"}, want: func(o *synthOptions) {
			o.Arch, o.Shape, o.Type, o.Seed, o.Threads = "qwen2", "tiny-qwen2", "q4_k_m", 42, 3
			o.ftype, _ = llama.ParseFileType("Q4_K_M")
		}},
		{name: "F32", args: []string{"synth", "--shape", "tiny", "--vocab", "v.gguf", "-o", "m.gguf", "--type", "F32"}, want: func(o *synthOptions) {
			o.Type, o.ftype = "F32", 0
		}},
		{name: "no shape", args: []string{"synth", "--vocab", "v", "-o", "m"}, wantErr: "--shape is required (one of bge-small, "},
		{name: "unknown shape", args: []string{"synth", "--shape", "huge", "--vocab", "v", "-o", "m"}, wantErr: `unknown shape "huge" (want one of `},
		{name: "no vocab", args: []string{"synth", "--shape", "tiny", "-o", "m"}, wantErr: "--vocab is required"},
		{name: "no output", args: []string{"synth", "--shape", "tiny", "--vocab", "v"}, wantErr: "--output is required"},
		{name: "arch mismatch", args: []string{"synth", "--arch", "bert", "--shape", "tiny", "--vocab", "v", "-o", "m"},
			wantErr: "--arch bert does not match shape tiny, which is llama"},
		{name: "unknown arch", args: []string{"synth", "--arch", "gpt5", "--shape", "tiny", "--vocab", "v", "-o", "m"},
			wantErr: `unknown architecture "gpt5" (want one of llama, qwen2, qwen2vl, bert, mamba)`},
		{name: "unknown type", args: []string{"synth", "--shape", "tiny", "--vocab", "v", "-o", "m", "--type", "Q3"},
			wantErr: `--type: unknown type "Q3" (want one of `},
		{name: "type needing an imatrix", args: []string{"synth", "--shape", "tiny", "--vocab", "v", "-o", "m", "--type", "IQ2_XXS"},
			wantErr: "--type: IQ2_XXS needs an importance matrix"},
		{name: "threads", args: []string{"synth", "--shape", "tiny", "--vocab", "v", "-o", "m", "-t", "0"}, wantErr: "--threads must be positive"},
		{name: "argument", args: []string{"synth", "--shape", "tiny", "--vocab", "v", "-o", "m", "x"}, wantErr: `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *synthOptions
			code, err := parseFlags(t, newSynthCmd(&iostreams{}, func(o *synthOptions) error { got = o; return nil }), tt.args...)
			if tt.wantErr != "" {
				if code != exitUsage || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("exit %d, error %v, want a usage error with %q", code, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := synthOptions{Shape: "tiny", Vocab: "v.gguf", Output: "m.gguf", Type: "F16", Threads: llama.DefaultThreads(), ftype: 1}
			tt.want(&want)
			want.shape = got.shape
			got.IO = nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("options\n%+v, want\n%+v", *got, want)
			}
			if got.shape.Name != got.Shape {
				t.Errorf("shape %+v", got.shape)
			}
		})
	}
}

// TestSynthModels makes each tiny shape with a vocabulary of its kind and
// checks that llama.cpp loads and runs it.
func TestSynthModels(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		shape, vocab, typ string
		embed             bool
		tensors           int
	}{
		{shape: "tiny", vocab: "llama-spm", typ: "F16", tensors: 2 + 1 + 2*9},
		{shape: "tiny", vocab: "llama-spm", typ: "F32", tensors: 2 + 1 + 2*9},
		{shape: "tiny-qwen2", vocab: "gpt-2", typ: "F16", tensors: 1 + 1 + 2*12},
		{shape: "tiny-qwen2", vocab: "deepseek-coder", typ: "Q8_0", tensors: 1 + 1 + 2*12},
		{shape: "tiny-bert", vocab: "bert-bge", typ: "F16", embed: true, tensors: 5 + 2*16},
		{shape: "tiny-bert", vocab: "bert-bge", typ: "Q8_0", embed: true, tensors: 5 + 2*16},
	}
	for _, tt := range tests {
		t.Run(tt.shape+"-"+tt.vocab+"-"+tt.typ, func(t *testing.T) {
			out := filepath.Join(dir, tt.shape+"-"+tt.vocab+"-"+tt.typ+".gguf")
			stdout, stderr, code := cli(t, "", "synth", "--shape", tt.shape, "--type", tt.typ, "--seed", "3",
				"--vocab", modelPath(t, "vocab/ggml-vocab-"+tt.vocab+".gguf"), "-o", out)
			wantOut := regexp.MustCompile(`^` + regexp.QuoteMeta(out) + `: synthetic ` + tt.shape + ` \((llama|qwen2|bert)\), ` +
				tt.typ + `, [0-9.]+ M parameters, [0-9.]+ MiB\n$`)
			if code != exitOK || stderr != "" || !wantOut.MatchString(stdout) {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			f, err := gguf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Tensors) != tt.tensors {
				t.Errorf("%d tensors, want %d", len(f.Tensors), tt.tensors)
			}
			// Windows has no Unix permissions (Go reports 0666 for a file
			// that can be written).
			if st, err := os.Stat(out); err != nil || runtime.GOOS != "windows" && st.Mode().Perm() != 0o644 {
				t.Errorf("output: %v, %v", st.Mode(), err)
			}
			if tt.embed {
				if emb := testEmbed(t, out); len(emb) != 64 {
					t.Errorf("embedding of %d values, want 64", len(emb))
				}
				return
			}
			c := testGenerate(t, out, 4)
			t.Logf("%s: %q", filepath.Base(out), c.Text)
		})
	}
	// Nothing else is left in the directory: no temporary files.
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(tests) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files in the output directory: %v", names)
	}
}

func TestSynthDeterminism(t *testing.T) {
	dir := t.TempDir()
	vocab := modelPath(t, "stories260K.gguf") // 512 tokens: small and quick
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, typ := range []string{"F16", "Q4_0"} {
		a := synthCLI(t, filepath.Join(dir, "a-"+typ+".gguf"), "--shape", "tiny", "--vocab", vocab, "--seed", "7", "--type", typ)
		b := synthCLI(t, filepath.Join(dir, "b-"+typ+".gguf"), "--arch", "llama", "--shape", "tiny", "--vocab", vocab, "--seed", "7", "--type", typ)
		c := synthCLI(t, filepath.Join(dir, "c-"+typ+".gguf"), "--shape", "tiny", "--vocab", vocab, "--seed", "8", "--type", typ)
		if !bytes.Equal(read(a), read(b)) {
			t.Errorf("%s: the same seed gave different files", typ)
		}
		if bytes.Equal(read(a), read(c)) {
			t.Errorf("%s: different seeds gave the same file", typ)
		}
	}
}

func TestSynthErrors(t *testing.T) {
	dir := t.TempDir()
	vocab := modelPath(t, "vocab/ggml-vocab-llama-spm.gguf")
	missing := filepath.Join(dir, "missing.gguf")
	statOp := "stat" // the name os.Stat's *PathError gives the call
	if runtime.GOOS == "windows" {
		statOp = "GetFileAttributesEx"
	}
	noTokens := filepath.Join(t.TempDir(), "no-tokens.gguf")
	var buf bytes.Buffer
	if err := gguf.Write(&buf, &gguf.File{KV: []gguf.KV{{Key: "general.architecture", Value: gguf.StringValue("llama")}}}, nil); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, noTokens, buf.Bytes())
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing vocab", []string{"--vocab", missing, "-o", filepath.Join(dir, "m.gguf")}, "vocabulary file: " + statOp + " " + missing},
		{"vocab not GGUF", []string{"--vocab", modelPath(t, "PROVENANCE.md"), "-o", filepath.Join(dir, "m.gguf")}, "vocab: gguf: "},
		{"vocab without tokens", []string{"--vocab", noTokens, "-o", filepath.Join(dir, "m.gguf")}, noTokens + " has no tokenizer.ggml.tokens"},
		{"missing directory", []string{"--vocab", vocab, "-o", filepath.Join(dir, "no", "m.gguf")}, filepath.Join(dir, "no")},
		{"missing directory, quantized", []string{"--vocab", vocab, "--type", "Q8_0", "-o", filepath.Join(dir, "no", "m.gguf")}, filepath.Join(dir, "no")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, "", append([]string{"synth", "--shape", "tiny"}, tt.args...)...)
			if code != exitError || stdout != "" || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q, want %q", code, stdout, stderr, tt.want)
			}
			oneLine(t, stderr)
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("left in the directory: %v", entries)
	}
}
