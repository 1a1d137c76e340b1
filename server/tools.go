package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/llamago/llamago/chat"
	"github.com/llamago/llamago/llama"
)

// Bounds of tool definitions, checked before any template or converter
// sees them.
const (
	maxTools               = chat.MaxTools
	maxToolDescription     = 8 << 10
	maxToolParametersBytes = 64 << 10
)

// toolSetup is what a chat request with tools needs after generation:
// the format to parse replies in.
type toolSetup struct {
	format chat.ToolFormat
	single bool // parallel_tool_calls false: one call per reply
}

// chatTools checks the tools and tool_choice of a request. It returns the
// tools (nil when there are none) and the choice.
func (s *Server) chatTools(req *chatRequest) ([]chat.Tool, chat.ToolChoice, error) {
	var choice chat.ToolChoice
	if req.ParallelToolCalls != nil && !*req.ParallelToolCalls {
		choice.Single = true
	}
	if len(req.Tools) > maxTools {
		return nil, choice, badRequest("tools", "At most %d tools, not %d.", maxTools, len(req.Tools))
	}
	tools := make([]chat.Tool, 0, len(req.Tools))
	seen := map[string]bool{}
	for i, raw := range req.Tools {
		field := fmt.Sprintf("tools[%d]", i)
		var t struct {
			Type     string `json:"type"`
			Function *struct {
				Name        string          `json:"name"`
				Description string          `json:"description"`
				Parameters  json.RawMessage `json:"parameters"`
				Strict      *bool           `json:"strict"`
			} `json:"function"`
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, choice, badRequest(field, "'%s' must be {\"type\": \"function\", \"function\": {\"name\": ..., \"parameters\": {...}}}.", field)
		}
		if t.Type != "function" || t.Function == nil {
			return nil, choice, badRequest(field+".type", "'%s.type' must be \"function\" with a 'function' object.", field)
		}
		f := t.Function
		switch {
		case !validToolName(f.Name):
			return nil, choice, badRequest(field+".function.name", "'%s.function.name' must be 1 to 64 letters, digits, '_', '-' or '.', not %q.", field, f.Name)
		case seen[f.Name]:
			return nil, choice, badRequest(field+".function.name", "Two tools are named %q.", f.Name)
		case len(f.Description) > maxToolDescription:
			return nil, choice, badRequest(field+".function.description", "'%s.function.description' has %d bytes, more than %d.", field, len(f.Description), maxToolDescription)
		case len(f.Parameters) > maxToolParametersBytes:
			return nil, choice, badRequest(field+".function.parameters", "'%s.function.parameters' has %d bytes, more than %d.", field, len(f.Parameters), maxToolParametersBytes)
		}
		seen[f.Name] = true
		tool := chat.Tool{Type: "function", Function: chat.ToolFunction{Name: f.Name, Description: f.Description}}
		if p := bytes.TrimSpace(f.Parameters); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
			if p[0] != '{' {
				return nil, choice, badRequest(field+".function.parameters", "'%s.function.parameters' must be a JSON schema object.", field)
			}
			tool.Function.Parameters = json.RawMessage(p)
		}
		tools = append(tools, tool)
	}
	if c := req.ToolChoice; c != nil {
		switch c.mode {
		case "none":
			choice.Mode = chat.ToolNone
		case "required":
			choice.Mode, choice.Name = chat.ToolRequired, c.name
		}
		if c.mode == "required" && len(tools) == 0 {
			return nil, choice, badRequest("tool_choice", "'tool_choice' requires 'tools'.")
		}
		if c.name != "" && !seen[c.name] {
			return nil, choice, badRequest("tool_choice", "'tool_choice' names the function %q, which is not one of the tools.", c.name)
		}
	}
	if len(tools) == 0 {
		return nil, choice, nil
	}
	return tools, choice, nil
}

func validToolName(n string) bool {
	if len(n) < 1 || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// toolGrammar adds the tools' grammar to the generation parameters.
func (s *Server) toolGrammar(p *genParams, tools []chat.Tool, choice chat.ToolChoice) error {
	g, ok, err := s.toolFormat.Grammar(tools, choice)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "chat: ")
		if errors.Is(err, llama.ErrInvalidSchema) {
			return badRequest("tools", "A tool's parameters schema cannot be used: %s.", msg)
		}
		return badRequest("tools", "The tools cannot be used: %s.", msg)
	}
	if !ok {
		return nil
	}
	if p.grammar != "" {
		return badRequest("tools", "'tools' cannot be used with 'grammar' or 'response_format', unless 'tool_choice' is \"none\".")
	}
	opt, ok := g.SamplerOption(s.model)
	if !ok {
		return nil // auto, with markers the model cannot write as tokens: replies are only parsed
	}
	p.grammar, p.grammarParam = g.GBNF, "tools"
	p.sampling = append(p.sampling, opt)
	return nil
}

// callID makes the id of a call: Mistral's templates want nine letters
// and digits, others take OpenAI's call_ ids.
func (s *Server) callID() string {
	const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	if s.toolFormat == chat.ToolFormatMistral {
		var b [9]byte
		_, _ = rand.Read(b[:])
		for i := range b {
			b[i] = alnum[int(b[i])%len(alnum)]
		}
		return string(b[:])
	}
	return newID("call_")
}

// toolCallJSON is a call in a response message.
type toolCallJSON struct {
	Index    *int             `json:"index,omitempty"` // in stream deltas
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function functionCallJSON `json:"function"`
}

type functionCallJSON struct {
	Name      string  `json:"name,omitempty"`
	Arguments *string `json:"arguments,omitempty"`
}

// argumentsText is a call's arguments as the JSON text OpenAI sends.
func argumentsText(c chat.ToolCall) string {
	switch a := c.Function.Arguments.(type) {
	case json.RawMessage:
		return string(a)
	case string:
		return a
	case nil:
		return "{}"
	}
	b, err := json.Marshal(c.Function.Arguments)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// choiceTools parses the tool calls of one choice as it streams.
type choiceTools struct {
	parser *chat.ToolParser
	calls  []chat.ToolCall
	single bool
}

func newChoiceTools(t *toolSetup) *choiceTools {
	return &choiceTools{parser: chat.NewToolParser(t.format), single: t.single}
}

// feed parses text (flushing at the end) and returns the text to send and
// the new calls, with ids, keeping one call when calls are single.
func (c *choiceTools) feed(s *Server, text string, final bool) (string, []chat.ToolCall) {
	out, calls := c.parser.Feed(text)
	if final {
		t2, c2 := c.parser.Flush()
		out += t2
		calls = append(calls, c2...)
	}
	var kept []chat.ToolCall
	for _, call := range calls {
		if c.single && len(c.calls) > 0 {
			continue
		}
		if call.ID == "" || s.toolFormat == chat.ToolFormatMistral && len(call.ID) != 9 {
			call.ID = s.callID()
		}
		c.calls = append(c.calls, call)
		kept = append(kept, call)
	}
	return out, kept
}
