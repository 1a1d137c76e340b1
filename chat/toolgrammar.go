package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/llamago/llamago/llama"
)

// ErrInvalidTool is returned for a tool definition that cannot be used: a
// name that is not 1 to 64 letters, digits, '_', '-' or '.', a duplicate
// name, or a parameters schema that is not a JSON object or that
// llama.JSONSchemaGrammar refuses.
var ErrInvalidTool = errors.New("chat: invalid tool")

// MaxTools is the most tools Grammar takes.
const MaxTools = 128

// MaxParallelCalls is the most calls the grammar lets one reply make, so
// that a model that would go on calling forever ends its reply.
const MaxParallelCalls = 8

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// ToolChoice says whether and which tools the model must call.
type ToolChoice struct {
	// Mode is ToolAuto, ToolRequired or ToolNone.
	Mode ToolMode
	// Name, if set, is the one tool the model must call (Mode is then
	// ToolRequired).
	Name string
	// Single allows one call per reply (OpenAI's parallel_tool_calls
	// false); by default a reply may make several.
	Single bool
}

// ToolMode is OpenAI's tool_choice: auto, required or none.
type ToolMode int

const (
	// ToolAuto lets the model choose between text and calls; the grammar
	// constrains a call once the model writes its format's marker.
	ToolAuto ToolMode = iota
	// ToolRequired makes the model call a tool: the whole reply is
	// constrained to calls.
	ToolRequired
	// ToolNone: no calls; the tools are still shown to the model.
	ToolNone
)

// ToolGrammar is a grammar that constrains a reply's tool calls.
type ToolGrammar struct {
	// GBNF is the grammar, Root its start rule.
	GBNF, Root string
	// Lazy grammars (ToolAuto) leave the reply free until a trigger:
	// one of the regular expressions Triggers matches the whole reply so
	// far, or the model writes one of Markers as a single token.
	Lazy     bool
	Triggers []string
	Markers  []string
}

// SamplerOption returns the option that applies the grammar when
// sampling model m. ok is false for a lazy grammar that m cannot
// trigger: its markers are not single tokens of m's vocabulary (they are
// in the models of the families that use them). Markers are matched as
// tokens, not as regular expressions over the reply: llama.cpp runs
// std::regex, whose matching recurses once per character of the reply,
// and a long reply would overflow the stack.
func (g ToolGrammar) SamplerOption(m *llama.Model) (opt llama.SamplerOption, ok bool) {
	if !g.Lazy {
		return llama.WithGrammar(g.GBNF, g.Root), true
	}
	var toks []llama.TokenID
	for _, mk := range g.Markers {
		if t, err := m.Tokenize(mk, llama.ParseSpecial); err == nil && len(t) == 1 {
			toks = append(toks, t[0])
		}
	}
	if len(toks) == 0 && len(g.Triggers) == 0 {
		return nil, false
	}
	return llama.WithLazyGrammar(g.GBNF, g.Root, g.Triggers, toks), true
}

// toolRoot is the start rule of tool grammars; the converter's rules never
// take this name (it names them after "root" and the schema's
// properties).
const toolRoot = "llamago-tool-calls"

// ToolGrammar builds the grammar that makes a reply's calls valid in
// format f: each call names one of tools (or choice.Name) and its
// arguments match that tool's parameters schema, converted with
// llama.JSONSchemaGrammar. With ToolRequired (or a name) the whole reply
// is calls; with ToolAuto the grammar is lazy, starting at the format's
// marker (for the generic and Llama 3 formats, a reply that begins with
// "{"). ToolNone has no grammar: ok is false.
func (f ToolFormat) Grammar(tools []Tool, choice ToolChoice) (g ToolGrammar, ok bool, err error) {
	if choice.Mode == ToolNone || len(tools) == 0 {
		return ToolGrammar{}, false, nil
	}
	if len(tools) > MaxTools {
		return ToolGrammar{}, false, fmt.Errorf("%w: %d tools, at most %d", ErrInvalidTool, len(tools), MaxTools)
	}
	var chosen []Tool
	seen := map[string]bool{}
	for _, t := range tools {
		name := t.Function.Name
		if !toolName.MatchString(name) {
			return ToolGrammar{}, false, fmt.Errorf("%w: name %q must be 1 to 64 letters, digits, '_', '-' or '.'", ErrInvalidTool, name)
		}
		if seen[name] {
			return ToolGrammar{}, false, fmt.Errorf("%w: two tools named %q", ErrInvalidTool, name)
		}
		seen[name] = true
		if choice.Name == "" || choice.Name == name {
			chosen = append(chosen, t)
		}
	}
	if len(chosen) == 0 {
		return ToolGrammar{}, false, fmt.Errorf("%w: tool_choice names %q, which is not one of the tools", ErrInvalidTool, choice.Name)
	}
	// One schema whose alternatives are the tools' parameters: the
	// converter makes a rule of each, named in the root rule.
	alts := make([]json.RawMessage, len(chosen))
	for i, t := range chosen {
		p, err := parametersSchema(t.Function.Parameters)
		if err != nil {
			return ToolGrammar{}, false, fmt.Errorf("%w: %s: %w", ErrInvalidTool, t.Function.Name, err)
		}
		alts[i] = p
	}
	schema, _ := json.Marshal(map[string]any{"anyOf": alts})
	conv, err := llama.JSONSchemaGrammar(string(schema))
	if err != nil {
		return ToolGrammar{}, false, fmt.Errorf("%w: the parameters schemas: %w", ErrInvalidTool, err)
	}
	rules, err := alternativeRules(conv, len(chosen))
	if err != nil {
		return ToolGrammar{}, false, err
	}
	var b strings.Builder
	b.WriteString(conv)
	b.WriteString("\n")
	calls := make([]string, len(chosen))
	for i, t := range chosen {
		calls[i] = f.callRule(t.Function.Name, rules[i])
	}
	fmt.Fprintf(&b, "llamago-call ::= %s\n", strings.Join(calls, " | "))
	b.WriteString(f.rootRule(!choice.Single))
	g = ToolGrammar{GBNF: b.String(), Root: toolRoot}
	if choice.Mode == ToolAuto && choice.Name == "" {
		g.Lazy = true
		g.Triggers, g.Markers = f.triggers()
	}
	return g, true, nil
}

// noParameters is the schema of a tool without parameters: as OpenAI
// documents, a function that takes none, so {}.
const noParameters = `{"type":"object","properties":{}}`

// parametersSchema is a tool's parameters as a JSON schema object.
func parametersSchema(p any) (json.RawMessage, error) {
	if p == nil {
		return json.RawMessage(noParameters), nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	if s := strings.TrimSpace(string(b)); s == "null" {
		return json.RawMessage(noParameters), nil
	} else if !strings.HasPrefix(s, "{") {
		return nil, errors.New("parameters must be a JSON schema object")
	}
	return b, nil
}

// alternativeRules returns the rule names of the root's n alternatives.
func alternativeRules(g string, n int) ([]string, error) {
	for line := range strings.SplitSeq(g, "\n") {
		rest, ok := strings.CutPrefix(line, "root ::= ")
		if !ok {
			continue
		}
		names := strings.Split(strings.TrimSpace(rest), " | ")
		if len(names) != n {
			break
		}
		for _, nm := range names {
			if !ruleName.MatchString(nm) {
				return nil, fmt.Errorf("%w: unexpected grammar from the parameters schemas", ErrInvalidTool)
			}
		}
		return names, nil
	}
	return nil, fmt.Errorf("%w: unexpected grammar from the parameters schemas", ErrInvalidTool)
}

var ruleName = regexp.MustCompile(`^[a-zA-Z0-9-]+$`)

// lit is a GBNF literal of s.
func lit(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// callRule is the GBNF of one call of tool name with arguments rule args.
func (f ToolFormat) callRule(name, args string) string {
	switch f {
	case ToolFormatLlama3:
		return fmt.Sprintf(`%s %s "}"`, lit(`{"name": "`+name+`", "parameters": `), args)
	case ToolFormatCommandR, ToolFormatCommandR7B:
		return fmt.Sprintf(`%s %s "}"`, lit(`{"tool_name": "`+name+`", "parameters": `), args)
	case ToolFormatDeepSeekR1:
		return fmt.Sprintf(`%s %s %s`, lit(markDSCall+"function"+markDSSep+name+"\n```json\n"), args, lit("\n```"+markDSCallEnd))
	case ToolFormatHermes:
		return fmt.Sprintf(`%s %s %s`, lit(markHermesOpen+"\n"+`{"name": "`+name+`", "arguments": `), args, lit("}\n"+markHermesClose))
	case ToolFormatMistralArgs:
		return fmt.Sprintf(`%s %s`, lit(markMistral+name+markMistralArgs), args)
	}
	return fmt.Sprintf(`%s %s "}"`, lit(`{"name": "`+name+`", "arguments": `), args)
}

// rootRule is the start rule: the format's calls, one or several.
func (f ToolFormat) rootRule(many bool) string {
	list := func(sep string) string {
		switch {
		case many && sep == "":
			return fmt.Sprintf(`llamago-call{1,%d}`, MaxParallelCalls)
		case many:
			return fmt.Sprintf(`llamago-call (%s llamago-call){0,%d}`, lit(sep), MaxParallelCalls-1)
		}
		return "llamago-call"
	}
	var body string
	switch f {
	case ToolFormatLlama3:
		body = `"<|python_tag|>"? llamago-call` // one call: Llama 3 makes one per turn
	case ToolFormatHermes:
		body = list("\n")
	case ToolFormatMistral:
		body = lit(markMistral+"[") + " " + list(", ") + ` "]"`
	case ToolFormatMistralArgs:
		body = list("")
	case ToolFormatCommandR:
		body = lit(markCmdROpen+"\n[") + " " + list(",\n") + " " + lit("]\n"+markCmdRClose)
	case ToolFormatCommandR7B:
		body = lit(markCmdR7BOpen+"[") + " " + list(", ") + " " + lit("]"+markCmdR7BClose)
	case ToolFormatDeepSeekR1:
		body = lit(markDSOpen) + " " + list("\n") + " " + lit(markDSClose)
	case ToolFormatPhi4:
		body = lit(markPhi4Open+"[") + " " + list(", ") + " " + lit("]"+markPhi4Close)
	default:
		body = lit(`{"tool_calls": [`) + " " + list(", ") + ` "]}"`
	}
	return toolRoot + " ::= " + body + "\n"
}

// triggers are the lazy grammar's triggers: for a reply that begins with
// "{", a pattern whose match ends within a few characters (the capture is
// where the grammar starts), and the opening markers of the others.
func (f ToolFormat) triggers() (patterns, markers []string) {
	for _, b := range f.blocks() {
		if b.atStart {
			patterns = append(patterns, `[ \t\r\n]{0,16}(\{)[\s\S]{0,256}`)
			continue
		}
		markers = append(markers, b.open)
	}
	return patterns, markers
}
