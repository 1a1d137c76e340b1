package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// storiesGreedy is the start of upstream llama.cpp's greedy continuation of
// "Once upon a time" with stories260K.
const storiesGreedy = ", there was a little girl named Lily."

func defaultRunOptions() runOptions {
	return runOptions{
		NPredict: -1, CtxSize: 4096, BatchSize: 2048, UBatchSize: 512,
		Threads: llama.DefaultThreads(), ThreadsBatch: llama.DefaultThreads(), GPULayers: -1,
		FlashAttn: "auto", CacheTypeK: "f16", CacheTypeV: "f16",
		Temp: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, Typical: 1, RepeatPenalty: 1, RepeatLastN: 64,
		MirostatLR: 0.1, MirostatEnt: 5, Seed: -1,
		flashAttn: llama.FlashAttentionAuto, cacheK: llama.CacheF16, cacheV: llama.CacheF16, seed: llama.DefaultSeed,
		GPU: defaultGPUFlags(), Spec: specFlags{DraftMax: 16, DraftPMin: 0.75},
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    func(o *runOptions) // changes to defaultRunOptions
		wantErr string              // a usage error containing this
	}{
		{name: "defaults", args: []string{"-m", "m.gguf", "Once upon a time"}, want: func(o *runOptions) {
			o.Model, o.Prompt = "m.gguf", "Once upon a time"
		}},
		{name: "long and short", args: []string{
			"--model=m.gguf", "-p", "hi", "-n", "30", "-c", "0", "-b", "64", "-t", "3", "--temp", "0",
			"--top-k", "0", "--top-p", "1", "--min-p", "0", "--typical", "0.5", "--repeat-penalty", "1.1",
			"--repeat-last-n", "-1", "--presence-penalty", "0.5", "--frequency-penalty", "-0.5",
			"--seed", "42", "--stop", "a", "--stop", "b,c", "--ignore-eos", "--no-mmap", "--mlock",
			"--json", "--timings", "--no-escape", "--grammar", `root ::= "a"`,
		}, want: func(o *runOptions) {
			o.Model, o.Prompt, o.NPredict, o.CtxSize, o.BatchSize, o.Threads, o.ThreadsBatch = "m.gguf", "hi", 30, 0, 64, 3, 3
			o.Temp, o.TopK, o.TopP, o.MinP, o.Typical, o.RepeatPenalty, o.RepeatLastN = 0, 0, 1, 0, 0.5, 1.1, -1
			o.PresencePenalty, o.FrequencyPenalty, o.Seed, o.seed = 0.5, -0.5, 42, 42
			o.Stop = []string{"a", "b,c"}
			o.IgnoreEOS, o.NoMmap, o.Mlock, o.JSON, o.Timings, o.NoEscape = true, true, true, true, true, true
			o.Grammar = `root ::= "a"`
		}},
		{name: "multi-letter short", args: []string{
			"-m", "m.gguf", "-ngl", "5", "-ub=128", "-tb", "2", "-fa", "on", "-ctk", "q8_0", "-ctv=q4_0", "-f", "p.txt",
		}, want: func(o *runOptions) {
			o.Model, o.PromptFile, o.GPULayers, o.UBatchSize, o.ThreadsBatch = "m.gguf", "p.txt", 5, 128, 2
			o.FlashAttn, o.flashAttn = "on", llama.FlashAttentionOn
			o.CacheTypeK, o.cacheK, o.CacheTypeV, o.cacheV = "q8_0", llama.CacheQ8_0, "q4_0", llama.CacheQ4_0
		}},
		{name: "multi-letter short with equals", args: []string{"-m", "m.gguf", "-ngl=0", "-fa=off", "x"}, want: func(o *runOptions) {
			o.Model, o.Prompt, o.GPULayers, o.FlashAttn, o.flashAttn = "m.gguf", "x", 0, "off", llama.FlashAttentionOff
		}},
		{name: "option value is not rewritten", args: []string{"-m", "m.gguf", "-p", "-fa"}, want: func(o *runOptions) {
			o.Model, o.Prompt = "m.gguf", "-fa"
		}},
		{name: "after double dash", args: []string{"-m", "m.gguf", "--", "-ngl"}, want: func(o *runOptions) {
			o.Model, o.Prompt = "m.gguf", "-ngl"
		}},
		{name: "mirostat", args: []string{"-m", "m", "x", "--mirostat", "2", "--mirostat-lr", "0.2", "--mirostat-ent", "3", "--seed", "4294967295"}, want: func(o *runOptions) {
			o.Model, o.Prompt, o.Mirostat, o.MirostatLR, o.MirostatEnt, o.Seed, o.seed = "m", "x", 2, 0.2, 3, 4294967295, 4294967295
		}},
		{name: "empty prompt", args: []string{"-m", "m", "-p", ""}, want: func(o *runOptions) { o.Model = "m" }},

		{name: "no prompt", args: []string{"-m", "m"}, wantErr: "no prompt"},
		{name: "prompt and argument", args: []string{"-m", "m", "-p", "a", "b"}, wantErr: "only once"},
		{name: "prompt and file", args: []string{"-m", "m", "-p", "a", "-f", "x"}, wantErr: "only once"},
		{name: "two arguments", args: []string{"-m", "m", "a", "b"}, wantErr: "at most one prompt argument"},
		{name: "no model", args: []string{"-p", "a"}, wantErr: "--model is required"},
		{name: "negative ctx-size", args: []string{"-m", "m", "x", "-c", "-1"}, wantErr: "--ctx-size"},
		{name: "zero n-predict", args: []string{"-m", "m", "x", "-n", "0"}, wantErr: "--n-predict"},
		{name: "n-predict below -1", args: []string{"-m", "m", "x", "-n", "-2"}, wantErr: "--n-predict"},
		{name: "zero batch", args: []string{"-m", "m", "x", "-b", "0"}, wantErr: "--batch-size"},
		{name: "zero ubatch", args: []string{"-m", "m", "x", "-ub", "0"}, wantErr: "--ubatch-size"},
		{name: "zero threads", args: []string{"-m", "m", "x", "-t", "0"}, wantErr: "--threads"},
		{name: "negative threads-batch", args: []string{"-m", "m", "x", "-tb", "-1"}, wantErr: "--threads-batch"},
		{name: "ngl below -1", args: []string{"-m", "m", "x", "-ngl", "-2"}, wantErr: "--n-gpu-layers"},
		{name: "ngl not a number", args: []string{"-m", "m", "x", "-ngl", "all"}, wantErr: "n-gpu-layers"},
		{name: "bad flash-attn", args: []string{"-m", "m", "x", "-fa", "maybe"}, wantErr: "--flash-attn must be on, off or auto"},
		{name: "unknown cache type", args: []string{"-m", "m", "x", "-ctk", "q9_0"}, wantErr: `--cache-type-k: unknown cache type "q9_0"`},
		{name: "quantized V without flash attention", args: []string{"-m", "m", "x", "-ctv", "q8_0", "-fa", "off"}, wantErr: "needs flash attention"},
		{name: "negative temp", args: []string{"-m", "m", "x", "--temp", "-1"}, wantErr: "--temp"},
		{name: "NaN temp", args: []string{"-m", "m", "x", "--temp", "NaN"}, wantErr: "--temp"},
		{name: "negative top-k", args: []string{"-m", "m", "x", "--top-k", "-1"}, wantErr: "--top-k"},
		{name: "top-p above 1", args: []string{"-m", "m", "x", "--top-p", "1.5"}, wantErr: "--top-p"},
		{name: "negative min-p", args: []string{"-m", "m", "x", "--min-p", "-0.1"}, wantErr: "--min-p"},
		{name: "repeat-last-n below -1", args: []string{"-m", "m", "x", "--repeat-last-n", "-2"}, wantErr: "--repeat-last-n"},
		{name: "mirostat 3", args: []string{"-m", "m", "x", "--mirostat", "3"}, wantErr: "--mirostat must be"},
		{name: "repeat-last-n too large", args: []string{"-m", "m", "x", "--repeat-last-n", "2000000000"}, wantErr: "--repeat-last-n"},
		{name: "seed below -1", args: []string{"-m", "m", "x", "--seed", "-2"}, wantErr: "--seed"},
		{name: "seed above 32 bits", args: []string{"-m", "m", "x", "--seed", "4294967296"}, wantErr: "--seed"},
		{name: "grammar and grammar-file", args: []string{"-m", "m", "x", "--grammar", "a", "--grammar-file", "b"}, wantErr: "--grammar and --grammar-file"},
		{name: "json and echo", args: []string{"-m", "m", "x", "--json", "--echo"}, wantErr: "--json and --echo"},
		{name: "unknown flag", args: []string{"-m", "m", "x", "--bogus"}, wantErr: "unknown flag: --bogus"},
		{name: "missing value", args: []string{"-m", "m", "x", "--temp"}, wantErr: "needs an argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *runOptions
			cmd := newRunCmd(&iostreams{}, func(o *runOptions) error { got = o; return nil })
			code, err := parseFlags(t, cmd, append([]string{"run"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || code != exitUsage {
					t.Fatalf("error = %v (exit %d), want a usage error containing %q", err, code, tt.wantErr)
				}
				if got != nil {
					t.Error("runF was called despite the error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaultRunOptions()
			tt.want(&want)
			got.IO = nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("options\n got %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestNormalizeArgs(t *testing.T) {
	root := newRootCmd(&iostreams{})
	tests := []struct {
		in, want []string
	}{
		{[]string{"run", "-ngl", "5", "-ub", "1", "-tb", "2", "-fa", "on", "-ctk", "f32", "-ctv", "f16"},
			[]string{"run", "--n-gpu-layers", "5", "--ubatch-size", "1", "--threads-batch", "2", "--flash-attn", "on", "--cache-type-k", "f32", "--cache-type-v", "f16"}},
		{[]string{"run", "-ngl=5", "-fa=auto"}, []string{"run", "--n-gpu-layers=5", "--flash-attn=auto"}},
		{[]string{"run", "-p", "-ngl", "-m", "-fa", "--stop", "-ub"}, []string{"run", "-p", "-ngl", "-m", "-fa", "--stop", "-ub"}},
		{[]string{"run", "--prompt=-ngl", "-ngl", "1"}, []string{"run", "--prompt=-ngl", "--n-gpu-layers", "1"}},
		{[]string{"run", "--ignore-eos", "-ngl", "1"}, []string{"run", "--ignore-eos", "--n-gpu-layers", "1"}},
		{[]string{"run", "--", "-ngl", "-fa"}, []string{"run", "--", "-ngl", "-fa"}},
		{[]string{"run", "-nglx", "--ngl", "-n", "-ngl"}, []string{"run", "-nglx", "--ngl", "-n", "-ngl"}},
		{nil, []string{}},
	}
	for _, tt := range tests {
		if got := normalizeArgs(root, tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("normalizeArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRunGenerate(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	promptFile := filepath.Join(t.TempDir(), "prompt.txt")
	if err := os.WriteFile(promptFile, []byte("Once upon a time"), 0o644); err != nil {
		t.Fatal(err)
	}
	greedy := []string{"run", "-m", stories, "--temp", "0", "-n", "30", "-c", "256", "-t", "1"}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantPrefix string
		check      func(t *testing.T, stdout, stderr string)
	}{
		{name: "greedy", args: append(greedy, "Once upon a time"), wantPrefix: storiesGreedy},
		{name: "greedy long flags", args: []string{"run", "--model", stories, "--temp=0", "--n-predict=30", "--ctx-size=0", "--prompt", "Once upon a time"}, wantPrefix: storiesGreedy},
		{name: "echo", args: append(greedy, "--echo", "Once upon a time"), wantPrefix: "Once upon a time" + storiesGreedy},
		{name: "file", args: append(greedy, "-f", promptFile), wantPrefix: storiesGreedy},
		{name: "stdin", args: append(greedy, "-f", "-"), stdin: "Once upon a time", wantPrefix: storiesGreedy},
		{name: "multi-letter short flags", args: append(greedy, "-ngl", "0", "-ub", "64", "-tb", "1", "-fa", "on", "-ctk", "f32", "-ctv", "bf16", "Once upon a time"), wantPrefix: ", there was"},
		{name: "stop", args: append(greedy, "--stop", "Lily", "Once upon a time"), check: func(t *testing.T, stdout, _ string) {
			if want := ", there was a little girl named "; stdout != want {
				t.Errorf("stdout = %q, want %q", stdout, want)
			}
		}},
		{name: "escaped stop", args: append(greedy, "-n", "100", "--stop", `high.\n`, "Once upon a time"), check: func(t *testing.T, stdout, _ string) {
			if !strings.HasSuffix(stdout, "but it was too ") {
				t.Errorf("stdout = %q, want it cut before \"high.\\n\"", stdout)
			}
		}},
		{name: "no-escape stop", args: append(greedy, "-n", "100", "--no-escape", "--stop", `high.\n`, "Once upon a time"), check: func(t *testing.T, stdout, _ string) {
			if !strings.Contains(stdout, "but it was too high.\n") {
				t.Errorf("stdout = %q, want the literal stop string not to match", stdout)
			}
		}},
		{name: "timings", args: append(greedy, "--timings", "Once upon a time"), wantPrefix: storiesGreedy, check: func(t *testing.T, _, stderr string) {
			for _, re := range []string{
				`(?m)^prompt: +5 tokens \(0 cached\), [0-9.]+ ms, [0-9.]+ tok/s$`,
				`(?m)^generation: 30 tokens, time to first token [0-9.]+ ms, [0-9.]+ tok/s$`,
				`(?m)^stop: +max_tokens$`,
			} {
				if !regexp.MustCompile(re).MatchString(stderr) {
					t.Errorf("stderr %q does not match %s", stderr, re)
				}
			}
		}},
		{name: "grammar", args: []string{"run", "-m", stories, "-n", "8", "--seed", "1", "--grammar", `root ::= [ab]+`, "Once"}, check: func(t *testing.T, stdout, _ string) {
			if !regexp.MustCompile(`^[ab]+$`).MatchString(stdout) {
				t.Errorf("stdout = %q, want only a and b", stdout)
			}
		}},
		{name: "seeded sampling", args: []string{"run", "-m", stories, "-n", "20", "--seed", "7", "--temp", "1.5", "--top-k", "0", "Once upon a time"}, check: func(t *testing.T, stdout, _ string) {
			again, _, _ := cli(t, "", "run", "-m", stories, "-n", "20", "--seed", "7", "--temp", "1.5", "--top-k", "0", "Once upon a time")
			if stdout == "" || again != stdout {
				t.Errorf("same seed gave %q and %q", stdout, again)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, tt.stdin, tt.args...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if !strings.HasPrefix(stdout, tt.wantPrefix) {
				t.Errorf("stdout = %q, want prefix %q", stdout, tt.wantPrefix)
			}
			if tt.check != nil {
				tt.check(t, stdout, stderr)
			} else if stderr != "" {
				t.Errorf("stderr = %q, want nothing", stderr)
			}
		})
	}
}

func TestRunJSON(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	tests := []struct {
		name       string
		args       []string
		wantReason string
		wantTokens int
		wantText   func(string) bool
	}{
		{"max tokens", []string{"-n", "30"}, "max_tokens", 30, func(s string) bool { return strings.HasPrefix(s, storiesGreedy) }},
		{"stop string", []string{"-n", "30", "--stop", "Lily"}, "stop_string", -1, func(s string) bool { return s == ", there was a little girl named " }},
		{"context full", []string{"-n", "-1", "-c", "64", "--ignore-eos"}, "context_full", -1, func(s string) bool { return strings.HasPrefix(s, ", there was") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "-m", stories, "--temp", "0", "-t", "1", "--json"}, tt.args...)
			stdout, stderr, code := cli(t, "", append(args, "Once upon a time")...)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			var res struct {
				Text   string          `json:"text"`
				Tokens []llama.TokenID `json:"tokens"`
				Stats  map[string]any  `json:"stats"`
			}
			dec := json.NewDecoder(strings.NewReader(stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&res); err != nil {
				t.Fatalf("stdout %q: %v", stdout, err)
			}
			if dec.More() {
				t.Errorf("more than one JSON value in %q", stdout)
			}
			if !tt.wantText(res.Text) {
				t.Errorf("text = %q", res.Text)
			}
			for _, k := range []string{"prompt_tokens", "cached_tokens", "generated_tokens", "prompt_eval_ms", "ttft_ms",
				"generation_ms", "tokens_per_second", "prompt_tokens_per_second", "stop_reason"} {
				if _, ok := res.Stats[k]; !ok {
					t.Errorf("stats lack %q: %v", k, res.Stats)
				}
			}
			if res.Stats["stop_reason"] != tt.wantReason {
				t.Errorf("stop_reason = %v, want %s", res.Stats["stop_reason"], tt.wantReason)
			}
			if res.Stats["prompt_tokens"] != 5.0 || res.Stats["cached_tokens"] != 0.0 {
				t.Errorf("prompt_tokens, cached_tokens = %v, %v, want 5, 0", res.Stats["prompt_tokens"], res.Stats["cached_tokens"])
			}
			gen, _ := res.Stats["generated_tokens"].(float64)
			if tt.wantTokens >= 0 && (int(gen) != tt.wantTokens || len(res.Tokens) != tt.wantTokens) {
				t.Errorf("generated_tokens = %v, %d tokens, want %d", gen, len(res.Tokens), tt.wantTokens)
			}
			if ttft, _ := res.Stats["ttft_ms"].(float64); ttft <= 0 {
				t.Errorf("ttft_ms = %v", res.Stats["ttft_ms"])
			}
			if tps, _ := res.Stats["tokens_per_second"].(float64); tps <= 0 {
				t.Errorf("tokens_per_second = %v", res.Stats["tokens_per_second"])
			}
			if tt.wantReason == "context_full" {
				if want := fmt.Sprintf("llamago: context full after %d tokens\n", int(gen)); stderr != want {
					t.Errorf("stderr = %q, want %q", stderr, want)
				}
			} else if stderr != "" {
				t.Errorf("stderr = %q", stderr)
			}
		})
	}
}

func TestRunContextFull(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	stdout, stderr, code := cli(t, "", "run", "-m", stories, "--temp", "0", "-c", "64", "-n", "-1", "--ignore-eos", "-t", "1", "Once upon a time")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if !strings.HasPrefix(stdout, storiesGreedy) {
		t.Errorf("stdout = %q", stdout)
	}
	// llama.cpp rounds the context up to 256 positions; the prompt has 5.
	if want := "llamago: context full after 251 tokens\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
}

func TestRunErrors(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	missing := filepath.Join(t.TempDir(), "missing.gguf")
	truncated := modelPath(t, "ollama-test-truncated.gguf")
	long := strings.Repeat("Once upon a time ", 100)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string // in the error line
	}{
		{"missing model", []string{"run", "-m", missing, "hi"}, exitError, missing},
		{"truncated model", []string{"run", "-m", truncated, "hi"}, exitError, "ollama-test-truncated.gguf"},
		{"directory as model", []string{"run", "-m", modelsDir(t), "hi"}, exitError, "directory"},
		{"vocab-only file", []string{"run", "-m", modelPath(t, "vocab/ggml-vocab-llama-spm.gguf"), "hi"}, exitError, "ggml-vocab-llama-spm.gguf"},
		{"prompt longer than the context", []string{"run", "-m", stories, "-c", "64", long}, exitError, "does not fit the context of 256 tokens"},
		// stories260K has heads of 8 values; llama.cpp would abort.
		{"quantized cache", []string{"run", "-m", stories, "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on", "hi"}, exitError, "--cache-type-k q8_0 needs attention heads of a multiple of 32"},
		{"quantized V cache", []string{"run", "-m", stories, "-ctv", "q4_0", "hi"}, exitError, "--cache-type-v q4_0"},
		{"echo of a prompt that fails", []string{"run", "-m", stories, "-c", "64", "--echo", long}, exitError, "does not fit"},
		{"missing prompt file", []string{"run", "-m", stories, "-f", missing}, exitError, missing},
		{"missing grammar file", []string{"run", "-m", stories, "--grammar-file", missing, "hi"}, exitError, missing},
		// llama.cpp's converter crashed on the first, and its grammar
		// parser grew without end on the others.
		{"pattern it cannot convert", []string{"run", "-m", stories, "--json-schema", `{"type":"string","pattern":"^(?:a)$"}`, "hi"}, exitError, `--json-schema: invalid JSON schema: pattern "^(?:a)$": (?...) groups`},
		{"inverted lengths", []string{"run", "-m", stories, "--json-schema", `{"type":"string","minLength":3,"maxLength":1}`, "hi"}, exitError, "minLength 3 is greater than maxLength 1"},
		{"inverted repetition", []string{"run", "-m", stories, "--grammar", `root ::= "a"{2,1}`, "hi"}, exitError, "invalid grammar: repetition {2,1}"},
		{"usage", []string{"run", "-m", stories}, exitUsage, "with --file (see 'llamago run --help')"},
		{"unknown command", []string{"walk"}, exitUsage, `unknown command "walk"`},
		{"unknown flag", []string{"run", "-m", stories, "-x", "hi"}, exitUsage, "unknown shorthand flag: 'x'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			oneLine(t, stderr)
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout = %q", stdout)
			}
		})
	}
}

// cancelWriter cancels a context at its first write.
type cancelWriter struct {
	syncBuffer
	once   sync.Once
	cancel context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.once.Do(w.cancel)
	return w.syncBuffer.Write(p)
}

func TestRunCancel(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelWriter{cancel: cancel}
	var errOut syncBuffer
	code := execute(ctx, []string{"run", "-m", stories, "-n", "-1", "-c", "2048", "--ignore-eos", "Once upon a time"},
		&iostreams{In: strings.NewReader(""), Out: out, ErrOut: &errOut})
	if code != exitInterrupt {
		t.Errorf("exit %d, want %d", code, exitInterrupt)
	}
	if s := out.String(); !strings.HasSuffix(s, "\n") || len(s) > 200 {
		t.Errorf("stdout = %q, want a little text and a newline", s)
	}
	if errOut.String() != "" {
		t.Errorf("stderr = %q", errOut.String())
	}
}

func TestVerbose(t *testing.T) {
	spm := modelPath(t, "vocab/ggml-vocab-llama-spm.gguf")
	for _, verbose := range []bool{false, true} {
		args := []string{"tokenize", "-m", spm, "-p", "Hello", "--ids"}
		if verbose {
			args = append([]string{"--verbose"}, args...)
		}
		stdout, stderr, code := cli(t, "", args...)
		if code != exitOK || stdout != "[1, 15043]\n" {
			t.Fatalf("verbose %v: exit %d, stdout %q", verbose, code, stdout)
		}
		logged := strings.Contains(stderr, "level=DEBUG") && strings.Contains(stderr, "source=llama.cpp") &&
			strings.Contains(stderr, "llama_model_loader")
		if logged != verbose || (!verbose && stderr != "") {
			t.Errorf("verbose %v: stderr %q", verbose, stderr)
		}
	}
}

// TestRunLoRA: --lora and --lora-scaled apply LoRA adapters in run and
// chat; bad values are usage errors and bad files one-line errors.
func TestRunLoRA(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	lora := testllama.LoRA(t, "stories260K.gguf", 4, 1)
	greedy := []string{"run", "-m", stories, "--temp", "0", "-n", "30", "-c", "256", "-t", "1"}
	run := func(args ...string) string {
		t.Helper()
		stdout, stderr, code := cli(t, "", append(append(slices.Clone(greedy), args...), "Once upon a time")...)
		if code != exitOK {
			t.Fatalf("run %q: exit %d, %s", args, code, stderr)
		}
		return stdout
	}
	base := run()
	adapted := run("--lora", lora)
	if adapted == base {
		t.Errorf("--lora: the base model's text %q", adapted)
	}
	if got := run("--lora-scaled", lora+":1"); got != adapted {
		t.Errorf("--lora-scaled FILE:1 = %q, want --lora's %q", got, adapted)
	}
	if got := run("--lora-scaled", lora+":0"); got != base {
		t.Errorf("--lora-scaled FILE:0 = %q, want the base model's %q", got, base)
	}
	chatted, _ := chatOK(t, "Hello\n", chatArgs(t, "--lora", lora)...)
	plain, _ := chatOK(t, "Hello\n", chatArgs(t)...)
	if chatted == plain {
		t.Errorf("chat --lora: the base model's reply %q", chatted)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--lora-scaled", lora}, exitUsage, "FILE:SCALE"},
		{[]string{"--lora-scaled", lora + ":x"}, exitUsage, "FILE:SCALE"},
		{[]string{"--lora-scaled", lora + ":NaN"}, exitUsage, "FILE:SCALE"},
		{[]string{"--lora", filepath.Join(t.TempDir(), "missing.gguf")}, exitError, "missing.gguf"},
		{[]string{"--lora", stories}, exitError, "not an adapter"},
		{[]string{"--lora", testllama.LoRA(t, "llama-2-tiny-random.gguf", 4, 1)}, exitError, "do not fit the model's"},
	} {
		_, stderr, code := cli(t, "", append(append(slices.Clone(greedy), tc.args...), "hi")...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and one line with %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
}

// TestFlashAttnSpellings: run, chat, serve and bench read -fa with the
// same spellings (llama.cpp's on, off, auto, 1, 0, -1), and refuse the same
// values with the same message; run and chat take -s for --seed.
func TestFlashAttnSpellings(t *testing.T) {
	parse := map[string]func(t *testing.T, fa string) (llama.FlashAttention, error){
		"run": func(t *testing.T, fa string) (llama.FlashAttention, error) {
			var got *runOptions
			_, err := parseFlags(t, newRunCmd(&iostreams{}, func(o *runOptions) error { got = o; return nil }), "run", "-m", "m", "-fa", fa, "x")
			if err != nil {
				return 0, err
			}
			return got.flashAttn, nil
		},
		"chat": func(t *testing.T, fa string) (llama.FlashAttention, error) {
			var got *chatOptions
			_, err := parseFlags(t, newChatCmd(&iostreams{}, func(o *chatOptions) error { got = o; return nil }), "chat", "-m", "m", "-fa", fa)
			if err != nil {
				return 0, err
			}
			return got.Gen.flashAttn, nil
		},
		"serve": func(t *testing.T, fa string) (llama.FlashAttention, error) {
			var got *serveOptions
			_, err := parseFlags(t, newServeCmd(&iostreams{}, func(o *serveOptions) error { got = o; return nil }), "serve", "-m", "m", "-fa", fa)
			if err != nil {
				return 0, err
			}
			return got.flashAttn, nil
		},
		"bench": func(t *testing.T, fa string) (llama.FlashAttention, error) {
			o, err := parseBench(t, "-m", "m", "-fa", fa)
			if err != nil {
				return 0, err
			}
			if len(o.fa) != 1 {
				t.Fatalf("bench -fa %s: %v", fa, o.fa)
			}
			return o.fa[0], nil
		},
	}
	want := map[string]llama.FlashAttention{
		"on": llama.FlashAttentionOn, "1": llama.FlashAttentionOn, "true": llama.FlashAttentionOn, "ON": llama.FlashAttentionOn,
		"off": llama.FlashAttentionOff, "0": llama.FlashAttentionOff, "false": llama.FlashAttentionOff,
		"auto": llama.FlashAttentionAuto, "-1": llama.FlashAttentionAuto,
	}
	for cmd, p := range parse {
		for s, w := range want {
			if got, err := p(t, s); err != nil || got != w {
				t.Errorf("%s -fa %s: %v, %v; want %v", cmd, s, got, err, w)
			}
		}
		_, err := p(t, "2")
		if err == nil || !strings.Contains(err.Error(), `--flash-attn must be on, off or auto (or 1, 0, -1), not "2"`) {
			t.Errorf("%s -fa 2: %v", cmd, err)
		}
	}
	if o, err := parseBench(t, "-m", "m", "-fa", "0,1"); err != nil || !slices.Equal(o.fa, []llama.FlashAttention{llama.FlashAttentionOff, llama.FlashAttentionOn}) {
		t.Errorf("bench -fa 0,1: %v, %v", o, err)
	}

	var run *runOptions
	if _, err := parseFlags(t, newRunCmd(&iostreams{}, func(o *runOptions) error { run = o; return nil }), "run", "-m", "m", "-s", "7", "x"); err != nil || run.seed != 7 {
		t.Errorf("run -s 7: %v, %+v", err, run)
	}
	var ch *chatOptions
	if _, err := parseFlags(t, newChatCmd(&iostreams{}, func(o *chatOptions) error { ch = o; return nil }), "chat", "-m", "m", "-s", "8"); err != nil || ch.Gen.seed != 8 {
		t.Errorf("chat -s 8: %v, %+v", err, ch)
	}
}
