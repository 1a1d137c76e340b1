package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/server"
)

func TestServeFlags(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o *serveOptions)
		wantErr string
	}{
		{name: "defaults", args: []string{"-m", "m.gguf"}, check: func(t *testing.T, o *serveOptions) {
			if o.Host != "127.0.0.1" || o.Port != 8080 || o.Parallel != server.DefaultParallel || o.CtxSize != 0 ||
				o.Queue != server.DefaultQueueSize || o.ThreadsBatch != o.Threads || o.flashAttn != llama.FlashAttentionAuto ||
				o.MaxBodyBytes != server.DefaultMaxBodyBytes || o.APIKey != "" || len(o.CORS) != 0 || o.KVUnified {
				t.Errorf("defaults: %+v", o)
			}
		}},
		{name: "everything", args: []string{
			"-m", "m.gguf", "--host", "0.0.0.0", "--port", "0", "--parallel", "8", "-c", "2048", "-b", "512", "-ub", "128",
			"-t", "2", "-tb", "3", "-ngl", "0", "-fa", "off", "-ctk", "q8_0", "--queue", "0", "--max-prompt-tokens", "100",
			"--max-tokens", "50", "--api-key-file", keyFile, "--cors", "https://a.example", "--cors", "*",
			"--max-body-bytes", "1000", "--read-timeout", "5s", "--write-timeout", "0", "--shutdown-timeout", "1s",
			"--alias", "gpt-3.5-turbo", "--alias", "davinci", "--strict-model", "--chat-template", "chatml", "--kv-unified", "-q",
		}, check: func(t *testing.T, o *serveOptions) {
			if o.Host != "0.0.0.0" || o.Port != 0 || o.Parallel != 8 || o.CtxSize != 2048 || o.BatchSize != 512 ||
				o.UBatchSize != 128 || o.Threads != 2 || o.ThreadsBatch != 3 || o.GPULayers != 0 ||
				o.flashAttn != llama.FlashAttentionOff || o.cacheK != llama.CacheQ8_0 || o.Queue != 0 ||
				o.MaxPromptTokens != 100 || o.MaxTokens != 50 || len(o.CORS) != 2 || o.MaxBodyBytes != 1000 ||
				o.ReadTimeout != 5*time.Second || o.WriteTimeout != 0 || o.ShutdownTimeout != time.Second ||
				len(o.Aliases) != 2 || !o.StrictModel || o.builtin != "chatml" || !o.KVUnified || !o.Quiet {
				t.Errorf("parsed: %+v", o)
			}
			if key, err := o.apiKey(); err != nil || key != "s3cret" {
				t.Errorf("apiKey() = %q, %v", key, err)
			}
		}},
		{name: "no model", args: nil, wantErr: "--model is required"},
		{name: "bad port", args: []string{"-m", "m", "--port", "70000"}, wantErr: "--port"},
		{name: "bad parallel", args: []string{"-m", "m", "--parallel", "0"}, wantErr: "--parallel"},
		{name: "batch below parallel", args: []string{"-m", "m", "--parallel", "8", "-b", "4"}, wantErr: "--batch-size"},
		{name: "negative queue", args: []string{"-m", "m", "--queue", "-1"}, wantErr: "--queue"},
		{name: "tiny context", args: []string{"-m", "m", "-c", "4"}, wantErr: "--ctx-size"},
		{name: "two keys", args: []string{"-m", "m", "--api-key", "a", "--api-key-file", keyFile}, wantErr: "cannot be used together"},
		{name: "bad template", args: []string{"-m", "m", "--chat-template", "no-such-template"}, wantErr: "--chat-template"},
		{name: "bad flash attention", args: []string{"-m", "m", "-fa", "maybe"}, wantErr: "--flash-attn"},
		{name: "negative timeout", args: []string{"-m", "m", "--read-timeout", "-1s"}, wantErr: "--read-timeout"},
		{name: "argument", args: []string{"-m", "m", "extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *serveOptions
			cmd := newServeCmd(&iostreams{}, func(o *serveOptions) error { got = o; return nil })
			code, err := parseFlags(t, cmd, append([]string{"serve"}, tt.args...)...)
			if tt.wantErr != "" {
				if code != exitUsage || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("exit %d, err %v; want a usage error about %q", code, err, tt.wantErr)
				}
				return
			}
			if err != nil || got == nil {
				t.Fatalf("exit %d, err %v", code, err)
			}
			tt.check(t, got)
		})
	}
}

var servingLine = regexp.MustCompile(`serving \S+ at (http://\S+)/v1 `)

// startServe runs "llamago serve ARGS" in-process with a free port and
// returns its base URL, and a function that stops it (as Ctrl-C does) and
// returns its exit code and stderr.
func startServe(t *testing.T, args ...string) (base string, stop func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, append([]string{"serve", "--port", "0", "-t", "1"}, args...),
			&iostreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: &errOut})
	}()
	stopped := false
	stop = func() (int, string) {
		cancel()
		select {
		case code := <-done:
			stopped = true
			return code, errOut.String()
		case <-time.After(30 * time.Second):
			t.Fatalf("serve did not stop; stderr:\n%s", errOut.String())
		}
		return 0, ""
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := servingLine.FindStringSubmatch(errOut.String()); m != nil {
			return m[1], stop
		}
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("serve exited with %d:\n%s", code, errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start; stderr:\n%s", errOut.String())
		}
	}
}

func postJSON(t *testing.T, url, body string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// TestServeMatchesRun: greedy output through the server equals "llamago
// run" with the same prompt and settings.
func TestServeMatchesRun(t *testing.T) {
	model := modelPath(t, "stories260K.gguf")
	want, stderr, code := cli(t, "", "run", "-m", model, "-t", "1", "--temp", "0", "-n", "48", "Once upon a time")
	if code != exitOK {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(want, storiesGreedy) {
		t.Fatalf("run gave %q", want)
	}

	base, stop := startServe(t, "-m", model, "--parallel", "2", "-c", "256", "--chat-template", "chatml")
	for _, path := range []string{"/v1/completions", "/v1/engines/stories260K/completions"} {
		status, body := postJSON(t, base+path, `{"prompt":"Once upon a time","max_tokens":48,"temperature":0}`)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		var resp struct {
			Choices []struct {
				Text         string `json:"text"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(body, &resp); err != nil || len(resp.Choices) != 1 {
			t.Fatalf("%s: %s (%v)", path, body, err)
		}
		if got := resp.Choices[0].Text; got != want || resp.Choices[0].FinishReason != "length" {
			t.Errorf("%s: server gave %q (%s), run gave %q", path, got, resp.Choices[0].FinishReason, want)
		}
	}
	code, stderr = stop()
	if code != exitInterrupt {
		t.Errorf("after Ctrl-C: exit %d, want %d; stderr:\n%s", code, exitInterrupt, stderr)
	}
	if !strings.Contains(stderr, "shutting down") || strings.Contains(stderr, "llamago: error") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestServeAPIKey: the key of $LLAMAGO_API_KEY is required, /health is
// open, and a bad model exits with one error line.
func TestServeAPIKey(t *testing.T) {
	t.Setenv("LLAMAGO_API_KEY", "k3y")
	base, _ := startServe(t, "-m", modelPath(t, "stories260K.gguf"), "-c", "128", "-q")
	if status, body := postJSON(t, base+"/v1/completions", `{"prompt":"Once","max_tokens":2}`); status != http.StatusUnauthorized {
		t.Errorf("no key: %d %s", status, body)
	}
	if status, body := postJSON(t, base+"/v1/completions", `{"prompt":"Once","max_tokens":2}`, "Authorization", "Bearer k3y"); status != http.StatusOK {
		t.Errorf("with the key: %d %s", status, body)
	}
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/health without the key: %d", resp.StatusCode)
	}

	_, stderr, code := cli(t, "", "serve", "-m", filepath.Join(t.TempDir(), "missing.gguf"), "--offline")
	if code != exitError {
		t.Errorf("missing model: exit %d", code)
	}
	oneLine(t, stderr)
}
