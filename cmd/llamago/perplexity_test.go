package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// storyPath is the perplexity tests' text.
func storyPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "llama", "testdata", "story.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var perplexityOutput = regexp.MustCompile(`^(\[\d+\]\d+\.\d{4},)+\nFinal estimate: PPL = \d+\.\d{4} \+/- \d+\.\d{5}\n$`)

func TestPerplexityCommand(t *testing.T) {
	model, text := modelPath(t, "stories260K.gguf"), storyPath(t)
	// One chunk a batch, and four chunks a batch in four sequences: the
	// same numbers.
	out1, errOut, code := cli(t, "", "perplexity", "-m", model, "-f", text, "-c", "64", "-b", "64", "-t", "1")
	if code != 0 || !perplexityOutput.MatchString(out1) {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, out1, errOut)
	}
	if !strings.Contains(errOut, "chunks of 64, batch 64, 1 sequences") {
		t.Errorf("stderr: %s", errOut)
	}
	out4, errOut, code := cli(t, "", "perplexity", "-m", model, "-f", text, "-c", "64", "-b", "256", "-t", "1")
	if code != 0 || out4 != out1 || !strings.Contains(errOut, "batch 256, 4 sequences") {
		t.Errorf("with four sequences: exit %d, stdout %q (one: %q), stderr %s", code, out4, out1, errOut)
	}
	// --chunks and standard input.
	b, err := os.ReadFile(text)
	if err != nil {
		t.Fatal(err)
	}
	out, _, code := cli(t, string(b), "perplexity", "-m", model, "-f", "-", "-c", "64", "--chunks", "2")
	if code != 0 || !strings.HasPrefix(out1, strings.Split(out, "\n")[0]) || strings.Count(out, "[") != 2 {
		t.Errorf("--chunks 2: exit %d, %q", code, out)
	}
}

func TestPerplexityKLDivergence(t *testing.T) {
	model, text := modelPath(t, "stories260K.gguf"), storyPath(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.kld")
	out, errOut, code := cli(t, "", "perplexity", "-m", model, "-f", text, "-c", "64", "--chunks", "4", "--kl-divergence-base", base)
	if code != 0 || !perplexityOutput.MatchString(out) {
		t.Fatalf("base: exit %d, %q, %s", code, out, errOut)
	}
	out, errOut, code = cli(t, "", "perplexity", "-m", model, "-f", text, "--kl-divergence", base)
	if code != 0 {
		t.Fatalf("compare: exit %d, %s", code, errOut)
	}
	for _, want := range []string{
		"base: stories260K.gguf\n",
		"Mean ln(PPL(Q)/PPL(base))     :   0.000000 ±   0.000000\n",
		"Mean PPL(Q)/PPL(base)         :   1.000000 ±   0.000000\n",
		"Mean    KLD:   0.000000 ±   0.000000\n",
		"99.9%   KLD:   0.000000\n",
		"Same top p: 100.000 ± 0.000 %\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the model against itself: no %q in\n%s", want, out)
		}
	}
	if n := strings.Count(out, "100.000 ± 0.000 %\n"); n != 5 {
		t.Errorf("%d lines of 100%% agreement, want 4 chunks and the total:\n%s", n, out)
	}

	// Another text, another model, not a base file: refused.
	other := filepath.Join(dir, "other.txt")
	b, _ := os.ReadFile(text)
	os.WriteFile(other, append([]byte("A different beginning. "), b...), 0o644)
	for _, tt := range []struct {
		name  string
		args  []string
		wants string
	}{
		{"another text", []string{"-m", model, "-f", other, "--kl-divergence", base}, "made from another text"},
		{"another model", []string{"-m", modelPath(t, "llama-2-tiny-random.gguf"), "-f", text, "--kl-divergence", base}, "another vocabulary or shape"},
		{"not a base", []string{"-m", model, "-f", text, "--kl-divergence", text}, "not a KL-divergence base file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := cli(t, "", append([]string{"perplexity"}, tt.args...)...)
			if code != exitError || !strings.Contains(errOut, tt.wants) || strings.Contains(out, "KLD") {
				t.Errorf("exit %d, stdout %q, stderr %s", code, out, errOut)
			}
		})
	}
}

func TestPerplexityUsage(t *testing.T) {
	model, text := modelPath(t, "stories260K.gguf"), storyPath(t)
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no text", []string{"-m", model}, exitUsage, "--file is required"},
		{"small window", []string{"-m", model, "-f", text, "-c", "2"}, exitUsage, "--ctx-size"},
		{"both KL modes", []string{"-m", model, "-f", text, "--kl-divergence", "a", "--kl-divergence-base", "b"}, exitUsage, "exclude each other"},
		{"text too short", []string{"-m", model, "-f", text, "-c", "4096"}, exitError, "needs at least 8192"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := cli(t, "", append([]string{"perplexity"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %s", code, errOut)
			}
		})
	}
}

func TestQuantsCommand(t *testing.T) {
	dir := t.TempDir()
	vocab := modelPath(t, "vocab/ggml-vocab-llama-spm.gguf")
	for _, q := range []string{"F16", "Q8_0", "Q4_0"} {
		if _, errOut, code := cli(t, "", "synth", "--shape", "tiny", "--vocab", vocab, "--type", q, "--seed", "1", "-o", filepath.Join(dir, "tiny-"+q+".gguf")); code != 0 {
			t.Fatalf("synth %s: %s", q, errOut)
		}
	}
	plot := filepath.Join(t.TempDir(), "quants.svg")
	// A speed taken from bench results rather than measured.
	speed := filepath.Join(t.TempDir(), "speed.jsonl")
	os.WriteFile(speed, []byte(`{"model_filename":"/elsewhere/tiny-Q8_0.gguf","test":"pp16","n_prompt":16,"n_threads":1,"avg_ts":12345.67,"stddev_ts":1}`+"\n"), 0o644)
	out, errOut, code := cli(t, "", "quants", "-m", dir, "-f", storyPath(t), "-c", "64", "--chunks", "2",
		"-p", "16", "-n", "4", "-r", "1", "-t", "1", "--plot", plot, "--speed", speed)
	if code != 0 {
		t.Fatalf("exit %d, %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "| model | size | pp16 t/s | tg4 t/s | PPL |") {
		t.Fatalf("table:\n%s", out)
	}
	// Largest first: the F16 base against itself, then the quantizations.
	for i, want := range []string{"| tiny-F16 (base) |", "| tiny-Q8_0 |", "| tiny-Q4_0 |"} {
		if !strings.HasPrefix(lines[2+i], want) {
			t.Errorf("row %d: %s, want %s...", i, lines[2+i], want)
		}
	}
	if !strings.HasPrefix(lines[3], "| tiny-Q8_0 | ") || !strings.Contains(lines[3], " | 12345.67 ± 1.00 | ") {
		t.Errorf("Q8_0 row without the speed of --speed: %s", lines[3])
	}
	if !strings.Contains(lines[2], "| 0.000000 ± 0.000000 | 0.000000 | 0.000000 | 0.000000 | 100.00 ± 0.00 % |") {
		t.Errorf("base row: %s", lines[2])
	}
	for _, l := range lines[3:] {
		if strings.Contains(l, "| 0.000000 ± ") {
			t.Errorf("a quantization with no KL divergence: %s", l)
		}
	}
	svg, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<svg", "Q8_0", "Q4_0", "F16", "mean KL divergence", "same top token"} {
		if !strings.Contains(string(svg), s) {
			t.Errorf("plot has no %q", s)
		}
	}
	if _, errOut, code := cli(t, "", "quants", "-m", dir, "-f", storyPath(t), "--plot", "x.pdf"); code != exitUsage || !strings.Contains(errOut, "--plot") {
		t.Errorf("--plot x.pdf: exit %d, %s", code, errOut)
	}
}
