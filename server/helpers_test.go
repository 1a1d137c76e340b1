package server

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/llamago/llamago/internal/testmodels"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llamago/llamago/chat"
	"github.com/llamago/llamago/llama"
)

// modelsDir is ../shared/models from the repository root, or
// $LLAMAGO_TEST_MODELS. The files are always there: a missing directory
// fails the test.
func modelsDir(t testing.TB) string {
	t.Helper()
	return testmodels.Dir(t)
}

var (
	storiesOnce  sync.Once
	storiesModel *llama.Model
	storiesErr   error
)

// stories is stories260K, loaded once for the package's tests.
func stories(t testing.TB) *llama.Model {
	t.Helper()
	dir := modelsDir(t)
	storiesOnce.Do(func() {
		storiesModel, storiesErr = llama.Load(context.Background(), filepath.Join(dir, "stories260K.gguf"))
	})
	if storiesErr != nil {
		t.Fatal(storiesErr)
	}
	return storiesModel
}

// testConfig is a small configuration for stories260K: one thread, small
// slots, chatml (the model has no template).
func testConfig(t testing.TB) Config {
	t.Helper()
	tmpl, err := chat.Builtin("chatml")
	if err != nil {
		t.Fatal(err)
	}
	return Config{Parallel: 2, SlotContext: 256, BatchSize: 256, UBatchSize: 256, Threads: 1, Template: tmpl}
}

// startServer serves cfg on a loopback port and returns the server and its
// base URL ("http://127.0.0.1:PORT"). It is shut down at the end of the test.
func startServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	s, err := New(stories(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
		s.Close()
	})
	return s, "http://" + l.Addr().String()
}

var httpClient = &http.Client{Timeout: 60 * time.Second}

// post sends body (a string, []byte or a value to marshal) as JSON and
// returns the status and the response body.
func post(t testing.TB, url string, body any, header ...string) (int, []byte) {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
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

func get(t testing.TB, url string, header ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := httpClient.Do(req)
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

// decode unmarshals a response body, failing the test on error.
func decode[T any](t testing.TB, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("bad JSON %q: %v", data, err)
	}
	return v
}

// metric returns the value of a series in the /metrics text, -1 if absent.
func metric(t testing.TB, base, series string) float64 {
	t.Helper()
	_, body := get(t, base+"/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if name, v, ok := strings.Cut(line, " "); ok && name == series {
			var f float64
			if err := json.Unmarshal([]byte(v), &f); err != nil {
				t.Fatalf("metric %s: %q", series, v)
			}
			return f
		}
	}
	return -1
}

// waitFor polls cond every 10 ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
