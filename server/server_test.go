package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHealthMetricsTokenize(t *testing.T) {
	cfg := testConfig(t)
	cfg.APIKey = "k"
	_, base := startServer(t, cfg)
	auth := []string{"Authorization", "Bearer k"}

	code, body := get(t, base+"/health") // no key needed
	if h := decode[map[string]any](t, body); code != 200 || h["status"] != "ok" || h["slots_idle"] != float64(2) {
		t.Errorf("health: %d %s", code, body)
	}
	if code, _ := get(t, base+"/metrics"); code != 401 {
		t.Errorf("metrics without the key: %d", code)
	}

	code, body = post(t, base+"/tokenize", `{"content":"Once upon a time","add_special":true}`, auth...)
	toks := decode[struct{ Tokens []int }](t, body).Tokens
	if code != 200 || len(toks) != 5 || toks[0] != 1 {
		t.Fatalf("tokenize: %d %s", code, body)
	}
	code, body = post(t, base+"/tokenize", `{"content":"Once","with_pieces":true}`, auth...)
	if code != 200 || !strings.Contains(string(body), `"piece":"`) {
		t.Errorf("tokenize with pieces: %d %s", code, body)
	}
	code, body = post(t, base+"/detokenize", map[string]any{"tokens": toks[1:]}, auth...)
	if text := decode[struct{ Content string }](t, body).Content; code != 200 || strings.TrimSpace(text) != "Once upon a time" {
		t.Errorf("detokenize: %d %s", code, body)
	}

	code, body = post(t, base+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":7}`, auth...)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	_, body = get(t, base+"/metrics", auth...)
	text := string(body)
	for _, want := range []string{
		`llamago_requests_total{route="/v1/completions",code="200"} 1`,
		`llamago_requests_total{route="/tokenize",code="200"} 2`,
		`llamago_requests_total{route="/metrics",code="401"} 1`,
		"# TYPE llamago_generated_tokens_total counter", "llamago_generated_tokens_total 7",
		"llamago_prompt_tokens_total 5", "# TYPE llamago_tokens_per_second gauge", "llamago_queue_depth 0",
		"llamago_slots_total 2", "llamago_slots_busy 0", "llamago_kv_cache_size 512", "llamago_kv_cache_usage_ratio ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	// The slot holds the prompt and the generated tokens but the last,
	// which was sampled and never decoded.
	if !strings.Contains(text, "llamago_kv_cache_tokens 11\n") {
		t.Errorf("kv cache tokens after a 5+7 token request:\n%s", text)
	}
}

func TestCORS(t *testing.T) {
	cfg := testConfig(t)
	_, off := startServer(t, cfg)
	cfg.CORSOrigins = []string{"https://app.example"}
	_, on := startServer(t, cfg)

	preflight := func(base, origin string) *http.Response {
		req, _ := http.NewRequest("OPTIONS", base+"/v1/chat/completions", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := preflight(off, "https://app.example"); r.Header.Get("Access-Control-Allow-Origin") != "" || r.StatusCode != 405 {
		t.Errorf("CORS off: %d %v", r.StatusCode, r.Header)
	}
	r := preflight(on, "https://app.example")
	if r.StatusCode != 204 || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("CORS on: %d %v", r.StatusCode, r.Header)
	}
	if r := preflight(on, "https://evil.example"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("other origin: %v", r.Header)
	}
	req, _ := http.NewRequest("GET", on+"/v1/models", nil)
	req.Header.Set("Origin", "https://app.example")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("simple request: %v", resp.Header)
	}
}

// TestGracefulShutdown: Shutdown lets a generation in progress finish and
// refuses new connections.
func TestGracefulShutdown(t *testing.T) {
	cfg := testConfig(t)
	cfg.SlotContext = 1024
	s, base := startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res streamResult
	var err error
	var wg sync.WaitGroup
	wg.Go(func() {
		res, err = streamCompletion(ctx, base+"/v1/completions", map[string]any{
			"prompt": "Once upon a time", "max_tokens": 600, "ignore_eos": true, "stream": true,
		}, 0)
	})
	waitFor(t, 10*time.Second, "the generation to start", func() bool {
		return s.met.slotsBusy.Load() == 1
	})
	if n := s.met.generatedTokens.Load(); n >= 600 {
		t.Logf("the generation ended before Shutdown began (%d tokens)", n)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	if err != nil || !res.done || res.finish != "length" {
		t.Errorf("in-flight request: %+v, %v", res, err)
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		t.Error("the listener still accepts connections after Shutdown")
	}
}

// TestForcedShutdown: when the grace period ends first, Shutdown cancels
// the generations still running and returns.
func TestForcedShutdown(t *testing.T) {
	cfg := testConfig(t)
	cfg.SlotContext = 2048
	s, base := startServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := streamCompletion(ctx, base+"/v1/completions", map[string]any{
			"prompt": "Once upon a time", "max_tokens": 2000, "ignore_eos": true, "stream": true,
		}, 0)
		done <- err
	}()
	waitFor(t, 10*time.Second, "the generation to start", func() bool { return s.met.slotsBusy.Load() == 1 })
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer scancel()
	start := time.Now()
	if err := s.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline", err)
	}
	select {
	case <-done: // the stream was cut
	case <-time.After(10 * time.Second):
		t.Fatal("the client was not released")
	}
	waitFor(t, 10*time.Second, "the slot to be freed", func() bool { return s.met.slotsBusy.Load() == 0 })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("forced shutdown took %v", d)
	}
}
