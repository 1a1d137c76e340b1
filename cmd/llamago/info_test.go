package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/models"
)

func TestInfoFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    infoOptions
		wantErr string
	}{
		{name: "defaults", args: []string{"info", "m.gguf"}, want: infoOptions{Model: "m.gguf", CacheTypeK: "f16", CacheTypeV: "f16"}},
		{name: "all", args: []string{"info", "-c", "8192", "-ctk", "q8_0", "-ctv=q4_0", "--json", "--template", "m"},
			want: infoOptions{Model: "m", CtxSize: 8192, CacheTypeK: "q8_0", CacheTypeV: "q4_0", JSON: true, Template: true}},
		{name: "long", args: []string{"info", "m", "--ctx-size=0", "--cache-type-k", "f32", "--cache-type-v", "bf16"},
			want: infoOptions{Model: "m", CacheTypeK: "f32", CacheTypeV: "bf16"}},
		{name: "no model", args: []string{"info"}, wantErr: "want one model, got 0 arguments"},
		{name: "two models", args: []string{"info", "a", "b"}, wantErr: "want one model, got 2 arguments"},
		{name: "negative context", args: []string{"info", "m", "-c", "-1"}, wantErr: "--ctx-size must be 0"},
		{name: "bad cache type", args: []string{"info", "m", "-ctv", "q3"}, wantErr: `--cache-type-v: unknown cache type "q3"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *infoOptions
			code, err := parseFlags(t, newInfoCmd(&iostreams{}, func(o *infoOptions) error { got = o; return nil }), tt.args...)
			if tt.wantErr != "" {
				if code != exitUsage || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("exit %d, error %v, want a usage error with %q", code, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.IO = nil
			if reflect.ValueOf(tt.want.Fit).IsZero() {
				tt.want.Fit = defaultFitFlags()
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("options\n%+v, want\n%+v", *got, tt.want)
			}
		})
	}
}

func TestInfoStories(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	// The KV cache of stories260K per position and layer: K and V of 4
	// heads of 8 values (64 embedding values over 8 heads).
	const kvPerToken = 5 * 4 * 8 // layers × KV heads × head size
	const weights = 292800 * 4   // F32

	stdout, stderr, code := cli(t, "", "info", stories)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"file            " + stories + "\n",
		"architecture    llama\n",
		"parameters      292.80 K (292800)\n",
		"file type       unknown (most tensors F32), 32.00 bits per weight\n",
		"size            1.13 MiB (1185376 bytes; weights 1.12 MiB)\n",
		"context         2048 tokens (trained)\n",
		"embedding       64\n",
		"layers          5\n",
		"heads           8, 4 for K and V (size 8)\n",
		"feed forward    172\n",
		"vocabulary      SPM (llama), 512 tokens\n",
		"special tokens  bos 1 \"<s>\", eos 2 \"</s>\", unknown 0 \"<unk>\"\n",
		"chat template   none\n",
		"tensors         48\n",
		"                F32    48 100.0%  " + strings.Repeat("█", 24) + "\n",
		// 2048 × 160 × 2 (K and V) × 2 bytes = 1.25 MiB
		"memory          2.37 MiB for 2048 tokens: weights 1.12 MiB + KV cache 1.25 MiB (K f16, V f16)\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// Every line is "label" padded to 16 columns, then the value.
	for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		if len(l) < 17 || l[15] != ' ' || l[16] == ' ' {
			t.Errorf("line not aligned: %q", l)
		}
	}

	stdout, _, code = cli(t, "", "info", "--json", "-c", "512", "-ctk", "q8_0", "-ctv", "q4_0", stories)
	if code != exitOK {
		t.Fatalf("--json: exit %d", code)
	}
	var got infoJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout)
	}
	want := infoJSON{
		Info: models.Info{
			Path: stories, Name: "llama", Architecture: "llama", GGUFVersion: 3, FileSize: 1185376, Parameters: 292800,
			FileType: "unknown", WeightsSize: weights, ContextLength: 2048, EmbeddingSize: 64, Layers: 5, Heads: 8,
			KVHeads: 4, FeedForward: 172, VocabModel: "llama", VocabSize: 512,
			SpecialTokens: map[string]int{"bos": 1, "eos": 2, "unknown": 0},
			TensorCount:   48, TensorTypes: map[string]int{"F32": 48},
		},
		Memory: models.MemoryEstimate{
			ContextSize: 512, CacheTypeK: "q8_0", CacheTypeV: "q4_0", Weights: weights,
			// q8_0: 34 bytes per 32 values; q4_0: 18.
			KVCache: 512*kvPerToken*34/32 + 512*kvPerToken*18/32,
		},
	}
	want.Memory.Total = want.Memory.Weights + want.Memory.KVCache
	if !reflect.DeepEqual(got, want) {
		t.Errorf("--json:\n%+v\nwant\n%+v", got, want)
	}
	if want.Memory.KVCache != 133120 {
		t.Errorf("hand computation: %d", want.Memory.KVCache)
	}
	if strings.Contains(stdout, "chat_template") {
		t.Errorf("--json has a chat template: %s", stdout)
	}
}

func TestInfoChatTemplate(t *testing.T) {
	phi3 := modelPath(t, "vocab/ggml-vocab-phi-3.gguf")
	f, err := gguf.Open(phi3)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, ok := f.String("tokenizer.chat_template")
	if !ok || len(tmpl) < 100 {
		t.Fatalf("no chat template in %s", phi3)
	}

	stdout, _, code := cli(t, "", "info", phi3)
	wantLine := "chat template   {{ bos_token }}{% for message in messages %}{% if (message['… (269 bytes; --template prints it)\n"
	if code != exitOK || !strings.Contains(stdout, wantLine) || !strings.Contains(stdout, "architecture    phi3\n") ||
		!strings.Contains(stdout, "vocabulary      SPM (llama), 32064 tokens, pre-tokenizer default\n") ||
		!strings.Contains(stdout, `eos 32000 "<|endoftext|>"`) {
		t.Errorf("exit %d:\n%s", code, stdout)
	}
	stdout, _, code = cli(t, "", "info", "--template", phi3)
	if code != exitOK || !strings.Contains(stdout, "chat template   269 bytes, below\n") || !strings.HasSuffix(stdout, "\n\n"+tmpl+"\n") {
		t.Errorf("--template: exit %d:\n%s", code, stdout)
	}
	stdout, _, _ = cli(t, "", "info", "--json", phi3)
	var got infoJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || got.ChatTemplate != tmpl || got.Architecture != "phi3" {
		t.Errorf("--json: %v: %+v", err, got.Info)
	}
	// A context of 4096 for phi3's 32 layers of 3072 values.
	if got.Memory.ContextSize != 4096 || got.Memory.KVCache != 4096*32*3072*2*2 {
		t.Errorf("--json memory: %+v", got.Memory)
	}
}

func TestInfoSplitModel(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	parts := splitGGUF(t, stories, t.TempDir(), "stories", 3)
	stdout, _, code := cli(t, "", "info", "--json", parts[0])
	var got infoJSON
	if err := json.Unmarshal([]byte(stdout), &got); code != exitOK || err != nil {
		t.Fatalf("exit %d, %v", code, err)
	}
	if got.Parameters != 292800 || got.TensorCount != 48 || got.WeightsSize != 292800*4 {
		t.Errorf("split model: %+v", got.Info)
	}
	_, stderr, code := cli(t, "", "info", parts[1])
	if code != exitOK {
		t.Errorf("second part: exit %d, %s", code, stderr)
	}
}

func TestInfoErrors(t *testing.T) {
	store := testStore(t)
	missing := filepath.Join(t.TempDir(), "missing.gguf")
	tests := []struct {
		name string
		args []string
		want *regexp.Regexp
	}{
		{"missing file", []string{"info", missing}, regexp.MustCompile(regexp.QuoteMeta(missing) + `" not found`)},
		{"directory", []string{"info", modelsDir(t)}, regexp.MustCompile(`is a directory`)},
		{"truncated", []string{"info", modelPath(t, "ollama-test-truncated.gguf")}, regexp.MustCompile(`ollama-test-truncated.gguf: gguf: .*too short`)},
		{"not GGUF", []string{"info", modelPath(t, "PROVENANCE.md")}, regexp.MustCompile(`PROVENANCE.md: gguf: `)},
		{"unknown name", []string{"info", "no-such-model"}, regexp.MustCompile(`model "no-such-model" not found \(searched: ` + regexp.QuoteMeta(store) + `\); .*llamago pull`)},
		// info never downloads.
		{"alias not pulled", []string{"info", "stories260k"}, regexp.MustCompile(`model "stories260k" not found .*; pull it with: llamago pull stories260k`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, "", tt.args...)
			if code != exitError || stdout != "" || !tt.want.MatchString(stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q, want %v", code, stdout, stderr, tt.want)
			}
			oneLine(t, stderr)
		})
	}
}
