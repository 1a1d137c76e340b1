package chat

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

type weatherArgs struct {
	City string `json:"city" jsonschema:"enum=Paris,enum=Rome,description=The city"`
	Unit string `json:"unit" jsonschema:"enum=celsius,enum=fahrenheit"`
}

// TestSessionRun: with a Go function as a tool and tool_choice required,
// stories260K (rendered with chatml, so in the generic format) must call
// it; Run decodes the arguments into the struct, runs the function, sends
// its result back and returns the model's answer after it.
func TestSessionRun(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithContextSize(3*1024), llama.WithSequences(3), llama.WithBatchSize(512))
	var got []weatherArgs
	weather, err := NewFunction("get_weather", "The weather in a city", func(_ context.Context, a weatherArgs) (any, error) {
		got = append(got, a)
		return map[string]any{"temperature": 21, "unit": a.Unit}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Resolve(m, "")
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint32(3) {
		got = nil
		s, err := NewSession(newSeq(t, c), tmpl, WithFunctions(weather), WithToolChoice(ToolChoice{Mode: ToolRequired, Single: true}),
			WithSampling(llama.WithSeed(seed)), WithMaxTokens(200))
		if err != nil {
			t.Fatal(err)
		}
		var first, later strings.Builder
		answer, err := s.Run(context.Background(), "What is the weather in Paris?", 3, func(c Chunk) {
			if c.Token == llama.NullToken && c.Text == "" {
				return
			}
			if len(s.History()) == 0 { // the first reply: the call, not streamed as text
				first.WriteString(c.Text)
			} else {
				later.WriteString(c.Text)
			}
		})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if len(got) != 1 || !slices.Contains([]string{"Paris", "Rome"}, got[0].City) || !slices.Contains([]string{"celsius", "fahrenheit"}, got[0].Unit) {
			t.Fatalf("seed %d: the function got %+v", seed, got)
		}
		h := s.History()
		if len(h) != 4 || h[1].Role != "assistant" || len(h[1].ToolCalls) != 1 || h[2].Role != "tool" ||
			h[2].ToolCallID != h[1].ToolCalls[0].ID || !strings.Contains(h[2].Content, `"temperature":21`) || h[3].Role != "assistant" {
			t.Fatalf("seed %d: history %+v", seed, h)
		}
		if answer == "" || answer != h[3].Content || later.String() != answer {
			t.Errorf("seed %d: answer %q, history %q", seed, answer, h[3].Content)
		}
		if strings.TrimSpace(first.String()) != "" {
			t.Errorf("seed %d: the call was streamed as text %q", seed, first.String())
		}
		if calls := s.ToolCalls(); calls != nil {
			t.Errorf("seed %d: the last reply has calls %+v", seed, calls)
		}
	}
}

// TestSessionToolsRender: a session with tools renders them, and its
// replies' calls, in the generic format for chatml.
func TestSessionToolsRender(t *testing.T) {
	tmpl, err := Builtin("chatml")
	if err != nil {
		t.Fatal(err)
	}
	weather, err := NewFunction("get_weather", "The weather", func(context.Context, weatherArgs) (any, error) { return "sunny", nil })
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{
		{Role: "user", Content: "Weather?"},
		{Role: "assistant", ToolCalls: []ToolCall{{ID: "call_1", Function: FunctionCall{Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris","unit":"celsius"}`)}}}},
		{Role: "tool", ToolCallID: "call_1", Name: "get_weather", Content: "sunny"},
		{Role: "tool", ToolCallID: "call_2", Name: "get_weather", Content: "rainy"},
	}
	text, err := tmpl.Render(msgs, RenderOptions{Tools: []any{weather.Tool()}, AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<|im_start|>system\nYou can call the following tools",
		`{"name":"get_weather","description":"The weather","parameters":{"additionalProperties":false,"properties":{"city":{"description":"The city","enum":["Paris","Rome"],"type":"string"}`,
		"<|im_start|>assistant\n" + `{"tool_calls": [{"name":"get_weather","arguments":{"city":"Paris","unit":"celsius"}}]}<|im_end|>`,
		"<|im_start|>user\n" + `{"tool_response":{"content":"sunny","name":"get_weather","tool_call_id":"call_1"}}` + "\n" +
			`{"tool_response":{"content":"rainy","name":"get_weather","tool_call_id":"call_2"}}<|im_end|>`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered text lacks %q:\n%s", want, text)
		}
	}
}

func TestNewFunctionErrors(t *testing.T) {
	fn := func(context.Context, weatherArgs) (any, error) { return nil, nil }
	if _, err := NewFunction("bad name", "", fn); !errors.Is(err, ErrInvalidTool) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := NewFunction[weatherArgs]("f", "", nil); !errors.Is(err, ErrInvalidTool) {
		t.Errorf("nil function: %v", err)
	}
	if _, err := NewFunction("f", "", func(context.Context, chan int) (any, error) { return nil, nil }); !errors.Is(err, ErrInvalidTool) {
		t.Errorf("chan arguments: %v", err)
	}
	f, err := NewFunction("f", "", fn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Call(context.Background(), json.RawMessage(`{"city":"Paris","other":1}`)); !errors.Is(err, ErrToolCall) {
		t.Errorf("unknown argument: %v", err)
	}
	if _, err := f.Call(context.Background(), json.RawMessage(`[1]`)); !errors.Is(err, ErrToolCall) {
		t.Errorf("array arguments: %v", err)
	}
}

// TestToolGrammar: the grammars of each format parse (NewSampler accepts
// them), for required, named and auto; bad tools are refused.
func TestToolGrammar(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	weather, _ := NewFunction("get_weather", "", func(context.Context, weatherArgs) (any, error) { return nil, nil })
	tools := []Tool{weather.Tool(), {Type: "function", Function: ToolFunction{Name: "noargs"}}}
	for f := ToolFormatGeneric; f <= ToolFormatMistralArgs; f++ {
		for _, choice := range []ToolChoice{{Mode: ToolRequired}, {Mode: ToolRequired, Name: "noargs", Single: true}, {Mode: ToolAuto}} {
			g, ok, err := f.Grammar(tools, choice)
			if err != nil || !ok {
				t.Fatalf("%v %+v: %v", f, choice, err)
			}
			if g.Lazy != (choice.Mode == ToolAuto) || g.Lazy && len(g.Triggers)+len(g.Markers) == 0 {
				t.Errorf("%v %+v: lazy %v, triggers %q %q", f, choice, g.Lazy, g.Triggers, g.Markers)
			}
			opt, ok := g.SamplerOption(m)
			if !ok {
				// stories260K has none of the markers as tokens: the
				// grammar is checked as a whole.
				if !g.Lazy || len(g.Triggers) > 0 {
					t.Errorf("%v %+v: no sampler option", f, choice)
				}
				opt = llama.WithGrammar(g.GBNF, g.Root)
			}
			s, err := m.NewSampler(opt)
			if err != nil {
				t.Fatalf("%v %+v: %v\n%s", f, choice, err, g.GBNF)
			}
			s.Close()
		}
	}
	// What each format's grammar makes a model write parses back into
	// calls of the tools, with valid arguments.
	c := newContext(t, m, llama.WithContextSize(1024))
	for f := ToolFormatGeneric; f <= ToolFormatMistralArgs; f++ {
		g, _, err := f.Grammar(tools, ToolChoice{Mode: ToolRequired, Single: true})
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		for tok, err := range c.Generate(context.Background(), "Once upon a time", llama.WithMaxTokens(600),
			llama.WithSampling(llama.WithSeed(uint32(f)), llama.WithGrammar(g.GBNF, g.Root))) {
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString(tok.Text)
		}
		text, calls := ParseToolCalls(f, out.String())
		if len(calls) != 1 || strings.TrimSpace(text) != "" {
			t.Errorf("%v wrote %q: text %q, calls %+v", f, out.String(), text, calls)
			continue
		}
		switch calls[0].Function.Name {
		case "get_weather":
			var a weatherArgs
			d := json.NewDecoder(strings.NewReader(string(calls[0].Function.Arguments.(json.RawMessage))))
			d.DisallowUnknownFields()
			if err := d.Decode(&a); err != nil || a.City == "" || a.Unit == "" {
				t.Errorf("%v: arguments %s: %v", f, calls[0].Function.Arguments, err)
			}
		case "noargs":
		default:
			t.Errorf("%v: call of %q", f, calls[0].Function.Name)
		}
	}
	if _, ok, err := ToolFormatGeneric.Grammar(tools, ToolChoice{Mode: ToolNone}); ok || err != nil {
		t.Errorf("none: %v %v", ok, err)
	}
	for _, bad := range [][]Tool{
		{{Function: ToolFunction{Name: "a b"}}},
		{{Function: ToolFunction{Name: "a"}}, {Function: ToolFunction{Name: "a"}}},
		{{Function: ToolFunction{Name: "a", Parameters: json.RawMessage(`[1]`)}}},
		{{Function: ToolFunction{Name: "a", Parameters: json.RawMessage(`{"type":"no-such-type"}`)}}},
	} {
		if _, _, err := ToolFormatHermes.Grammar(bad, ToolChoice{Mode: ToolRequired}); !errors.Is(err, ErrInvalidTool) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if _, _, err := ToolFormatHermes.Grammar(tools, ToolChoice{Mode: ToolRequired, Name: "other"}); !errors.Is(err, ErrInvalidTool) {
		t.Errorf("unknown name: %v", err)
	}
}
