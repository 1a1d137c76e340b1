package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSpecFlags: the speculative decoding flags of run, chat and serve,
// llama.cpp's names with -md, and their usage errors.
func TestSpecFlags(t *testing.T) {
	var got *runOptions
	_, err := parseFlags(t, newRunCmd(&iostreams{}, func(o *runOptions) error { got = o; return nil }),
		"run", "-m", "m", "-md", "d.gguf", "--draft-max", "8", "--draft-min", "2", "--draft-p-min", "0.5", "x")
	if err != nil {
		t.Fatal(err)
	}
	if want := (specFlags{ModelDraft: "d.gguf", DraftMax: 8, DraftMin: 2, DraftPMin: 0.5}); got.Spec != want {
		t.Errorf("run: %+v, want %+v", got.Spec, want)
	}
	var chatGot *chatOptions
	if _, err := parseFlags(t, newChatCmd(&iostreams{}, func(o *chatOptions) error { chatGot = o; return nil }),
		"chat", "-m", "m", "--spec-ngram", "3"); err != nil || chatGot.Gen.Spec.NGram != 3 {
		t.Errorf("chat --spec-ngram 3: %v, %+v", err, chatGot)
	}
	var serveGot *serveOptions
	if _, err := parseFlags(t, newServeCmd(&iostreams{}, func(o *serveOptions) error { serveGot = o; return nil }),
		"serve", "-m", "m", "-md=d.gguf", "--draft-max", "4"); err != nil || serveGot.Spec.ModelDraft != "d.gguf" || serveGot.Spec.DraftMax != 4 {
		t.Errorf("serve -md=d.gguf: %v, %+v", err, serveGot)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-md", "d", "--spec-ngram", "2"}, "not both"},
		{[]string{"--spec-ngram", "-1"}, "--spec-ngram"},
		{[]string{"--draft-max", "1000"}, "--draft-max"},
		{[]string{"--draft-max", "4", "--draft-min", "5"}, "--draft-min"},
		{[]string{"--draft-p-min", "2"}, "--draft-p-min"},
		{[]string{"--draft-p-min", "NaN"}, "--draft-p-min"},
	} {
		for _, sub := range []string{"run", "serve"} {
			args := append(append([]string{sub, "-m", "m"}, tc.args...), "x")
			var code int
			var err error
			if sub == "run" {
				code, err = parseFlags(t, newRunCmd(&iostreams{}, func(*runOptions) error { return nil }), args...)
			} else {
				code, err = parseFlags(t, newServeCmd(&iostreams{}, func(*serveOptions) error { return nil }), args[:len(args)-1]...)
			}
			if err == nil || code != exitUsage || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %q: %v (exit %d), want a usage error with %q", sub, tc.args, err, code, tc.want)
			}
		}
	}
}

var draftTimingsRE = regexp.MustCompile(`draft: +(\d+) tokens drafted, (\d+) accepted \([0-9.]+%\)\n`)

// TestRunSpeculative: run with a draft model (the model itself) or prompt
// lookup prints what it prints without, and --timings and --json count
// the drafts; a draft with another vocabulary is one error line.
func TestRunSpeculative(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	greedy := []string{"run", "-m", stories, "--temp", "0", "-n", "60", "-c", "256", "-t", "1", "--timings"}
	run := func(args ...string) (string, string) {
		t.Helper()
		stdout, stderr, code := cli(t, "", append(append(slices.Clone(greedy), args...), "Once upon a time")...)
		if code != exitOK {
			t.Fatalf("run %q: exit %d, %s", args, code, stderr)
		}
		return stdout, stderr
	}
	want, stderr := run()
	if !strings.HasPrefix(want, storiesGreedy) || draftTimingsRE.MatchString(stderr) {
		t.Fatalf("run gave %q, stderr %q", want, stderr)
	}
	for _, args := range [][]string{{"-md", stories}, {"--spec-ngram", "1"}, {"-md", stories, "--draft-max", "3", "--draft-p-min", "0"}} {
		got, stderr := run(args...)
		if got != want {
			t.Errorf("%q: %q, want %q", args, got, want)
		}
		if m := draftTimingsRE.FindStringSubmatch(stderr); m == nil || m[2] == "0" {
			t.Errorf("%q: --timings %q", args, stderr)
		}
	}
	out, stderr, code := cli(t, "", "run", "-m", stories, "--temp", "0", "-n", "30", "-t", "1", "-md", stories, "--json", "Once upon a time")
	var res runJSON
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.Stats.DraftTokens == 0 || res.Stats.AcceptedTokens == 0 {
		t.Errorf("--json: exit %d, %s %s", code, out, stderr)
	}

	_, stderr, code = cli(t, "", append(slices.Clone(greedy), "-md", modelPath(t, "llama-2-tiny-random.gguf"), "hi")...)
	if code != exitError || !strings.Contains(stderr, "draft model does not match") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("mismatched draft: exit %d, stderr %q", code, stderr)
	}

	// chat: the same replies, and the drafts in --timings.
	plain, _ := chatOK(t, "Hello\nTell me more\n", chatArgs(t)...)
	for _, args := range [][]string{{"-md", stories, "--timings"}, {"--spec-ngram", "2", "--timings"}} {
		spec, stderr := chatOK(t, "Hello\nTell me more\n", chatArgs(t, args...)...)
		if spec != plain {
			t.Errorf("chat %q: %q, want %q", args, spec, plain)
		}
		if !draftTimingsRE.MatchString(stderr) {
			t.Errorf("chat %q: --timings %q", args, stderr)
		}
	}
}

// TestServeSpeculative: serve with a draft model answers as without it,
// and its usage counts the accepted and rejected drafts.
func TestServeSpeculative(t *testing.T) {
	model := modelPath(t, "stories260K.gguf")
	want, stderr, code := cli(t, "", "run", "-m", model, "-t", "1", "--temp", "0", "-n", "48", "Once upon a time")
	if code != exitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	base, stop := startServe(t, "-m", model, "--parallel", "2", "-c", "256", "--chat-template", "chatml", "-md", model, "--draft-max", "4")
	defer stop()
	status, body := postJSON(t, base+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":48,"temperature":0}`)
	if status != http.StatusOK {
		t.Fatalf("%d %s", status, body)
	}
	var resp struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
			Details          struct {
				Accepted int `json:"accepted_prediction_tokens"`
				Rejected int `json:"rejected_prediction_tokens"`
			} `json:"completion_tokens_details"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Choices) != 1 {
		t.Fatalf("%s (%v)", body, err)
	}
	if got := resp.Choices[0].Text; got != want {
		t.Errorf("server gave %q, run gave %q", got, want)
	}
	if d := resp.Usage.Details; d.Accepted == 0 || d.Accepted >= resp.Usage.CompletionTokens {
		t.Errorf("usage: %s", body)
	}
}

// TestBenchSpeculative: bench --e2e with a draft model runs each e2e test
// without and with speculation, the second counting the drafts.
func TestBenchSpeculative(t *testing.T) {
	stories := modelPath(t, "stories260K.gguf")
	out, stderr, code := cli(t, "", "bench", "-m", stories, "-p", "0", "-n", "0", "--e2e", "8,32", "-r", "1", "-t", "1",
		"--temp", "0", "-md", stories, "--draft-p-min", "0", "-o", "jsonl")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	type result struct {
		Test           string  `json:"test"`
		Spec           string  `json:"spec"`
		DraftTokens    int     `json:"draft_tokens"`
		AcceptedTokens int     `json:"accepted_tokens"`
		AcceptanceRate float64 `json:"acceptance_rate"`
	}
	var rs []result
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var one result
		if err := json.Unmarshal([]byte(line), &one); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		rs = append(rs, one)
	}
	if len(rs) != 2 || rs[0].Test != "e2e8+32" || rs[0].DraftTokens != 0 || rs[1].Test != "e2e8+32+spec" ||
		!strings.HasPrefix(rs[1].Spec, "draft stories260K.gguf") || rs[1].AcceptedTokens == 0 || rs[1].AcceptanceRate <= 0 {
		t.Errorf("results: %+v", rs)
	}
	if _, _, code := cli(t, "", "bench", "-m", stories, "--spec-ngram", "2"); code != exitUsage {
		t.Errorf("--spec-ngram without --e2e: exit %d", code)
	}
}
