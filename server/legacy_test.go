package server

import (
	"net/http"
	"strings"
	"testing"
)

type completionJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text         string `json:"text"`
		Index        int    `json:"index"`
		FinishReason string `json:"finish_reason"`
		Logprobs     *struct {
			Tokens     []string `json:"tokens"`
			TextOffset []int    `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage usageJSON `json:"usage"`
}

// TestLegacyEngines: requests shaped as the pre-1.0 Python library sends
// openai.Completion.create(engine=..., prompt=..., max_tokens=..., n=...,
// stop=..., temperature=...): no model in the body, the engine in the path.
func TestLegacyEngines(t *testing.T) {
	cfg := testConfig(t)
	cfg.Parallel = 3
	cfg.Aliases = []string{"davinci"}
	cfg.APIKey = "sk-legacy"
	_, base := startServer(t, cfg)
	auth := []string{"Authorization", "Bearer sk-legacy", "User-Agent", "OpenAI/v1 PythonBindings/0.28.1"}

	code, body := post(t, base+"/v1/engines/davinci/completions",
		`{"prompt": "Once upon a time", "max_tokens": 40, "n": 3, "stop": "\n", "temperature": 0.9}`, auth...)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	c := decode[completionJSON](t, body)
	if c.Object != "text_completion" || !strings.HasPrefix(c.ID, "cmpl-") || len(c.Choices) != 3 {
		t.Fatalf("response %s", body)
	}
	for i, ch := range c.Choices {
		if ch.Index != i || strings.Contains(ch.Text, "\n") || (ch.FinishReason != "stop" && ch.FinishReason != "length") {
			t.Errorf("choice %d: %+v", i, ch)
		}
	}
	if n := c.Usage.CompletionTokens; c.Usage.PromptTokens != 5 || n < 3 || n > 120 {
		t.Errorf("usage %+v", c.Usage)
	}

	// Greedy is the same through every route and name.
	greedy := `{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}`
	var texts []string
	for _, path := range []string{"/v1/engines/davinci/completions", "/v1/engines/stories260K/completions",
		"/engines/davinci/completions", "/v1/completions", "/completions"} {
		code, body := post(t, base+path, greedy, auth...)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		texts = append(texts, decode[completionJSON](t, body).Choices[0].Text)
	}
	for i, text := range texts {
		if text != texts[0] || !strings.HasPrefix(text, ", there was a little girl") {
			t.Errorf("route %d gave %q, route 0 %q", i, text, texts[0])
		}
	}

	// Several prompts, n each: choice i*n+j is prompt i's choice j; echo
	// puts the prompt first.
	code, body = post(t, base+"/v1/engines/davinci/completions",
		`{"prompt": ["Once upon a time", "The dog"], "max_tokens": 6, "n": 2, "temperature": 0, "echo": true, "logprobs": 1}`, auth...)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	c = decode[completionJSON](t, body)
	if len(c.Choices) != 4 {
		t.Fatalf("%d choices: %s", len(c.Choices), body)
	}
	for i, ch := range c.Choices {
		prompt := []string{"Once upon a time", "The dog"}[i/2]
		// The prompt's tokens come first, the first without a logprob.
		lp := ch.Logprobs
		if ch.Index != i || !strings.HasPrefix(ch.Text, prompt) || lp == nil || len(lp.Tokens) <= 6 ||
			lp.TextOffset[len(lp.Tokens)-6] != len(prompt) || lp.TextOffset[0] != 0 || ch.Text != c.Choices[i/2*2].Text {
			t.Errorf("choice %d: %+v", i, ch)
		}
	}
	if c.Usage.CompletionTokens != 24 {
		t.Errorf("usage %+v", c.Usage)
	}

	// An engine the server does not have is served by its model, which
	// the response names (see TestStrictModel); no key is refused.
	if code, body := post(t, base+"/v1/engines/text-davinci-002/completions", greedy, auth...); code != http.StatusOK ||
		!strings.Contains(string(body), `"model":"stories260K"`) {
		t.Errorf("unknown engine: %d %s", code, body)
	}
	if code, body := post(t, base+"/v1/engines/davinci/completions", greedy); code != http.StatusUnauthorized {
		t.Errorf("no key: %d %s", code, body)
	}
}
