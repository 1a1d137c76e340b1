package chat

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

type wantCall struct{ name, args string }

// toolCases are each family's documented output, with the text and calls
// they parse to.
var toolCases = []struct {
	name   string
	format ToolFormat
	reply  string
	text   string
	calls  []wantCall
}{
	{"generic", ToolFormatGeneric,
		`{"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris", "unit": "c"}}]}`,
		"", []wantCall{{"get_weather", `{"location":"Paris","unit":"c"}`}}},
	{"generic two", ToolFormatGeneric,
		" {\"tool_calls\": [{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"b\", \"arguments\": {\"x\": [1, {\"y\": \"}\"}]}}]}",
		"", []wantCall{{"a", `{}`}, {"b", `{"x":[1,{"y":"}"}]}`}}},
	{"generic single", ToolFormatGeneric, `{"tool_call": {"name": "a", "arguments": {"k": 1}}}`, "", []wantCall{{"a", `{"k":1}`}}},
	{"generic bare", ToolFormatGeneric, `{"name": "a", "arguments": "{\"k\": 1}"}`, "", []wantCall{{"a", `{"k":1}`}}},
	{"generic response", ToolFormatGeneric, `{"response": "Hello!"}`, "Hello!", nil},
	{"generic text", ToolFormatGeneric, "Once upon a time {there} was", "Once upon a time {there} was", nil},
	{"generic other json", ToolFormatGeneric, `{"answer": 42}`, `{"answer": 42}`, nil},
	{"llama3", ToolFormatLlama3,
		`{"name": "get_weather", "parameters": {"location": "Paris"}}`,
		"", []wantCall{{"get_weather", `{"location":"Paris"}`}}},
	{"llama3 python tag", ToolFormatLlama3,
		`<|python_tag|>{"type": "function", "name": "get_weather", "parameters": {"location": "Paris"}}`,
		"", []wantCall{{"get_weather", `{"location":"Paris"}`}}},
	{"llama3 json answer", ToolFormatLlama3, `{"city": "Paris"}`, `{"city": "Paris"}`, nil},
	{"hermes", ToolFormatHermes,
		"I'll check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
		"I'll check.\n", []wantCall{{"get_weather", `{"location":"Paris"}`}, {"get_time", `{}`}}},
	{"hermes unclosed at end", ToolFormatHermes,
		"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n",
		"", []wantCall{{"f", `{"a":1}`}}},
	{"mistral", ToolFormatMistral,
		`[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}, "id": "abcDEF123"}]`,
		"", []wantCall{{"get_weather", `{"location":"Paris"}`}}},
	{"command-r", ToolFormatCommandR,
		"Action: ```json\n[\n    {\n        \"tool_name\": \"internet_search\",\n        \"parameters\": {\n            \"query\": \"weather Paris\"\n        }\n    }\n]\n```",
		"", []wantCall{{"internet_search", `{"query":"weather Paris"}`}}},
	{"command-r7b", ToolFormatCommandR7B,
		`<|START_ACTION|>[{"tool_call_id": "0", "tool_name": "get_weather", "parameters": {"location": "Paris"}}]<|END_ACTION|>`,
		"", []wantCall{{"get_weather", `{"location":"Paris"}`}}},
	{"deepseek-r1", ToolFormatDeepSeekR1,
		"<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"location\": \"Paris\"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
		"", []wantCall{{"get_weather", `{"location":"Paris"}`}, {"get_time", `{}`}}},
	{"phi4", ToolFormatPhi4,
		`<|tool_call|>[{"name": "get_weather", "arguments": {"location": "Paris"}}]<|/tool_call|>`,
		"", []wantCall{{"get_weather", `{"location":"Paris"}`}}},
	{"mistral v11", ToolFormatMistralArgs,
		`[TOOL_CALLS]get_weather[ARGS]{"location": "Paris"}[TOOL_CALLS]get_time[CALL_ID]a1b2c3d4e[ARGS]{}`,
		"", []wantCall{{"get_weather", `{"location":"Paris"}`}, {"get_time", `{}`}}},
	{"mistral old form in v11", ToolFormatMistralArgs,
		`[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}}]`,
		"", []wantCall{{"get_weather", `{"location":"Paris"}`}}},
	{"mistral v11 text after", ToolFormatMistral, `[TOOL_CALLS]f[ARGS]{"a": "}"} done`, "done", []wantCall{{"f", `{"a":"}"}`}}},
	{"mistral v11 bad name", ToolFormatMistral, `[TOOL_CALLS]not a name[ARGS]{}`, `[TOOL_CALLS]not a name[ARGS]{}`, nil},
	// Malformed calls come back as text.
	{"hermes bad json", ToolFormatHermes, "<tool_call>{\"name\": \"f\", \"arguments\": {]}</tool_call> ok",
		"<tool_call>{\"name\": \"f\", \"arguments\": {]}</tool_call> ok", nil},
	{"hermes no name", ToolFormatHermes, `<tool_call>{"arguments": {}}</tool_call>`, `<tool_call>{"arguments": {}}</tool_call>`, nil},
	{"hermes array args", ToolFormatHermes, `<tool_call>{"name": "f", "arguments": [1]}</tool_call>`, `<tool_call>{"name": "f", "arguments": [1]}</tool_call>`, nil},
	{"mistral not json", ToolFormatMistral, "[TOOL_CALLS] get_weather", "[TOOL_CALLS] get_weather", nil},
	{"mistral truncated", ToolFormatMistral, `[TOOL_CALLS][{"name": "f", "argu`, `[TOOL_CALLS][{"name": "f", "argu`, nil},
	{"deepseek bad", ToolFormatDeepSeekR1, "<｜tool▁calls▁begin｜>junk<｜tool▁calls▁end｜>", "<｜tool▁calls▁begin｜>junk<｜tool▁calls▁end｜>", nil},
	{"phi4 unclosed", ToolFormatPhi4, `<|tool_call|>[{"name": "f"`, `<|tool_call|>[{"name": "f"`, nil},
	{"generic truncated", ToolFormatGeneric, `{"tool_calls": [{"name": "f", "arguments": {"a": `, `{"tool_calls": [{"name": "f", "arguments": {"a": `, nil},
	{"marker prefix kept as text", ToolFormatHermes, "a <tool_c", "a <tool_c", nil},
	{"utf8", ToolFormatHermes, "héllo 世界 <tool_call>{\"name\": \"f\", \"arguments\": {\"s\": \"é\"}}</tool_call>", "héllo 世界 ", []wantCall{{"f", `{"s":"é"}`}}},
}

func checkCalls(t *testing.T, label, text string, calls []ToolCall, wantText string, want []wantCall) {
	t.Helper()
	if text != wantText {
		t.Errorf("%s: text %q, want %q", label, text, wantText)
	}
	if len(calls) != len(want) {
		t.Fatalf("%s: %d calls %+v, want %d", label, len(calls), calls, len(want))
	}
	for i, c := range calls {
		args, _ := c.Function.Arguments.(json.RawMessage)
		if c.Function.Name != want[i].name || string(args) != want[i].args || c.Type != "function" {
			t.Errorf("%s: call %d is %s(%s), want %s(%s)", label, i, c.Function.Name, args, want[i].name, want[i].args)
		}
	}
}

func TestParseToolCalls(t *testing.T) {
	for _, tc := range toolCases {
		t.Run(tc.name, func(t *testing.T) {
			text, calls := ParseToolCalls(tc.format, tc.reply)
			checkCalls(t, "whole", text, calls, tc.text, tc.calls)
		})
	}
}

// TestToolParserChunks streams each reply in pieces of every size, split
// anywhere (inside markers and UTF-8 sequences too): the result is the
// same, and the text released never includes part of a call.
func TestToolParserChunks(t *testing.T) {
	for _, tc := range toolCases {
		for size := 1; size <= 7; size++ {
			p := NewToolParser(tc.format)
			var text strings.Builder
			var calls []ToolCall
			for i := 0; i < len(tc.reply); i += size {
				tx, c := p.Feed(tc.reply[i:min(i+size, len(tc.reply))])
				if tc.calls != nil && strings.ContainsAny(tx, "{[<") && !strings.Contains(tc.text, tx) {
					t.Errorf("%s/%d: released %q, part of a call", tc.name, size, tx)
				}
				text.WriteString(tx)
				calls = append(calls, c...)
			}
			tx, c := p.Flush()
			text.WriteString(tx)
			calls = append(calls, c...)
			checkCalls(t, tc.name, text.String(), calls, tc.text, tc.calls)
			if !utf8.ValidString(text.String()) {
				t.Errorf("%s/%d: invalid UTF-8", tc.name, size)
			}
		}
	}
}

// TestToolParserStreamsText: text before a marker is released as it
// comes, all but what could start a marker.
func TestToolParserStreamsText(t *testing.T) {
	p := NewToolParser(ToolFormatHermes)
	if tx, _ := p.Feed("Let me look <tool"); tx != "Let me look " {
		t.Errorf("released %q, want %q", tx, "Let me look ")
	}
	if tx, _ := p.Feed("kit> up"); tx != "<toolkit> up" {
		t.Errorf("released %q, want the held-back text", tx)
	}
}

// FuzzToolParser: any reply, in any format, split anywhere, parses
// without a panic, and the text plus the calls account for the reply.
func FuzzToolParser(f *testing.F) {
	for _, tc := range toolCases {
		f.Add(int(tc.format), tc.reply, 3)
	}
	f.Fuzz(func(t *testing.T, format int, reply string, size int) {
		fm := ToolFormat(((format % 9) + 9) % 9)
		size = max(1, size%64)
		p := NewToolParser(fm)
		var text strings.Builder
		var calls []ToolCall
		for i := 0; i < len(reply); i += size {
			tx, c := p.Feed(reply[i:min(i+size, len(reply))])
			text.WriteString(tx)
			calls = append(calls, c...)
		}
		tx, c := p.Flush()
		text.WriteString(tx)
		calls = append(calls, c...)
		if len(calls) == 0 && !strings.Contains(reply, "response") && text.String() != reply {
			t.Errorf("no calls, but the text %q is not the reply %q", text.String(), reply)
		}
	})
}

func TestDetectToolFormat(t *testing.T) {
	for file, want := range map[string]ToolFormat{
		"qwen2.5.jinja": ToolFormatHermes, "qwen3.jinja": ToolFormatHermes, "llama3.2.jinja": ToolFormatLlama3,
		"chatml.jinja": ToolFormatGeneric, "llama3.jinja": ToolFormatGeneric, "deepseek-r1.jinja": ToolFormatGeneric,
	} {
		src, err := os.ReadFile("testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := ParseTemplate(string(src))
		if err != nil {
			t.Fatal(err)
		}
		if got := DetectToolFormat(tmpl); got != want {
			t.Errorf("%s: %v, want %v", file, got, want)
		}
	}
	for src, want := range map[string]ToolFormat{
		`{{ tools }}[TOOL_CALLS]`:             ToolFormatMistral,
		`{{ tools }}<|START_ACTION|>`:         ToolFormatCommandR7B,
		`{{ tools }}Action: tool_name`:        ToolFormatCommandR,
		`{{ tools }}<｜tool▁calls▁begin｜>`:     ToolFormatDeepSeekR1,
		`{{ tools }}<|tool_call|>`:            ToolFormatPhi4,
		`{{ tools }}<|python_tag|>`:           ToolFormatLlama3,
		`{% for m in messages %}{% endfor %}`: ToolFormatGeneric,
	} {
		tmpl, err := ParseTemplate(src)
		if err != nil {
			t.Fatal(err)
		}
		if got := DetectToolFormat(tmpl); got != want {
			t.Errorf("%q: %v, want %v", src, got, want)
		}
	}
}
