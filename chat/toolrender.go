package chat

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// The generic tool format, for templates that do not render tools
// themselves (see Template.NativeTools). Render then passes:
//
//   - the tools as a block of text at the end of the system message (a
//     system message is added when there is none): GenericToolsPrompt;
//   - an assistant message's tool calls as its content, the JSON object
//     {"tool_calls": [{"name": ..., "arguments": {...}}]} that the model
//     is asked to write (after the message's own text, if any);
//   - tool messages as user messages whose content is
//     {"tool_response": {"name": ..., "tool_call_id": ..., "content": ...}},
//     consecutive ones joined into one message, one object a line.

// GenericToolsPrompt is the text the generic format adds to the system
// prompt for tools: each tool's name, description and parameters schema
// as a line of JSON, and how to call them.
func GenericToolsPrompt(tools []any) string {
	var b strings.Builder
	b.WriteString("You can call the following tools. Each is given as JSON: its name, what it does and the JSON schema of its arguments.\n")
	for _, t := range tools {
		b.WriteString(toolLine(t))
		b.WriteByte('\n')
	}
	b.WriteString(`To call tools, reply with only a JSON object of this form, and nothing else: {"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}` + "\n")
	b.WriteString("Otherwise, reply to the user as usual.")
	return b.String()
}

// toolLine is the JSON line of a tool: its function in the OpenAI format.
func toolLine(t any) string {
	data := marshal(t)
	var tool struct {
		Function json.RawMessage `json:"function"`
	}
	if json.Unmarshal(data, &tool) == nil && len(tool.Function) > 0 {
		data = tool.Function
	}
	return compactJSON(data)
}

// compactJSON removes the insignificant whitespace of JSON, keeping its
// key order.
func compactJSON(data []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, data) != nil {
		return string(data)
	}
	return b.String()
}

// marshal encodes v as JSON without escaping <, > and &, which models
// read better as they are.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return []byte("null")
	}
	return bytes.TrimSpace(b.Bytes())
}

// GenericToolCallsText is the content the generic format renders for an
// assistant message's tool calls.
func GenericToolCallsText(calls []ToolCall) string {
	type call struct {
		Name      string `json:"name"`
		Arguments any    `json:"arguments"`
	}
	list := make([]call, len(calls))
	for i, c := range calls {
		args := c.Function.Arguments
		if s, ok := args.(string); ok && json.Valid([]byte(s)) {
			args = json.RawMessage(s)
		}
		if args == nil {
			args = json.RawMessage("{}")
		}
		list[i] = call{c.Function.Name, args}
	}
	data := marshal(map[string]any{"tool_calls": list})
	return strings.Replace(compactJSON(data), `{"tool_calls":[`, `{"tool_calls": [`, 1)
}

// usesTools reports whether a render involves tools.
func usesTools(msgs []Message, opts RenderOptions) bool {
	if len(opts.Tools) > 0 {
		return true
	}
	return slices.ContainsFunc(msgs, func(m Message) bool { return len(m.ToolCalls) > 0 || m.Role == "tool" })
}

// genericTools rewrites a conversation with tools into one without, in the
// generic format.
func genericTools(msgs []Message, opts RenderOptions) ([]Message, RenderOptions) {
	out := make([]Message, 0, len(msgs)+1)
	if len(opts.Tools) > 0 {
		block := GenericToolsPrompt(opts.Tools)
		if len(msgs) > 0 && msgs[0].Role == "system" {
			sys := msgs[0]
			sys.Content = strings.TrimRight(sys.Content, "\n") + "\n\n" + block
			out = append(out, sys)
			msgs = msgs[1:]
		} else {
			out = append(out, Message{Role: "system", Content: block})
		}
	}
	for _, m := range msgs {
		switch {
		case len(m.ToolCalls) > 0:
			text := GenericToolCallsText(m.ToolCalls)
			if strings.TrimSpace(m.Content) != "" {
				text = m.Content + "\n" + text
			}
			m.Content, m.ToolCalls = text, nil
		case m.Role == "tool":
			resp := map[string]any{"content": m.Content}
			if m.Name != "" {
				resp["name"] = m.Name
			}
			if m.ToolCallID != "" {
				resp["tool_call_id"] = m.ToolCallID
			}
			data := marshal(map[string]any{"tool_response": resp})
			line := compactJSON(data)
			if n := len(out); n > 0 && out[n-1].Role == "user" && strings.HasPrefix(out[n-1].Content, `{"tool_response":`) {
				out[n-1].Content += "\n" + line
				continue
			}
			m = Message{Role: "user", Content: line}
		}
		out = append(out, m)
	}
	opts.Tools = nil
	return out, opts
}
