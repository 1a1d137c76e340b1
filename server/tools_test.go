package server

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/llamago/llamago/chat"
)

// The tools of the tests. Strings are bounded so that a tiny model's
// arguments end within the token budget.
const (
	weatherSchema = `{"type":"object","properties":{"location":{"type":"string","maxLength":12},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"],"additionalProperties":false}`
	timeSchema    = `{"type":"object","properties":{"zone":{"type":"string","enum":["UTC","CET"]}},"required":["zone"],"additionalProperties":false}`
)

func toolParams(t *testing.T) []openai.ChatCompletionToolUnionParam {
	var weather, clock map[string]any
	if err := json.Unmarshal([]byte(weatherSchema), &weather); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(timeSchema), &clock); err != nil {
		t.Fatal(err)
	}
	return []openai.ChatCompletionToolUnionParam{
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "get_weather", Description: openai.String("The weather in a city"), Parameters: weather,
		}),
		openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "get_time", Description: openai.String("The time in a zone"), Parameters: clock,
		}),
	}
}

// toolsConfig has room in a slot for the tools' prompt.
func toolsConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.SlotContext = 2048
	cfg.BatchSize, cfg.UBatchSize = 1024, 1024
	return cfg
}

// checkArgs validates a call's arguments against its tool's schema.
func checkArgs(t *testing.T, name, args string) {
	t.Helper()
	schema := map[string]string{"get_weather": weatherSchema, "get_time": timeSchema}[name]
	if schema == "" {
		t.Fatalf("call of an unknown tool %q", name)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(args))
	if err != nil {
		t.Fatalf("arguments %q are not JSON: %v", args, err)
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("arguments %q of %s do not validate: %v", args, name, err)
	}
}

func userMsg(s string) []openai.ChatCompletionMessageParamUnion {
	return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(s)}
}

// TestSDKToolsRequired: with tool_choice required the grammar makes the
// tiny model call a tool, with arguments valid under its schema, for
// every seed; a named choice calls that tool; parallel_tool_calls false
// makes one call.
func TestSDKToolsRequired(t *testing.T) {
	_, base := startServer(t, toolsConfig(t))
	client, ctx := sdk(base), testContext(t)
	for seed := range int64(4) {
		c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Messages: userMsg("What is the weather in Paris?"), Tools: toolParams(t),
			ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
			Seed:       openai.Int(seed), MaxTokens: openai.Int(1500),
		})
		if err != nil {
			t.Fatal(err)
		}
		ch := c.Choices[0]
		if n := len(ch.Message.ToolCalls); ch.FinishReason != "tool_calls" || n == 0 || n > chat.MaxParallelCalls || ch.Message.Content != "" {
			t.Fatalf("seed %d: %+v", seed, ch)
		}
		for _, call := range ch.Message.ToolCalls {
			if !strings.HasPrefix(call.ID, "call_") || call.Type != "function" {
				t.Errorf("call %+v", call)
			}
			checkArgs(t, call.Function.Name, call.Function.Arguments)
		}
	}

	// Named: that tool, once with parallel_tool_calls false.
	c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Messages: userMsg("What time is it?"), Tools: toolParams(t),
		ToolChoice:        openai.ToolChoiceOptionFunctionToolChoice(openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"}),
		ParallelToolCalls: openai.Bool(false), Seed: openai.Int(7), MaxTokens: openai.Int(300),
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := c.Choices[0].Message.ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != "get_time" || c.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("named choice: %+v", c.Choices[0])
	}
	checkArgs(t, "get_time", calls[0].Function.Arguments)
}

// TestSDKToolsAuto: with auto the reply is free until the model starts a
// call ("{" in the generic format), then the lazy grammar completes a
// valid call. The tiny model never starts one by itself (its reply is a
// story); a logit bias on "{" makes it.
func TestSDKToolsAuto(t *testing.T) {
	_, base := startServer(t, toolsConfig(t))
	client, ctx := sdk(base), testContext(t)
	params := openai.ChatCompletionNewParams{
		Messages: userMsg("Tell me a story."), Tools: toolParams(t),
		Temperature: openai.Float(0), MaxTokens: openai.Int(40),
	}
	c, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if ch := c.Choices[0]; len(ch.Message.ToolCalls) != 0 || ch.Message.Content == "" || ch.FinishReason == "tool_calls" {
		t.Fatalf("auto, free text: %+v", ch)
	}
	brace := tokenOf(t, base, "{")
	params.LogitBias = map[string]int64{brace: 100}
	params.ParallelToolCalls = openai.Bool(false)
	params.MaxTokens = openai.Int(300)
	for seed := range int64(3) {
		params.Seed, params.Temperature = openai.Int(seed), openai.Float(0.8)
		c, err = client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		ch := c.Choices[0]
		if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 {
			t.Fatalf("auto, seed %d, starting with {: %+v", seed, ch)
		}
		for _, call := range ch.Message.ToolCalls {
			checkArgs(t, call.Function.Name, call.Function.Arguments)
		}
	}

	// none: no grammar, no parsing, even with the bias.
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}
	params.MaxTokens = openai.Int(20)
	c, err = client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if ch := c.Choices[0]; len(ch.Message.ToolCalls) != 0 || !strings.HasPrefix(ch.Message.Content, "{") {
		t.Fatalf("tool_choice none: %+v", ch)
	}
}

// TestSDKToolsStream: streamed calls come as OpenAI's deltas (index, id,
// type and name first, then the arguments), the SDK's accumulator
// rebuilds them, and the stream ends with finish_reason tool_calls.
func TestSDKToolsStream(t *testing.T) {
	_, base := startServer(t, toolsConfig(t))
	client, ctx := sdk(base), testContext(t)
	params := openai.ChatCompletionNewParams{
		Messages: userMsg("Weather?"), Tools: toolParams(t),
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		Seed:       openai.Int(1), MaxTokens: openai.Int(1500),
	}
	want, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	finished := 0
	var heads int
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		if _, ok := acc.JustFinishedToolCall(); ok {
			finished++
		}
		for _, ch := range chunk.Choices {
			for _, d := range ch.Delta.ToolCalls {
				if d.ID != "" {
					heads++
					if d.Type != "function" || d.Function.Name == "" || d.Function.Arguments != "" || d.Index != int64(heads-1) {
						t.Errorf("first delta of a call: %+v", d)
					}
				} else if d.Function.Name != "" || d.Function.Arguments == "" {
					t.Errorf("argument delta: %+v", d)
				}
			}
			if ch.Delta.Content != "" {
				t.Errorf("content %q in a required call", ch.Delta.Content)
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	got := acc.Choices[0]
	if got.FinishReason != "tool_calls" || len(got.Message.ToolCalls) != len(want.Choices[0].Message.ToolCalls) || heads != len(got.Message.ToolCalls) {
		t.Fatalf("streamed %+v, want %+v", got, want.Choices[0])
	}
	for i, call := range got.Message.ToolCalls {
		w := want.Choices[0].Message.ToolCalls[i]
		if call.Function.Name != w.Function.Name || call.Function.Arguments != w.Function.Arguments {
			t.Errorf("streamed call %d: %+v, want %+v", i, call.Function, w.Function)
		}
		checkArgs(t, call.Function.Name, call.Function.Arguments)
	}
	if finished == 0 {
		t.Error("the accumulator saw no finished tool call")
	}
}

// TestSDKToolsRoundTrip: the assistant's tool_calls and the tool's result
// go back in the history, and the model answers after them.
func TestSDKToolsRoundTrip(t *testing.T) {
	_, base := startServer(t, toolsConfig(t))
	client, ctx := sdk(base), testContext(t)
	params := openai.ChatCompletionNewParams{
		Messages: userMsg("Weather in Paris?"), Tools: toolParams(t),
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		Seed:       openai.Int(3), MaxTokens: openai.Int(300), ParallelToolCalls: openai.Bool(false),
	}
	c, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	msg := c.Choices[0].Message
	if len(msg.ToolCalls) == 0 {
		t.Fatalf("no call: %+v", msg)
	}
	params.Messages = append(params.Messages, msg.ToParam())
	for _, call := range msg.ToolCalls {
		params.Messages = append(params.Messages, openai.ToolMessage(`{"temperature": 21}`, call.ID))
	}
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")}
	params.MaxTokens = openai.Int(20)
	params.Temperature = openai.Float(0)
	again, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if ch := again.Choices[0]; ch.Message.Content == "" || len(ch.Message.ToolCalls) != 0 {
		t.Errorf("answer after the result: %+v", ch)
	}
	// The whole history was read: the prompt grew by the call and result.
	if again.Usage.PromptTokens <= c.Usage.PromptTokens+10 {
		t.Errorf("prompt tokens %d after the result, %d before", again.Usage.PromptTokens, c.Usage.PromptTokens)
	}
}

// TestToolsNativeTemplate: with a template that renders tools itself
// (Qwen 2.5's), the grammar writes the calls in its format
// (<tool_call>...</tool_call>) and the server parses them back.
func TestToolsNativeTemplate(t *testing.T) {
	src, err := os.ReadFile("../chat/testdata/qwen2.5.jinja")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.ParseTemplate(string(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg := toolsConfig(t)
	cfg.Template = tmpl
	s, base := startServer(t, cfg)
	if s.toolFormat != chat.ToolFormatHermes {
		t.Fatalf("format %v", s.toolFormat)
	}
	client, ctx := sdk(base), testContext(t)
	c, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Messages: userMsg("Weather?"), Tools: toolParams(t),
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
		Seed:       openai.Int(2), MaxTokens: openai.Int(300), ParallelToolCalls: openai.Bool(false),
	})
	if err != nil {
		t.Fatal(err)
	}
	ch := c.Choices[0]
	if ch.FinishReason != "tool_calls" || len(ch.Message.ToolCalls) != 1 || ch.Message.Content != "" {
		t.Fatalf("%+v", ch)
	}
	for _, call := range ch.Message.ToolCalls {
		checkArgs(t, call.Function.Name, call.Function.Arguments)
	}
}

// TestToolHistoryNative: a history with tool calls (arguments as the JSON
// string OpenAI clients send) and tool results renders through a native
// template as transformers renders it: the arguments as an object.
func TestToolHistoryNative(t *testing.T) {
	src, err := os.ReadFile("../chat/testdata/qwen2.5.jinja")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.ParseTemplate(string(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg := toolsConfig(t)
	cfg.Template = tmpl
	s, _ := startServer(t, cfg)
	var req chatRequest
	body := `{"messages":[{"role":"user","content":"Weather?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"21 C"}]}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	toks, err := s.chatPrompt(req.Messages, []chat.Tool{{Type: "function", Function: chat.ToolFunction{Name: "get_weather"}}})
	if err != nil {
		t.Fatal(err)
	}
	text := s.piecesText(toks.tokens)
	for _, want := range []string{
		`<tool_call>` + "\n" + `{"name": "get_weather", "arguments": {"location": "Paris"}}` + "\n" + `</tool_call>`,
		"<tool_response>\n21 C\n</tool_response>",
		`{"type": "function", "function": {"name": "get_weather"}}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the prompt lacks %q:\n%s", want, text)
		}
	}
}
