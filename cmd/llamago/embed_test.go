package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

func TestEmbedFlags(t *testing.T) {
	base := embedOptions{Normalize: "l2", BatchSize: 2048, Threads: llama.DefaultThreads(), GPULayers: -1,
		norm: llama.NormalizeL2, pooling: llama.PoolingUnspecified}
	tests := []struct {
		name    string
		args    []string
		want    func(o *embedOptions)
		wantErr string
	}{
		{name: "defaults", args: []string{"-m", "m", "a", "b"}, want: func(o *embedOptions) {
			o.Model, o.Texts = "m", []string{"a", "b"}
		}},
		{name: "all flags", args: []string{"--model", "m", "-f", "-", "--normalize", "max-abs", "--pooling", "cls",
			"--similarity", "--dimensions", "8", "--truncate", "-b", "64", "-t", "2", "-ngl", "0"}, want: func(o *embedOptions) {
			o.Model, o.File, o.Normalize, o.norm, o.Pooling, o.pooling = "m", "-", "max-abs", llama.NormalizeMaxAbs, "cls", llama.PoolingCLS
			o.Similarity, o.Dimensions, o.Truncate, o.BatchSize, o.Threads, o.GPULayers = true, 8, true, 64, 2, 0
		}},
		{name: "normalize number", args: []string{"-m", "m", "x", "--normalize", "3", "--pooling", "none"}, want: func(o *embedOptions) {
			o.Model, o.Texts, o.Normalize, o.norm, o.Pooling, o.pooling = "m", []string{"x"}, "3", 3, "none", llama.PoolingNone
		}},
		{name: "normalize none", args: []string{"-m", "m", "x", "--normalize", "-1"}, want: func(o *embedOptions) {
			o.Model, o.Texts, o.Normalize, o.norm = "m", []string{"x"}, "-1", llama.NormalizeNone
		}},

		{name: "no model", args: []string{"x"}, wantErr: "--model is required"},
		{name: "no texts", args: []string{"-m", "m"}, wantErr: "no texts"},
		{name: "texts and file", args: []string{"-m", "m", "-f", "t.txt", "x"}, wantErr: "not both"},
		{name: "bad normalize", args: []string{"-m", "m", "x", "--normalize", "l3"}, wantErr: "--normalize"},
		{name: "normalize below -1", args: []string{"-m", "m", "x", "--normalize", "-2"}, wantErr: "--normalize"},
		{name: "bad pooling", args: []string{"-m", "m", "x", "--pooling", "max"}, wantErr: "--pooling"},
		{name: "similarity of tokens", args: []string{"-m", "m", "x", "--pooling", "none", "--similarity"}, wantErr: "--similarity"},
		{name: "negative dimensions", args: []string{"-m", "m", "x", "--dimensions", "-1"}, wantErr: "--dimensions"},
		{name: "zero batch", args: []string{"-m", "m", "x", "-b", "0"}, wantErr: "--batch-size"},
		{name: "zero threads", args: []string{"-m", "m", "x", "-t", "0"}, wantErr: "--threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *embedOptions
			cmd := newEmbedCmd(&iostreams{}, func(o *embedOptions) error { got = o; return nil })
			code, err := parseFlags(t, cmd, append([]string{"embed"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || code != exitUsage || got != nil {
					t.Fatalf("error = %v (exit %d), want a usage error containing %q", err, code, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := base
			tt.want(&want)
			got.IO = nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("options\n got %+v\nwant %+v", *got, want)
			}
		})
	}
}

// embedLines parses the output of llamago embed: one JSON array per line.
func embedLines[T any](t *testing.T, stdout string) []T {
	t.Helper()
	var out []T
	for line := range strings.Lines(stdout) {
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, v)
	}
	return out
}

func l2(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

func TestEmbedCommand(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	shape, _ := models.LookupShape("tiny-bert")
	bert := filepath.Join(t.TempDir(), "tiny-bert.gguf")
	if err := models.SynthesizeFile(bert, models.SynthOptions{Shape: shape, Vocab: modelPath(t, "vocab/ggml-vocab-bert-bge.gguf"), Seed: 1}); err != nil {
		t.Fatal(err)
	}

	t.Run("bert", func(t *testing.T) {
		stdout, stderr, code := cli(t, "", "embed", "-m", bert, "-t", "1", "a cat", "a dog", "a cat")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		embs := embedLines[[]float64](t, stdout)
		if len(embs) != 3 {
			t.Fatalf("%d lines, want 3:\n%s", len(embs), stdout)
		}
		for i, e := range embs {
			if len(e) != shape.Embd || math.Abs(l2(e)-1) > 1e-5 {
				t.Errorf("embedding %d: %d values, norm %v", i, len(e), l2(e))
			}
		}
		// Equal up to the order of float sums: without flash attention
		// (off on the CPU) a sequence's attention sums run over the
		// batch's cells, aligned differently for each sequence.
		for i := range embs[0] {
			if d := math.Abs(embs[0][i] - embs[2][i]); d > 1e-6 {
				t.Fatalf("the same text embeds differently: value %d differs by %g", i, d)
			}
		}

		stdout, _, code = cli(t, "", "embed", "-m", bert, "-t", "1", "--similarity", "a cat", "a dog", "a cat")
		m := embedLines[[]float64](t, stdout)
		if code != 0 || len(m) != 3 {
			t.Fatalf("similarity: exit %d, %q", code, stdout)
		}
		for i := range m {
			if len(m[i]) != 3 || math.Abs(m[i][i]-1) > 1e-5 || math.Abs(m[i][(i+1)%3]-m[(i+1)%3][i]) > 1e-6 {
				t.Errorf("similarity matrix %v", m)
			}
		}
		if math.Abs(m[0][2]-1) > 1e-5 || m[0][1] > 0.99999 {
			t.Errorf("similarity matrix %v", m)
		}

		stdout, _, code = cli(t, "", "embed", "-m", bert, "-t", "1", "--dimensions", "8", "--normalize", "none", "a cat")
		if e := embedLines[[]float64](t, stdout); code != 0 || len(e) != 1 || len(e[0]) != 8 || math.Abs(l2(e[0])-1) < 1e-3 {
			t.Errorf("--dimensions 8 --normalize none: exit %d, %v", code, e)
		}
	})

	t.Run("stories mean", func(t *testing.T) {
		stdout, stderr, code := cli(t, "Once upon a time\n\nthere was a cat\n", "embed", "-m", stories, "-t", "1", "--pooling", "mean", "-f", "-")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		embs := embedLines[[]float64](t, stdout)
		if len(embs) != 2 {
			t.Fatalf("%d lines for the two non-empty lines of the input", len(embs))
		}
		for _, e := range embs {
			if math.Abs(l2(e)-1) > 1e-5 {
				t.Errorf("norm %v", l2(e))
			}
		}
		stdout, _, code = cli(t, "", "embed", "-m", stories, "-t", "1", "--pooling", "none", "Once upon a time", "cat")
		toks := embedLines[[][]float64](t, stdout)
		if code != 0 || len(toks) != 2 || len(toks[0]) < 2 || len(toks[0]) <= len(toks[1]) {
			t.Fatalf("--pooling none: exit %d, %d lines", code, len(toks))
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"embed", "-m", stories, "-t", "1", "Once"}, // no pooling of its own
			{"embed", "-m", bert, "-t", "1", "--dimensions", "1000", "a"},
			{"embed", "-m", bert, "-t", "1", strings.Repeat("word ", 600)},
			{"embed", "-m", bert, "-f", filepath.Join(t.TempDir(), "missing.txt")},
		} {
			stdout, stderr, code := cli(t, "", args...)
			if code != exitError || stdout != "" {
				t.Errorf("%v: exit %d, stdout %q", args[len(args)-1], code, stdout)
			}
			oneLine(t, stderr)
		}
		_, stderr, _ := cli(t, "", "embed", "-m", stories, "-t", "1", "Once")
		if !strings.Contains(stderr, "no pooling of its own: give --pooling") {
			t.Errorf("stderr %q", stderr)
		}
		_, stderr, _ = cli(t, "", "embed", "-m", bert, "-t", "1", "--truncate", strings.Repeat("word ", 600))
		if stderr != "" {
			t.Errorf("--truncate: %q", stderr)
		}
	})
}

// TestRunJSONSchema: run and chat take a JSON Schema; the output
// validates against it.
func TestRunJSONSchema(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	schema := `{"type":"object","properties":{"name":{"type":"string","maxLength":6},"n":{"type":"integer","minimum":0,"maximum":99},"tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":3}},"required":["name","n","tags"]}`
	file := filepath.Join(t.TempDir(), "schema.json")
	if err := os.WriteFile(file, []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	for i, args := range [][]string{
		{"run", "-m", stories, "-t", "1", "-n", "200", "--seed", "1", "--temp", "1", "--json-schema", schema, "Once upon a time"},
		{"run", "-m", stories, "-t", "1", "-n", "200", "--seed", "2", "--temp", "1", "-j", schema, "Once upon a time"},
		{"run", "-m", stories, "-t", "1", "-n", "200", "--seed", "3", "--temp", "1", "--json-schema-file", file, "Once upon a time"},
	} {
		stdout, stderr, code := cli(t, "", args...)
		if code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, code, stderr)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(stdout))
		if err != nil {
			t.Errorf("run %d: output %q: %v", i, stdout, err)
			continue
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("run %d: output %q does not validate: %v", i, stdout, err)
		}
	}

	// chat: every reply is a value of the schema.
	stdout, stderr, code := cli(t, "hello\nagain\n", "chat", "-m", stories, "-t", "1", "-n", "200", "--seed", "4", "--temp", "1", "--chat-template", "chatml", "--json-schema-file", file)
	if code != 0 {
		t.Fatalf("chat: exit %d: %s", code, stderr)
	}
	if n := strings.Count(stdout, `"name"`); n != 2 {
		t.Errorf("chat output has %d objects, want one per message:\n%s", n, stdout)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--json-schema", "{", "x"}, exitError, "--json-schema: invalid JSON schema"},
		{[]string{"--json-schema", `{"type":"strng"}`, "x"}, exitError, "Unrecognized schema"},
		{[]string{"--json-schema-file", filepath.Join(t.TempDir(), "none.json"), "x"}, exitError, "no such file"},
		{[]string{"--json-schema", schema, "--grammar", `root ::= "a"`, "x"}, exitUsage, "give one of --grammar"},
		{[]string{"--json-schema", schema, "--json-schema-file", file, "x"}, exitUsage, "give one of --grammar"},
	} {
		stdout, stderr, code := cli(t, "", append([]string{"run", "-m", stories, "-t", "1"}, tt.args...)...)
		if code != tt.code || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, code, stdout, stderr, tt.code, tt.want)
		}
		oneLine(t, stderr)
	}
}
