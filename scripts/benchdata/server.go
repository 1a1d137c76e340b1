package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// serverCase is one measurement of `llamago serve`: completion tokens per
// second of one streaming client against Streams clients at once, on a
// server with --parallel Streams. Every request generates MaxTokens tokens
// (ignore_eos), so the two sides do the same work per request.
type serverCase struct {
	Model     string // {{DIR}} and {{MODELS}} are substituted
	Threads   int    // 0: the server's default
	MaxTokens int
	Streams   int
	Requests  int // per client
}

// serverResult is what serverCase measured.
type serverResult struct {
	serverCase
	Single, Parallel float64 // completion tokens per second
}

func serverCases(quick bool) []serverCase {
	if quick {
		return []serverCase{{Model: "{{MODELS}}/stories260K.gguf", MaxTokens: 64, Streams: 8, Requests: 2}}
	}
	return []serverCase{
		{Model: "{{MODELS}}/stories260K.gguf", MaxTokens: 256, Streams: 8, Requests: 6},
		{Model: "{{MODELS}}/stories260K.gguf", Threads: 1, MaxTokens: 256, Streams: 8, Requests: 6},
		{Model: "{{DIR}}/llama-60m/llama-60m-Q8_0.gguf", MaxTokens: 64, Streams: 8, Requests: 3},
		{Model: "{{DIR}}/llama-60m/llama-60m-Q4_0.gguf", MaxTokens: 64, Streams: 8, Requests: 3},
	}
}

var servingRE = regexp.MustCompile(`serving .* at (http://\S+)/v1`)

// measureServer starts `llamago serve` on a free loopback port, warms it
// up, then times Requests requests from one client and Requests requests
// from each of Streams clients at once.
func measureServer(ctx context.Context, bin string, c serverCase) (serverResult, error) {
	res := serverResult{serverCase: c}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	args := []string{"serve", "-m", c.Model, "--parallel", strconv.Itoa(c.Streams), "--port", "0", "--offline"}
	if c.Threads > 0 {
		args = append(args, "-t", strconv.Itoa(c.Threads))
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(os.Interrupt)

	base := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var sent bool
		for sc.Scan() {
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				base <- m[1]
				sent = true
			}
		}
		if !sent {
			close(base)
		}
	}()
	var url string
	select {
	case u, ok := <-base:
		if !ok {
			return res, fmt.Errorf("llamago serve -m %s exited before serving", c.Model)
		}
		url = u
	case <-time.After(time.Minute):
		return res, fmt.Errorf("llamago serve -m %s: not serving after a minute", c.Model)
	}

	client := &http.Client{Timeout: 10 * time.Minute}
	if _, err := complete(ctx, client, url, c.MaxTokens); err != nil {
		return res, fmt.Errorf("warm-up: %w", err)
	}
	run := func(clients int) (float64, error) {
		var (
			mu     sync.Mutex
			tokens int
			first  error
			wg     sync.WaitGroup
		)
		start := time.Now()
		for range clients {
			wg.Go(func() {
				for range c.Requests {
					n, err := complete(ctx, client, url, c.MaxTokens)
					mu.Lock()
					tokens += n
					if err != nil && first == nil {
						first = err
					}
					mu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		if first != nil {
			return 0, first
		}
		if want := clients * c.Requests * c.MaxTokens; tokens != want {
			return 0, fmt.Errorf("%d completion tokens, want %d", tokens, want)
		}
		return float64(tokens) / time.Since(start).Seconds(), nil
	}
	if res.Single, err = run(1); err != nil {
		return res, err
	}
	if res.Parallel, err = run(c.Streams); err != nil {
		return res, err
	}
	return res, nil
}

// complete makes one streaming completion request and returns the number
// of completion tokens its usage reports.
func complete(ctx context.Context, client *http.Client, base string, maxTokens int) (int, error) {
	body, _ := json.Marshal(map[string]any{
		"prompt": "Once upon a time", "max_tokens": maxTokens,
		"temperature": 0, "ignore_eos": true, "stream": true,
		"stream_options": map[string]any{"include_usage": true},
	})
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/completions", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return 0, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	n := -1
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			break
		}
		var chunk struct {
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return 0, err
		}
		if chunk.Usage != nil {
			n = chunk.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("stream ended without usage")
	}
	return n, nil
}

// serverTable renders the server measurements.
func serverTable(rs []serverResult) string {
	var b strings.Builder
	b.WriteString("| model | threads | tokens per request | 1 stream t/s | streams | all streams t/s | ratio |\n")
	b.WriteString("| :-- | --: | --: | --: | --: | --: | --: |\n")
	for _, r := range rs {
		th := "default"
		if r.Threads > 0 {
			th = strconv.Itoa(r.Threads)
		}
		name := strings.TrimSuffix(filepath.Base(r.Model), ".gguf")
		fmt.Fprintf(&b, "| %s | %s | %d | %.0f | %d | %.0f | %.2f× |\n",
			name, th, r.MaxTokens, r.Single, r.Streams, r.Parallel, r.Parallel/r.Single)
	}
	return b.String()
}
