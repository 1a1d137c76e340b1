package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// TestAdapterServed: a LoRA adapter in Config.ContextOptions applies to
// what the server generates, as to a context of the package llama.
func TestAdapterServed(t *testing.T) {
	m := stories(t)
	a, err := m.LoadAdapter(testllama.LoRA(t, "stories260K.gguf", 4, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	complete := func(opts ...llama.ContextOption) string {
		c, err := m.NewContext(append([]llama.ContextOption{llama.WithContextSize(256), llama.WithThreads(1)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r, err := c.Complete(context.Background(), "Once upon a time", llama.WithMaxTokens(20), llama.WithSampling(llama.WithGreedy()))
		if err != nil {
			t.Fatal(err)
		}
		return r.Text
	}
	want, plain := complete(llama.WithAdapter(a, 1)), complete()
	if want == plain {
		t.Fatalf("the adapter changes nothing: %q", want)
	}

	cfg := testConfig(t)
	cfg.ContextOptions = []llama.ContextOption{llama.WithAdapter(a, 1)}
	_, base := startServer(t, cfg)
	code, body := post(t, base+"/v1/completions", map[string]any{"prompt": "Once upon a time", "max_tokens": 20, "temperature": 0})
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	resp := decode[struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}](t, body)
	if len(resp.Choices) != 1 || resp.Choices[0].Text != want {
		t.Errorf("served with the adapter: %+v, want %q", resp.Choices, want)
	}
}
