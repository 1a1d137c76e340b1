package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// storiesGreedy is the start of llama.cpp's greedy continuation of "Once
// upon a time" with stories260K.
const storiesGreedy = ", there was a little girl named Lily."

// sdk is an OpenAI client for the server at base, without retries.
func sdk(base string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(base + "/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0),
		option.WithRequestTimeout(60 * time.Second),
	}, opts...)...)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSDKCompletion(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	client, ctx := sdk(base), testContext(t)
	params := openai.CompletionNewParams{
		Model:       "stories260K",
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens:   openai.Int(24),
		Temperature: openai.Float(0),
	}
	c, err := client.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 || !strings.HasPrefix(c.Choices[0].Text, storiesGreedy) {
		t.Fatalf("choices = %+v", c.Choices)
	}
	if c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != 24 || c.Usage.PromptTokens != 5 ||
		c.Usage.TotalTokens != 29 || c.Object != "text_completion" || c.Model != "stories260K" || c.ID == "" {
		t.Errorf("completion = %+v", c)
	}

	// Streamed, the same text in pieces.
	stream := client.Completions.NewStreaming(ctx, params)
	var text strings.Builder
	chunks := 0
	finish := ""
	for stream.Next() {
		ch := stream.Current()
		for _, c := range ch.Choices {
			text.WriteString(c.Text)
			if c.FinishReason != "" {
				finish = string(c.FinishReason)
			}
		}
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != c.Choices[0].Text || finish != "length" || chunks < 10 {
		t.Errorf("streamed %q in %d chunks (finish %q), want %q", text.String(), chunks, finish, c.Choices[0].Text)
	}

	// A stop string ends the text before it.
	params.Stop = openai.CompletionNewParamsStopUnion{OfStringArray: []string{" named"}}
	c, err = client.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Choices[0]; got.Text != ", there was a little girl" || got.FinishReason != "stop" {
		t.Errorf("with a stop string: %q (%s)", got.Text, got.FinishReason)
	}

	// logprobs: the chosen token's log-probability and the alternatives.
	params.Stop = openai.CompletionNewParamsStopUnion{}
	params.Logprobs = openai.Int(3)
	params.MaxTokens = openai.Int(4)
	c, err = client.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	lp := c.Choices[0].Logprobs
	if len(lp.Tokens) != 4 || len(lp.TokenLogprobs) != 4 || len(lp.TopLogprobs) != 4 || strings.Join(lp.Tokens, "") != c.Choices[0].Text {
		t.Fatalf("logprobs = %+v", lp)
	}
	for i, tok := range lp.Tokens {
		// Greedy: the chosen token is the most likely one.
		best := math.Inf(-1)
		for _, v := range lp.TopLogprobs[i] {
			best = max(best, v)
		}
		if lp.TokenLogprobs[i] > 0 || lp.TokenLogprobs[i] != best || len(lp.TopLogprobs[i]) == 0 {
			t.Errorf("token %d %q: logprob %v, top %v", i, tok, lp.TokenLogprobs[i], lp.TopLogprobs[i])
		}
	}
}

func TestSDKChat(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	client, ctx := sdk(base), testContext(t)
	params := openai.ChatCompletionNewParams{
		Model: "stories260K",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("You tell stories."),
			openai.UserMessage("Tell me a story about a cat."),
		},
		MaxTokens:   openai.Int(32),
		Temperature: openai.Float(0),
	}
	c, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 1 {
		t.Fatalf("choices = %+v", c.Choices)
	}
	msg := c.Choices[0].Message
	if msg.Role != "assistant" || msg.Content == "" || c.Object != "chat.completion" || c.Usage.CompletionTokens == 0 ||
		c.Usage.PromptTokens == 0 || strings.Contains(msg.Content, "<|im_") {
		t.Errorf("chat completion = %+v", c)
	}

	// Streamed with usage: the same reply.
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != msg.Content ||
		acc.Choices[0].FinishReason != c.Choices[0].FinishReason || acc.Usage.CompletionTokens != c.Usage.CompletionTokens {
		t.Errorf("streamed %+v, usage %+v; want %q", acc.Choices, acc.Usage, msg.Content)
	}

	// A follow-up that repeats the conversation reuses the cached prefix.
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
	params.Messages = append(params.Messages, openai.AssistantMessage(msg.Content), openai.UserMessage("And then?"))
	c2, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if cached := c2.Usage.PromptTokensDetails.CachedTokens; cached < c.Usage.PromptTokens {
		t.Errorf("follow-up: %d of %d prompt tokens cached, want at least the first prompt's %d",
			cached, c2.Usage.PromptTokens, c.Usage.PromptTokens)
	}

	// logprobs in the chat format.
	params.Logprobs = openai.Bool(true)
	params.TopLogprobs = openai.Int(2)
	params.MaxTokens = openai.Int(3)
	c, err = client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	content := c.Choices[0].Logprobs.Content
	if len(content) != 3 {
		t.Fatalf("logprobs = %+v", c.Choices[0].Logprobs)
	}
	var joined strings.Builder
	for _, lp := range content {
		joined.WriteString(lp.Token)
		if len(lp.TopLogprobs) != 2 || lp.TopLogprobs[0].Token != lp.Token || lp.Logprob > 0 || string(bytesToString(lp.Bytes)) != lp.Token {
			t.Errorf("logprob %+v", lp)
		}
	}
	if joined.String() != c.Choices[0].Message.Content {
		t.Errorf("logprob tokens %q, content %q", joined.String(), c.Choices[0].Message.Content)
	}
}

func bytesToString(b []int64) string {
	s := make([]byte, len(b))
	for i, v := range b {
		s[i] = byte(v)
	}
	return string(s)
}

// TestSDKChoices: n > 1 gives n choices from one prompt, each sampled with
// its own seed; the same seed gives the same choices.
func TestSDKChoices(t *testing.T) {
	cfg := testConfig(t)
	cfg.Parallel = 4
	_, base := startServer(t, cfg)
	client, ctx := sdk(base), testContext(t)
	params := openai.ChatCompletionNewParams{
		Model:       "stories260K",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
		MaxTokens:   openai.Int(16),
		Temperature: openai.Float(1),
		N:           openai.Int(3),
		Seed:        openai.Int(42),
	}
	texts := func() []string {
		c, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Choices) != 3 {
			t.Fatalf("%d choices", len(c.Choices))
		}
		var out []string
		total := int64(0)
		for i, ch := range c.Choices {
			if ch.Index != int64(i) || ch.Message.Content == "" {
				t.Errorf("choice %d: %+v", i, ch)
			}
			out = append(out, ch.Message.Content)
		}
		for range c.Choices {
			total++
		}
		if c.Usage.CompletionTokens < 3 || c.Usage.CompletionTokens > 48 {
			t.Errorf("usage %+v for 3 choices of at most 16 tokens", c.Usage)
		}
		return out
	}
	first := texts()
	if first[0] == first[1] && first[1] == first[2] {
		t.Errorf("three seeds gave the same text: %q", first)
	}
	if again := texts(); strings.Join(again, "|") != strings.Join(first, "|") {
		t.Errorf("same seed, other choices:\n%q\n%q", first, again)
	}

	// Streaming n > 1: every choice ends, with its index.
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 3 {
		t.Fatalf("streamed %d choices", len(acc.Choices))
	}
	for i, ch := range acc.Choices {
		if ch.Message.Content != first[i] || ch.FinishReason == "" {
			t.Errorf("streamed choice %d: %q (%s), want %q", i, ch.Message.Content, ch.FinishReason, first[i])
		}
	}

	// More choices than slots wait for slots: choice i is still the one
	// of seed+i.
	params.N = openai.Int(5)
	five, err := client.Chat.Completions.New(ctx, params)
	if err != nil || len(five.Choices) != 5 {
		t.Fatalf("n = 5 with 4 slots: %v", err)
	}
	for i, ch := range five.Choices {
		if i < len(first) && ch.Message.Content != first[i] || ch.Index != int64(i) || ch.FinishReason == "" {
			t.Errorf("n = 5, choice %d: %q (%s), want %q", i, ch.Message.Content, ch.FinishReason, first[min(i, len(first)-1)])
		}
	}
	params.N = openai.Int(MaxChoices + 1)
	_, err = client.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "n" {
		t.Errorf("n = %d: %v", MaxChoices+1, err)
	}
}

func TestSDKEmbeddings(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	client, ctx := sdk(base), testContext(t)
	texts := []string{"Once upon a time", "hello", "The cat sat on the mat."}
	params := openai.EmbeddingNewParams{
		Model: "stories260K",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts},
	}
	e, err := client.Embeddings.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Data) != len(texts) || e.Usage.PromptTokens == 0 || e.Usage.TotalTokens != e.Usage.PromptTokens {
		t.Fatalf("embeddings = %+v", e)
	}
	for i, d := range e.Data {
		var norm float64
		for _, x := range d.Embedding {
			norm += x * x
		}
		if d.Index != int64(i) || len(d.Embedding) != stories(t).EmbeddingSize() || math.Abs(norm-1) > 1e-4 {
			t.Errorf("embedding %d: %d values, norm %v", i, len(d.Embedding), math.Sqrt(norm))
		}
	}
	if cos(e.Data[0].Embedding, e.Data[1].Embedding) > 0.9999 {
		t.Error("different texts, the same embedding")
	}

	// One text alone embeds the same; base64 decodes to the same values.
	params.Input = openai.EmbeddingNewParamsInputUnion{OfString: openai.String(texts[1])}
	params.EncodingFormat = openai.EmbeddingNewParamsEncodingFormatBase64
	one, err := client.Embeddings.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(one.Data) != 1 || cos(one.Data[0].Embedding, e.Data[1].Embedding) < 0.9999 {
		t.Errorf("alone and in base64: cosine %v", cos(one.Data[0].Embedding, e.Data[1].Embedding))
	}
}

func cos(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	return ab / math.Sqrt(aa*bb)
}

// TestSDKStructuredOutput: response_format json_schema and json_object
// constrain the reply to JSON.
func TestSDKStructuredOutput(t *testing.T) {
	_, base := startServer(t, testConfig(t))
	client, ctx := sdk(base), testContext(t)
	schema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"name": map[string]any{"type": "string", "maxLength": 12},
			"age":  map[string]any{"type": "integer", "minimum": 0, "maximum": 150},
			"pets": map[string]any{"type": "array", "items": map[string]any{"enum": []string{"cat", "dog"}}, "maxItems": 3},
		},
		"required":             []string{"name", "age", "pets"},
		"additionalProperties": false,
	}
	params := openai.ChatCompletionNewParams{
		Model:       "stories260K",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Describe a person as JSON.")},
		MaxTokens:   openai.Int(120),
		Temperature: openai.Float(0.7),
		Seed:        openai.Int(7),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Schema: schema, Strict: openai.Bool(true)},
		}},
	}
	for seed := range int64(3) {
		params.Seed = openai.Int(seed)
		c, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		content := c.Choices[0].Message.Content
		if c.Choices[0].FinishReason != "stop" {
			t.Fatalf("seed %d: finish %q: %q", seed, c.Choices[0].FinishReason, content)
		}
		var v struct {
			Name *string  `json:"name"`
			Age  *int     `json:"age"`
			Pets []string `json:"pets"`
		}
		dec := json.NewDecoder(strings.NewReader(content))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil || v.Name == nil || v.Age == nil || v.Pets == nil ||
			len(*v.Name) > 12 || *v.Age < 0 || *v.Age > 150 || len(v.Pets) > 3 {
			t.Errorf("seed %d: %q does not follow the schema (%v)", seed, content, err)
		}
	}

	// json_object: any JSON object. The tiny model needs a nudge to close
	// its strings and objects within the limit.
	quote, closing := tokenOf(t, base, `"`), tokenOf(t, base, "}")
	params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}
	params.LogitBias = map[string]int64{quote: 8, closing: 15}
	c, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	content := c.Choices[0].Message.Content
	var obj map[string]any
	if c.Choices[0].FinishReason != "stop" || json.Unmarshal([]byte(content), &obj) != nil || len(obj) == 0 {
		t.Errorf("json_object gave %q (%s)", content, c.Choices[0].FinishReason)
	}

	// A schema the converter refuses is a 400.
	params.LogitBias = nil
	params.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
		JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "bad", Schema: map[string]any{"type": "no-such-type"}},
	}}
	_, err = client.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 {
		t.Errorf("bad schema: %v", err)
	}
}

// tokenOf returns the id of the single token text is, as a logit_bias key.
func tokenOf(t *testing.T, base, text string) string {
	t.Helper()
	code, body := post(t, base+"/tokenize", map[string]any{"content": text})
	toks := decode[struct{ Tokens []int }](t, body).Tokens
	if code != 200 || len(toks) == 0 {
		t.Fatalf("tokenize %q: %d %s", text, code, body)
	}
	b, _ := json.Marshal(toks[len(toks)-1])
	return string(b)
}

func TestSDKModelsAndErrors(t *testing.T) {
	cfg := testConfig(t)
	cfg.Aliases = []string{"gpt-3.5-turbo"}
	cfg.APIKey = "sk-test"
	cfg.StrictModel = true
	_, base := startServer(t, cfg)
	client, ctx := sdk(base, option.WithAPIKey("sk-test")), testContext(t)
	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0].ID != "stories260K" || page.Data[1].ID != "gpt-3.5-turbo" || page.Data[0].OwnedBy == "" {
		t.Errorf("models = %+v", page.Data)
	}
	m, err := client.Models.Get(ctx, "gpt-3.5-turbo")
	if err != nil || m.ID != "gpt-3.5-turbo" {
		t.Errorf("get alias: %+v, %v", m, err)
	}
	// The alias generates.
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "gpt-3.5-turbo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}, MaxTokens: openai.Int(2),
	})
	if err != nil {
		t.Errorf("with the alias: %v", err)
	}

	var apiErr *openai.Error
	_, err = client.Models.Get(ctx, "gpt-4")
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("unknown model: %v", err)
	}
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "gpt-4", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
	})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Param != "model" {
		t.Errorf("chat with an unknown model: %v", err)
	}
	wrong := sdk(base, option.WithAPIKey("sk-wrong"))
	_, err = wrong.Models.List(ctx)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Errorf("wrong key: %v", err)
	}
}
