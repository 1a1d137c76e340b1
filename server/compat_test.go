package server

import (
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

type legacyCompletion struct {
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Index        int    `json:"index"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		Logprobs     *struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []*float64           `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// TestAnyModelName: the 2022-era call, a legacy engine the server does not
// have, is served by its model, and the response names the model used;
// so is a chat naming another model. (TestSDKModelsAndErrors checks
// StrictModel.)
func TestAnyModelName(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	code, body := post(t, base+"/v1/engines/text-davinci-002/completions",
		`{"prompt":"Once upon a time","max_tokens":8,"n":2,"stop":["\n"],"temperature":0.7}`)
	if code != 200 {
		t.Fatalf("legacy call: %d %s", code, body)
	}
	c := decode[legacyCompletion](t, body)
	if c.Model != "stories260K" || len(c.Choices) != 2 || c.Choices[0].Text == "" {
		t.Errorf("legacy call: %s", body)
	}
	client, ctx := sdk(base), testContext(t)
	r, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: userMsg("Hi"), MaxTokens: openai.Int(4)})
	if err != nil || r.Model != "stories260K" {
		t.Errorf("chat with gpt-4o: %+v %v", r, err)
	}
}

// TestEchoLogprobs: echo with logprobs returns the prompt's tokens with
// theirs, the first null, as evaluation harnesses expect; max_tokens 0
// scores the prompt alone. The logprobs are those the model gives: the
// greedy continuation's first token is the most likely after the prompt.
func TestEchoLogprobs(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	code, body := post(t, base+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":0,"echo":true,"logprobs":2}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	c := decode[legacyCompletion](t, body)
	ch := c.Choices[0]
	lp := ch.Logprobs
	if ch.Text != "Once upon a time" || ch.FinishReason != "length" || lp == nil || c.Usage.CompletionTokens != 0 {
		t.Fatalf("max_tokens 0: %s", body)
	}
	n := c.Usage.PromptTokens
	if len(lp.Tokens) != n || len(lp.TokenLogprobs) != n || len(lp.TopLogprobs) != n || len(lp.TextOffset) != n {
		t.Fatalf("%d prompt tokens, logprobs %+v", n, lp)
	}
	if lp.TokenLogprobs[0] != nil || lp.TopLogprobs[0] != nil {
		t.Errorf("first token: %v %v, want null", lp.TokenLogprobs[0], lp.TopLogprobs[0])
	}
	for i := 1; i < n; i++ {
		v := lp.TokenLogprobs[i]
		if v == nil || *v > 0 || math.IsNaN(*v) || len(lp.TopLogprobs[i]) == 0 {
			t.Errorf("token %d (%q): %v %v", i, lp.Tokens[i], v, lp.TopLogprobs[i])
		}
	}
	// "time" follows "Once upon a" in stories: it is the likeliest token.
	last := lp.TopLogprobs[n-1]
	if best := maxKey(last); best != lp.Tokens[n-1] {
		t.Errorf("the likeliest token after the prompt is %q, the prompt has %q", best, lp.Tokens[n-1])
	}

	// With generation: the prompt's logprobs, then the generated tokens'.
	code, body = post(t, base+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":3,"echo":true,"logprobs":1,"temperature":0}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	c = decode[legacyCompletion](t, body)
	lp = c.Choices[0].Logprobs
	if len(lp.Tokens) != n+3 || lp.TokenLogprobs[0] != nil || lp.TokenLogprobs[n] == nil || !strings.HasPrefix(c.Choices[0].Text, "Once upon a time"+storiesGreedy[:1]) {
		t.Errorf("with generation: %s", body)
	}
	// The offsets point into the text.
	for i, off := range lp.TextOffset {
		if off > len(c.Choices[0].Text) || i > 0 && off < lp.TextOffset[i-1] {
			t.Errorf("text_offset %v of %q", lp.TextOffset, c.Choices[0].Text)
			break
		}
	}
	// Scoring agrees with generation: the logprob of the greedy token
	// after the prompt is the same either way.
	gen := decode[legacyCompletion](t, must200(t, base, `{"prompt":"Once upon a time","max_tokens":1,"logprobs":0,"temperature":0}`))
	scored := decode[legacyCompletion](t, must200(t, base, `{"prompt":"Once upon a time`+gen.Choices[0].Text+`","max_tokens":0,"echo":true,"logprobs":0}`))
	g, sc := gen.Choices[0].Logprobs, scored.Choices[0].Logprobs
	if k := len(sc.TokenLogprobs) - 1; len(g.TokenLogprobs) != 1 || sc.Tokens[k] != g.Tokens[0] || math.Abs(*sc.TokenLogprobs[k]-*g.TokenLogprobs[0]) > 1e-3 {
		t.Errorf("generated %q with %v, scored %q with %v", g.Tokens, *g.TokenLogprobs[0], sc.Tokens, *sc.TokenLogprobs[len(sc.TokenLogprobs)-1])
	}
	// max_tokens 0 without echo: nothing.
	code, body = post(t, base+"/v1/completions", `{"prompt":"Once","max_tokens":0}`)
	if c := decode[legacyCompletion](t, body); code != 200 || c.Choices[0].Text != "" || c.Choices[0].FinishReason != "length" {
		t.Errorf("max_tokens 0: %d %s", code, body)
	}
}

func maxKey(m map[string]float64) string {
	best, bv := "", math.Inf(-1)
	for k, v := range m {
		if v > bv {
			best, bv = k, v
		}
	}
	return best
}

// TestMaxTokensClamped: max_tokens beyond the server's limit is clamped,
// the choice ending with finish_reason length.
func TestMaxTokensClamped(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxTokens = 20
	_, base := startServer(t, cfg)
	code, body := post(t, base+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":100000,"ignore_eos":true}`)
	c := decode[legacyCompletion](t, body)
	if code != 200 || c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != 20 {
		t.Errorf("%d %s", code, body)
	}
	// Beyond the slot's room: it ends where the slot does.
	cfg = testConfig(t)
	_, base = startServer(t, cfg)
	code, body = post(t, base+"/v1/completions", `{"prompt":"Once upon a time","max_tokens":100000,"ignore_eos":true}`)
	c = decode[legacyCompletion](t, body)
	if code != 200 || c.Choices[0].FinishReason != "length" || c.Usage.PromptTokens+c.Usage.CompletionTokens != cfg.SlotContext {
		t.Errorf("%d %s", code, body)
	}
}

// TestPrefill: a last assistant message is continued: the reply is what
// the model writes after it, as a completion of the rendered prompt.
func TestPrefill(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	client, ctx := sdk(base), testContext(t)
	r, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story"), openai.AssistantMessage("Once upon a time")},
		MaxTokens: openai.Int(8), Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	raw := "<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\nOnce upon a time"
	c, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(raw)}, MaxTokens: openai.Int(8), Temperature: openai.Float(0),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Choices[0].Message.Content; got == "" || got != c.Choices[0].Text {
		t.Errorf("prefill continued with %q, the completion of the prompt is %q", got, c.Choices[0].Text)
	}
}

// TestFingerprintAndRequestID: responses carry a system_fingerprint
// (streamed chunks too) and an X-Request-Id header, the client's when it
// sends one.
func TestFingerprintAndRequestID(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	client, ctx := sdk(base), testContext(t)
	var resp *http.Response
	r, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Messages: userMsg("Hi"), MaxTokens: openai.Int(2)}, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.SystemFingerprint, "fp_") || !strings.HasPrefix(resp.Header.Get("X-Request-Id"), "req_") {
		t.Errorf("fingerprint %q, request id %q", r.SystemFingerprint, resp.Header.Get("X-Request-Id"))
	}
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Messages: userMsg("Hi"), MaxTokens: openai.Int(2)})
	for stream.Next() {
		if fp := stream.Current().SystemFingerprint; fp != r.SystemFingerprint {
			t.Errorf("chunk fingerprint %q, want %q", fp, r.SystemFingerprint)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", base+"/v1/models", nil)
	req.Header.Set("X-Request-Id", "my-trace-42")
	got, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got.Body.Close()
	if id := got.Header.Get("X-Request-Id"); id != "my-trace-42" {
		t.Errorf("echoed request id %q", id)
	}
}

// TestCORSSDKHeaders: a browser page using the official SDK sends its
// x-stainless-* headers: the preflight allows them.
func TestCORSSDKHeaders(t *testing.T) {
	cfg := testConfig(t)
	cfg.CORSOrigins = []string{"*"}
	_, base := startServer(t, cfg)
	preflight := func(headers string) http.Header {
		req, _ := http.NewRequest("OPTIONS", base+"/v1/chat/completions", nil)
		req.Header.Set("Origin", "https://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", headers)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("preflight: %d", resp.StatusCode)
		}
		return resp.Header
	}
	sdkHeaders := "authorization,content-type,x-stainless-arch,x-stainless-lang,x-stainless-os,x-stainless-package-version,x-stainless-retry-count,x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout"
	if h := preflight(sdkHeaders); h.Get("Access-Control-Allow-Headers") != sdkHeaders || h.Get("Access-Control-Expose-Headers") != "X-Request-Id" {
		t.Errorf("SDK headers: %v", h)
	}
	if h := preflight("bad header(name)"); h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type" {
		t.Errorf("malformed request headers: %v", h)
	}
}

func must200(t *testing.T, base, body string) []byte {
	t.Helper()
	code, out := post(t, base+"/v1/completions", body)
	if code != 200 {
		t.Fatalf("%s: %d %s", body, code, out)
	}
	return out
}

// TestEchoLogprobsStream: streamed, the echo chunk carries the prompt's
// logprobs, the first null.
func TestEchoLogprobsStream(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	client, ctx := sdk(base), testContext(t)
	stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		Echo:   openai.Bool(true), Logprobs: openai.Int(1), MaxTokens: openai.Int(2), Temperature: openai.Float(0),
	})
	var tokens []string
	var first []byte
	for stream.Next() {
		ch := stream.Current().Choices
		if len(ch) == 0 {
			continue
		}
		if first == nil {
			first = []byte(ch[0].Logprobs.RawJSON())
		}
		tokens = append(tokens, ch[0].Logprobs.Tokens...)
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 5+2 || !strings.Contains(string(first), `"token_logprobs":[null,`) {
		t.Errorf("tokens %q, first chunk's logprobs %s", tokens, first)
	}
}
