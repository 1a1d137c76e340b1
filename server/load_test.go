package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// streamResult is what a streaming client read.
type streamResult struct {
	text   string
	finish string
	chunks int
	usage  *usageJSON
	done   bool // saw data: [DONE]
}

// streamCompletion posts a streaming request and reads its events. With
// stopAfter > 0 it closes the connection after that many chunks.
func streamCompletion(ctx context.Context, url string, body any, stopAfter int) (streamResult, error) {
	var res streamResult
	data, err := json.Marshal(body)
	if err != nil {
		return res, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(string(data)))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return res, fmt.Errorf("status %d: %v", resp.StatusCode, e)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			res.done = true
			break
		}
		var c struct {
			Choices []struct {
				Text         string `json:"text"`
				Delta        struct{ Content string }
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *usageJSON `json:"usage"`
			Error any        `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			return res, err
		}
		if c.Error != nil {
			return res, fmt.Errorf("stream error: %v", c.Error)
		}
		if c.Usage != nil {
			res.usage = c.Usage
		}
		for _, ch := range c.Choices {
			res.text += ch.Text + ch.Delta.Content
			if ch.FinishReason != nil {
				res.finish = *ch.FinishReason
			}
		}
		res.chunks++
		if stopAfter > 0 && res.chunks >= stopAfter {
			return res, nil
		}
	}
	return res, sc.Err()
}

var loadPrompts = []string{"Once upon a time", "The little dog", "Lily and Ben went to", "One day, a cat"}

// TestConcurrentStreams runs 32 streaming clients against 8 slots: every
// one completes, with the text a lone request gets.
func TestConcurrentStreams(t *testing.T) {
	cfg := testConfig(t)
	cfg.Parallel, cfg.QueueSize = 8, 32
	_, base := startServer(t, cfg)
	url := base + "/v1/completions"
	const maxTokens = 24
	body := func(p string) map[string]any {
		return map[string]any{"prompt": p, "max_tokens": maxTokens, "temperature": 0, "stream": true,
			"stream_options": map[string]any{"include_usage": true}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]string{}
	for _, p := range loadPrompts {
		r, err := streamCompletion(ctx, url, body(p), 0)
		if err != nil {
			t.Fatal(err)
		}
		want[p] = r.text
	}

	const clients = 32
	results := make([]streamResult, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		wg.Go(func() {
			results[i], errs[i] = streamCompletion(ctx, url, body(loadPrompts[i%len(loadPrompts)]), 0)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i := range clients {
		p := loadPrompts[i%len(loadPrompts)]
		switch r := results[i]; {
		case errs[i] != nil:
			t.Errorf("client %d: %v", i, errs[i])
		case !r.done || r.usage == nil:
			t.Errorf("client %d: stream ended without usage and [DONE]: %+v", i, r)
		case r.text != want[p]:
			t.Errorf("client %d (%q): text %q, want %q (alone)", i, p, r.text, want[p])
		case r.usage.CompletionTokens != maxTokens && r.finish == "length":
			t.Errorf("client %d: %d tokens, finish %s", i, r.usage.CompletionTokens, r.finish)
		}
	}
	t.Logf("%d clients in %v", clients, elapsed)
	if v := metric(t, base, "llamago_slots_busy"); v != 0 {
		t.Errorf("slots busy after all clients: %v", v)
	}
}

// TestDisconnectFreesSlot: a client that goes away mid-stream frees its
// slot at once, and the next request gets it.
func TestDisconnectFreesSlot(t *testing.T) {
	cfg := testConfig(t)
	cfg.Parallel, cfg.SlotContext = 1, 2048 // generations long enough to outlast the test
	_, base := startServer(t, cfg)
	url := base + "/v1/completions"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	long := map[string]any{"prompt": "Once upon a time", "max_tokens": cfg.SlotContext, "ignore_eos": true, "stream": true}
	for range 3 {
		r, err := streamCompletion(ctx, url, long, 2)
		if err != nil {
			t.Fatal(err)
		}
		if r.chunks != 2 {
			t.Fatalf("read %d chunks", r.chunks)
		}
		// streamCompletion closed the connection: the slot comes free.
		waitFor(t, 10*time.Second, "the slot to be freed", func() bool {
			return metric(t, base, "llamago_slots_busy") == 0
		})
	}
	if d := metric(t, base, "llamago_client_disconnects_total"); d != 3 {
		t.Errorf("disconnects = %v, want 3", d)
	}
	if g := metric(t, base, "llamago_generated_tokens_total"); g >= float64(cfg.SlotContext) {
		t.Errorf("generated %v tokens: the abandoned generations went on", g)
	}
	// The slot serves the next request, with the cached prompt.
	code, body := post(t, url, `{"prompt":"Once upon a time","max_tokens":4}`)
	if code != 200 {
		t.Fatalf("after disconnects: %d %s", code, body)
	}
	if u := decode[struct{ Usage usageJSON }](t, body).Usage; u.PromptTokensDetails.CachedTokens == 0 {
		t.Errorf("the prompt was not reused from the cache: %+v", u)
	}
}

// TestQueueFull: with every slot busy and the queue full, a request gets
// 503 at once, and the server goes on serving.
func TestQueueFull(t *testing.T) {
	cfg := testConfig(t)
	cfg.Parallel, cfg.QueueSize, cfg.SlotContext = 1, 1, 2048
	_, base := startServer(t, cfg)
	url := base + "/v1/completions"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	long := map[string]any{"prompt": "Once upon a time", "max_tokens": cfg.SlotContext, "ignore_eos": true, "stream": true}

	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 2)
	for range 2 { // one in the slot, one in the queue
		wg.Go(func() {
			_, err := streamCompletion(ctx, url, long, 0)
			errc <- err
		})
	}
	waitFor(t, 10*time.Second, "a busy slot and a queued request", func() bool {
		return metric(t, base, "llamago_slots_busy") == 1 && metric(t, base, "llamago_queue_depth") == 1
	})
	code, body := post(t, url, `{"prompt":"Once upon a time","max_tokens":4}`)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("with the queue full: %d %s, want 503", code, body)
	}
	e := decode[struct{ Error apiErrorJSON }](t, body).Error
	if e.Code == nil || *e.Code != "queue_full" || e.Type == "" || e.Message == "" {
		t.Errorf("error = %+v", e)
	}
	cancel()
	for range 2 {
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("client: %v", err)
		}
	}
	waitFor(t, 10*time.Second, "the slot and the queue to empty", func() bool {
		return metric(t, base, "llamago_slots_busy") == 0 && metric(t, base, "llamago_queue_depth") == 0
	})
	if code, body := post(t, url, `{"prompt":"Once upon a time","max_tokens":4}`); code != 200 {
		t.Fatalf("after the queue emptied: %d %s", code, body)
	}
}

type apiErrorJSON struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// TestThroughput measures generated tokens per second of one stream, and
// of 8 streams at once with 8 slots. It reports the figures and asserts
// nothing about them: timing depends on the machine.
func TestThroughput(t *testing.T) {
	cfg := testConfig(t)
	cfg.Parallel, cfg.QueueSize = 8, 8
	_, base := startServer(t, cfg)
	url := base + "/v1/completions"
	const tokens = 200 // with the prompt, within the 256 cells attention spans anyway
	run := func(clients int) float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make([]error, clients)
		start := time.Now()
		for i := range clients {
			wg.Go(func() {
				var r streamResult
				r, errs[i] = streamCompletion(ctx, url, map[string]any{
					"prompt": loadPrompts[i%len(loadPrompts)], "max_tokens": tokens, "ignore_eos": true,
					"temperature": 0, "stream": true, "stream_options": map[string]any{"include_usage": true},
				}, 0)
				if errs[i] == nil && (r.usage == nil || r.usage.CompletionTokens != tokens) {
					errs[i] = fmt.Errorf("usage %+v", r.usage)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		return float64(clients*tokens) / time.Since(start).Seconds()
	}
	run(1) // warm up
	d0, c0 := metric(t, base, "llamago_decode_seconds_total"), metric(t, base, "llamago_decode_calls_total")
	single := run(1)
	d1, c1 := metric(t, base, "llamago_decode_seconds_total"), metric(t, base, "llamago_decode_calls_total")
	parallel := run(8)
	d2, c2 := metric(t, base, "llamago_decode_seconds_total"), metric(t, base, "llamago_decode_calls_total")
	t.Logf("single stream: %.0f tokens/s; 8 streams on 8 slots: %.0f tokens/s (%.2fx)", single, parallel, parallel/single)
	t.Logf("decode: %.3f ms a step alone, %.3f ms a step for 8 (%.2fx the tokens per second)",
		(d1-d0)/(c1-c0)*1e3, (d2-d1)/(c2-c1)*1e3, 8*(d1-d0)/(c1-c0)/((d2-d1)/(c2-c1)))
}

// TestPromptChunks: a prompt longer than a micro-batch is read in chunks,
// interleaved with another slot's generation, and gives the text it gives
// on a server of its own.
func TestPromptChunks(t *testing.T) {
	cfg := testConfig(t)
	cfg.BatchSize, cfg.UBatchSize = 64, 16
	_, alone := startServer(t, cfg)
	_, base := startServer(t, cfg)
	req := map[string]any{
		"prompt":     strings.Repeat("Once upon a time, there was a little girl named Lily. ", 8),
		"max_tokens": 16, "temperature": 0,
	}
	code, body := post(t, alone+"/v1/completions", req)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	want := decode[completionJSON](t, body)
	if want.Usage.PromptTokens < 100 {
		t.Fatalf("prompt of %d tokens, want more than 100", want.Usage.PromptTokens)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other := make(chan streamResult, 1)
	go func() {
		r, err := streamCompletion(ctx, base+"/v1/completions",
			map[string]any{"prompt": "The dog", "max_tokens": 200, "ignore_eos": true, "stream": true}, 0)
		if err != nil {
			t.Error(err)
		}
		other <- r
	}()
	waitFor(t, 10*time.Second, "the other generation to start", func() bool { return metric(t, base, "llamago_slots_busy") == 1 })
	code, body = post(t, base+"/v1/completions", req)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got := decode[completionJSON](t, body)
	if r := <-other; r.finish != "length" {
		t.Errorf("the other generation: %+v", r)
	}
	if got.Choices[0].Text != want.Choices[0].Text || got.Usage != want.Usage {
		t.Errorf("beside another generation: %q %+v; alone: %q %+v", got.Choices[0].Text, got.Usage, want.Choices[0].Text, want.Usage)
	}
}
