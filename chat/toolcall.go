package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// ToolFormat is the way a model family writes tool calls in its replies.
// Each has its markers, which ToolParser looks for and ToolGrammar makes
// the model write.
type ToolFormat int

const (
	// ToolFormatGeneric is llamago's format for templates that do not
	// render tools (see Template.NativeTools): the whole reply is one JSON
	// object {"tool_calls": [{"name": ..., "arguments": {...}}, ...]}.
	// The parser also takes a lone {"name": ..., "arguments": ...} or
	// {"tool_call": {...}}, and {"response": "..."} as text.
	ToolFormatGeneric ToolFormat = iota
	// ToolFormatLlama3 is Llama 3.1, 3.2 and 3.3's: a reply that is one
	// JSON object {"name": ..., "parameters": {...}}, possibly after
	// <|python_tag|>.
	ToolFormatLlama3
	// ToolFormatHermes is Hermes 2 Pro's, which Qwen 2.5 and Qwen 3 use:
	// each call is <tool_call>{"name": ..., "arguments": {...}}</tool_call>.
	ToolFormatHermes
	// ToolFormatMistral is Mistral's (v3 tokenizer and later):
	// [TOOL_CALLS][{"name": ..., "arguments": {...}, "id": ...}, ...].
	ToolFormatMistral
	// ToolFormatCommandR is Command-R and Command-R+'s: Action: ```json
	// [{"tool_name": ..., "parameters": {...}}, ...] ```.
	ToolFormatCommandR
	// ToolFormatCommandR7B is Command R7B's: <|START_ACTION|>[{"tool_name":
	// ..., "parameters": {...}}, ...]<|END_ACTION|>.
	ToolFormatCommandR7B
	// ToolFormatDeepSeekR1 is DeepSeek R1's:
	// <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
	// ```json {...} ```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>.
	ToolFormatDeepSeekR1
	// ToolFormatPhi4 is Phi-4-mini's: <|tool_call|>[{"name": ...,
	// "arguments": {...}}, ...]<|/tool_call|>.
	ToolFormatPhi4
	// ToolFormatMistralArgs is Mistral's from tokenizer v11 (Mistral
	// Small 3.2, Magistral, Devstral): [TOOL_CALLS]NAME[ARGS]{...} for
	// each call. Its parser also takes the older form, and
	// ToolFormatMistral's this one.
	ToolFormatMistralArgs
)

var toolFormatNames = [...]string{"generic", "llama3", "hermes", "mistral", "command-r", "command-r7b", "deepseek-r1", "phi4", "mistral-args"}

func (f ToolFormat) String() string {
	if f >= 0 && int(f) < len(toolFormatNames) {
		return toolFormatNames[f]
	}
	return fmt.Sprintf("ToolFormat(%d)", int(f))
}

// Markers of the formats.
const (
	markHermesOpen  = "<tool_call>"
	markHermesClose = "</tool_call>"
	markMistral     = "[TOOL_CALLS]"
	markMistralArgs = "[ARGS]"
	markMistralID   = "[CALL_ID]"
	markPythonTag   = "<|python_tag|>"
	markCmdROpen    = "Action: ```json"
	markCmdRClose   = "```"
	markCmdR7BOpen  = "<|START_ACTION|>"
	markCmdR7BClose = "<|END_ACTION|>"
	markDSOpen      = "<｜tool▁calls▁begin｜>"
	markDSClose     = "<｜tool▁calls▁end｜>"
	markDSCall      = "<｜tool▁call▁begin｜>"
	markDSSep       = "<｜tool▁sep｜>"
	markDSCallEnd   = "<｜tool▁call▁end｜>"
	markPhi4Open    = "<|tool_call|>"
	markPhi4Close   = "<|/tool_call|>"
)

// DetectToolFormat returns the tool-call format of a chat template from
// the markers its source writes: ToolFormatGeneric for a template that
// does not render tools (see NativeTools), and for one whose markers are
// none of the known families'.
func DetectToolFormat(t *Template) ToolFormat {
	if !t.NativeTools() {
		return ToolFormatGeneric
	}
	src := t.src
	switch {
	case strings.Contains(src, markHermesOpen):
		return ToolFormatHermes
	case strings.Contains(src, markMistral) && strings.Contains(src, markMistralArgs):
		return ToolFormatMistralArgs
	case strings.Contains(src, markMistral):
		return ToolFormatMistral
	case strings.Contains(src, markDSOpen):
		return ToolFormatDeepSeekR1
	case strings.Contains(src, markPhi4Open):
		return ToolFormatPhi4
	case strings.Contains(src, markCmdR7BOpen):
		return ToolFormatCommandR7B
	case strings.Contains(src, "Action:") && strings.Contains(src, "tool_name"):
		return ToolFormatCommandR
	case strings.Contains(src, markPythonTag), strings.Contains(src, "<|start_header_id|>") && strings.Contains(src, `"parameters"`):
		return ToolFormatLlama3
	}
	return ToolFormatGeneric
}

var toolsVar = regexp.MustCompile(`\btools\b`)

// NativeTools reports whether the template renders tools itself: a Jinja
// template that reads the tools variable. Render passes the others
// tools, tool calls and tool results in llamago's generic format (see
// ToolFormatGeneric), as text in the system prompt and the messages.
func (t *Template) NativeTools() bool {
	return t.name == "" && toolsVar.MatchString(t.src)
}

// block is one kind of tool-call block of a format: an opening marker,
// and a closing one or, when close is "", the end of the JSON value that
// follows the opening.
type block struct {
	open, close string
	atStart     bool // a JSON object at the start of the reply opens it; open is "{"
	// end, if set, finds the end of a block without a closing marker
	// (by default, the end of the JSON value after the opening).
	end   func(body string, js *jsonScan) (n int, ok bool)
	parse func(body string) ([]ToolCall, string, bool)
}

func (f ToolFormat) blocks() []block {
	switch f {
	case ToolFormatLlama3:
		return []block{
			{open: markPythonTag, parse: parseLlama3},
			{open: "{", atStart: true, parse: parseLlama3},
		}
	case ToolFormatHermes:
		return []block{{open: markHermesOpen, close: markHermesClose, parse: parseOneCall}}
	case ToolFormatMistral, ToolFormatMistralArgs:
		return []block{{open: markMistral, end: mistralEnd, parse: parseMistral}}
	case ToolFormatCommandR:
		return []block{{open: markCmdROpen, close: markCmdRClose, parse: parseCallList}}
	case ToolFormatCommandR7B:
		return []block{{open: markCmdR7BOpen, close: markCmdR7BClose, parse: parseCallList}}
	case ToolFormatDeepSeekR1:
		return []block{{open: markDSOpen, close: markDSClose, parse: parseDeepSeek}}
	case ToolFormatPhi4:
		return []block{{open: markPhi4Open, close: markPhi4Close, parse: parseCallList}}
	}
	return []block{{open: "{", atStart: true, parse: parseGeneric}}
}

// ParseToolCalls splits a whole reply in format f into its text and its
// tool calls. Calls that do not parse stay in the text.
func ParseToolCalls(f ToolFormat, reply string) (text string, calls []ToolCall) {
	p := NewToolParser(f)
	t1, c1 := p.Feed(reply)
	t2, c2 := p.Flush()
	return t1 + t2, append(c1, c2...)
}

// ToolParser parses a reply streamed in pieces into text and tool calls.
// Feed returns the text that cannot be part of a call, holding back text
// that could be the start of a call marker until more comes; a call is
// returned once it is complete. A call that does not parse (invalid JSON,
// no name, arguments that are not an object) is returned as text,
// markers included. A ToolParser is for one reply and one goroutine.
type ToolParser struct {
	blocks []block
	buf    string
	in     *block // the block being read, or nil
	// Where the reading of the block stopped, so that each Feed reads
	// only the new text.
	js       jsonScan
	searched int
	lead     int  // whitespace before an atStart block
	started  bool // text other than whitespace has been released
	after    bool // a call was just parsed: drop the whitespace after it
}

// NewToolParser returns a parser of replies in format f.
func NewToolParser(f ToolFormat) *ToolParser {
	return &ToolParser{blocks: f.blocks()}
}

// Feed parses the next piece of the reply.
func (p *ToolParser) Feed(s string) (text string, calls []ToolCall) {
	p.buf += s
	return p.scan(false)
}

// Flush ends the reply: held-back text is released, and a call block
// still open is parsed as it stands (a model may end on the call without
// the closing marker) or released as text.
func (p *ToolParser) Flush() (text string, calls []ToolCall) {
	text, calls = p.scan(true)
	if p.in != nil {
		body := p.buf[len(p.in.open):]
		if p.in.atStart {
			body = p.buf
		}
		if c, t, ok := p.in.parse(body); ok {
			calls = append(calls, c...)
			text += t
		} else {
			text += p.buf
		}
		p.in = nil
	} else {
		text += p.buf
	}
	p.buf = ""
	return text, calls
}

func (p *ToolParser) scan(final bool) (text string, calls []ToolCall) {
	var out strings.Builder
	for {
		if p.after {
			trimmed := strings.TrimLeft(p.buf, " \t\r\n;")
			if trimmed == "" {
				p.buf = ""
				break
			}
			p.buf, p.after = trimmed, false
		}
		if p.in == nil {
			if !p.findOpen(&out, final) {
				break
			}
			continue
		}
		b := p.in
		body := p.buf[len(b.open):]
		var end int // of the block in buf
		switch {
		case b.atStart:
			n, ok := p.js.next(p.buf)
			if !ok {
				p.release(&out) // not JSON: the reply is text
				continue
			}
			if n < 0 {
				return out.String(), calls
			}
			end, body = n, p.buf[:n]
		case b.close == "":
			var n int
			var ok bool
			if b.end != nil {
				n, ok = b.end(body, &p.js)
			} else {
				n, ok = p.js.next(body)
			}
			if !ok {
				p.release(&out)
				continue
			}
			if n < 0 {
				return out.String(), calls
			}
			end, body = len(b.open)+n, body[:n]
		default:
			i := strings.Index(body[p.searched:], b.close)
			if i < 0 {
				// Search only the new text next time.
				p.searched = max(0, len(body)-len(b.close)+1)
				return out.String(), calls
			}
			i += p.searched
			end, body = len(b.open)+i+len(b.close), body[:i]
		}
		c, t, ok := b.parse(body)
		if !ok {
			p.release(&out)
			continue
		}
		calls = append(calls, c...)
		out.WriteString(t)
		p.buf = p.buf[end:]
		p.leave()
		p.after = true
	}
	return out.String(), calls
}

// release gives up the open block: its opening marker is text.
func (p *ToolParser) release(out *strings.Builder) {
	n := len(p.in.open)
	if p.in.atStart {
		n += p.lead
	}
	out.WriteString(p.buf[:n])
	p.buf = p.buf[n:]
	p.leave()
	p.started = true
}

// leave resets the state of the block being read.
func (p *ToolParser) leave() {
	p.in, p.js, p.searched = nil, jsonScan{}, 0
}

// findOpen looks for the earliest opening marker in buf. It writes the
// text before it to out and reports true when one opens, or writes what
// cannot start a marker and reports false.
func (p *ToolParser) findOpen(out *strings.Builder, final bool) bool {
	if !p.started {
		trimmed := strings.TrimLeft(p.buf, " \t\r\n")
		if trimmed == "" {
			if final {
				out.WriteString(p.buf)
				p.buf = ""
			}
			return false
		}
		for i := range p.blocks {
			if b := &p.blocks[i]; b.atStart && strings.HasPrefix(trimmed, b.open) {
				// The whitespace before stays with the block: text if
				// the block is not a call.
				p.lead, p.in = len(p.buf)-len(trimmed), b
				return true
			}
		}
	}
	at, which := -1, -1
	for i, b := range p.blocks {
		if b.atStart {
			continue
		}
		if j := strings.Index(p.buf, b.open); j >= 0 && (at < 0 || j < at) {
			at, which = j, i
		}
	}
	if at >= 0 {
		p.emit(out, p.buf[:at])
		p.buf, p.in = p.buf[at:], &p.blocks[which]
		return true
	}
	keep := 0
	if !final {
		keep = p.heldBack()
	}
	p.emit(out, p.buf[:len(p.buf)-keep])
	p.buf = p.buf[len(p.buf)-keep:]
	return false
}

func (p *ToolParser) emit(out *strings.Builder, s string) {
	if strings.TrimSpace(s) != "" {
		p.started = true
	}
	out.WriteString(s)
}

// heldBack is the length of the longest end of buf that could begin an
// opening marker (or an incomplete UTF-8 sequence).
func (p *ToolParser) heldBack() int {
	keep := 0
	for _, b := range p.blocks {
		if b.atStart {
			continue
		}
		for n := min(len(b.open)-1, len(p.buf)); n > keep; n-- {
			if strings.HasPrefix(b.open, p.buf[len(p.buf)-n:]) {
				keep = n
				break
			}
		}
	}
	// Never split a UTF-8 sequence.
	for keep < len(p.buf) && keep < utf8.UTFMax && !utf8.ValidString(p.buf[:len(p.buf)-keep]) {
		keep++
	}
	return keep
}

// jsonScan finds the end of the JSON object or array that a growing
// text starts with, after whitespace, reading each byte once.
type jsonScan struct {
	pos               int // bytes read
	depth             int
	begun, inStr, esc bool
}

// next reads s, the text so far (it only grows between calls): n > 0 is
// the end of the value, n = -1 means more may complete it; ok is false
// when s cannot start one.
func (j *jsonScan) next(s string) (n int, ok bool) {
	for ; j.pos < len(s); j.pos++ {
		c := s[j.pos]
		switch {
		case !j.begun:
			switch c {
			case ' ', '\t', '\r', '\n':
				continue
			case '{', '[':
				j.begun, j.depth = true, 1
				continue
			}
			return 0, false
		case j.inStr:
			switch {
			case j.esc:
				j.esc = false
			case c == '\\':
				j.esc = true
			case c == '"':
				j.inStr = false
			}
		case c == '"':
			j.inStr = true
		case c == '{' || c == '[':
			if j.depth++; j.depth > maxJSONDepth {
				return 0, false
			}
		case c == '}' || c == ']':
			if j.depth--; j.depth == 0 {
				j.pos++
				return j.pos, true
			}
		}
	}
	return -1, true
}

// maxJSONDepth bounds the nesting of a call's JSON.
const maxJSONDepth = 128

// rawCall is a call object as the formats write it.
type rawCall struct {
	Name       string          `json:"name"`
	ToolName   string          `json:"tool_name"`
	Function   *rawCall        `json:"function"`
	Arguments  json.RawMessage `json:"arguments"`
	Parameters json.RawMessage `json:"parameters"`
	ID         string          `json:"id"`
}

// call converts a raw call, checking it has a name and object arguments
// (or a string holding a JSON object).
func (r rawCall) call() (ToolCall, bool) {
	if r.Function != nil && r.Name == "" {
		f := *r.Function
		f.ID = r.ID
		return f.call()
	}
	name := r.Name
	if name == "" {
		name = r.ToolName
	}
	args := r.Arguments
	if len(args) == 0 {
		args = r.Parameters
	}
	obj, ok := argsObject(args)
	if name == "" || !ok {
		return ToolCall{}, false
	}
	return ToolCall{ID: r.ID, Type: "function", Function: FunctionCall{Name: name, Arguments: obj}}, true
}

// argsObject returns arguments as a compact JSON object: absent ones as
// {}, a string holding an object as that object.
func argsObject(args json.RawMessage) (json.RawMessage, bool) {
	args = bytes.TrimSpace(args)
	if len(args) == 0 || string(args) == "null" {
		return json.RawMessage("{}"), true
	}
	if args[0] == '"' {
		var s string
		if json.Unmarshal(args, &s) != nil {
			return nil, false
		}
		args = []byte(strings.TrimSpace(s))
	}
	if len(args) == 0 || args[0] != '{' || !json.Valid(args) {
		return nil, false
	}
	var b bytes.Buffer
	if json.Compact(&b, args) != nil {
		return nil, false
	}
	return b.Bytes(), true
}

func parseOneCall(body string) ([]ToolCall, string, bool) {
	var r rawCall
	if json.Unmarshal([]byte(strings.TrimSpace(body)), &r) != nil {
		return nil, "", false
	}
	c, ok := r.call()
	if !ok {
		return nil, "", false
	}
	return []ToolCall{c}, "", true
}

// parseCallList parses an array of calls, or a single call object.
func parseCallList(body string) ([]ToolCall, string, bool) {
	body = strings.TrimSpace(body)
	if strings.HasPrefix(body, "{") {
		return parseOneCall(body)
	}
	var rs []rawCall
	if json.Unmarshal([]byte(body), &rs) != nil || len(rs) == 0 {
		return nil, "", false
	}
	calls := make([]ToolCall, 0, len(rs))
	for _, r := range rs {
		c, ok := r.call()
		if !ok {
			return nil, "", false
		}
		calls = append(calls, c)
	}
	return calls, "", true
}

// parseLlama3 parses {"name": ..., "parameters": ...}: only an object
// with a name and parameters (or arguments) and nothing else but "type"
// is a call, so that a reply that happens to be JSON stays text.
func parseLlama3(body string) ([]ToolCall, string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(strings.TrimSpace(body)), &m) != nil {
		return nil, "", false
	}
	for k := range m {
		switch k {
		case "name", "parameters", "arguments", "type":
		default:
			return nil, "", false
		}
	}
	return parseOneCall(body)
}

// parseGeneric parses the generic format's object.
func parseGeneric(body string) ([]ToolCall, string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(strings.TrimSpace(body)), &m) != nil {
		return nil, "", false
	}
	switch {
	case m["tool_calls"] != nil:
		return parseCallList(string(m["tool_calls"]))
	case m["tool_call"] != nil:
		return parseOneCall(string(m["tool_call"]))
	case m["response"] != nil && len(m) == 1:
		var s string
		if json.Unmarshal(m["response"], &s) != nil {
			return nil, "", false
		}
		return nil, s, true
	case m["name"] != nil:
		return parseLlama3(body)
	}
	return nil, "", false
}

// parseDeepSeek parses the calls between DeepSeek R1's markers.
func parseDeepSeek(body string) ([]ToolCall, string, bool) {
	var calls []ToolCall
	rest := strings.TrimSpace(body)
	for rest != "" {
		after, ok := strings.CutPrefix(rest, markDSCall)
		if !ok {
			return nil, "", false
		}
		one, tail, ok := strings.Cut(after, markDSCallEnd)
		if !ok {
			return nil, "", false
		}
		_, head, ok := strings.Cut(one, markDSSep) // the type ("function") before it
		if !ok {
			return nil, "", false
		}
		name, args, ok := strings.Cut(head, "\n")
		if !ok {
			return nil, "", false
		}
		args = strings.TrimSpace(args)
		args = strings.TrimPrefix(args, "```json")
		args = strings.TrimSuffix(strings.TrimSpace(args), "```")
		obj, ok := argsObject(json.RawMessage(args))
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, "", false
		}
		calls = append(calls, ToolCall{Type: "function", Function: FunctionCall{Name: name, Arguments: obj}})
		rest = strings.TrimSpace(tail)
	}
	if len(calls) == 0 {
		return nil, "", false
	}
	return calls, "", true
}

// mistralEnd finds the end of a Mistral call: a JSON array of calls, or
// NAME[ARGS]{...} (NAME[CALL_ID]ID[ARGS]{...}).
func mistralEnd(body string, js *jsonScan) (int, bool) {
	t := strings.TrimLeft(body, " \t\r\n")
	if t == "" {
		return -1, true
	}
	if t[0] == '[' || t[0] == '{' {
		return js.next(body)
	}
	i := strings.Index(t, markMistralArgs)
	if i < 0 {
		if len(t) > 256 || strings.ContainsAny(t, " \t\r\n{") {
			return 0, false // not a name: text
		}
		return -1, true
	}
	off := len(body) - len(t) + i + len(markMistralArgs)
	n, ok := js.next(body[off:])
	if n > 0 {
		n += off
	}
	return n, ok
}

// parseMistral parses either form of Mistral's calls.
func parseMistral(body string) ([]ToolCall, string, bool) {
	t := strings.TrimSpace(body)
	if strings.HasPrefix(t, "[") || strings.HasPrefix(t, "{") {
		return parseCallList(t)
	}
	head, args, ok := strings.Cut(t, markMistralArgs)
	if !ok {
		return nil, "", false
	}
	name, id, _ := strings.Cut(head, markMistralID)
	obj, ok := argsObject(json.RawMessage(args))
	if !ok || !toolName.MatchString(name) {
		return nil, "", false
	}
	return []ToolCall{{ID: id, Type: "function", Function: FunctionCall{Name: name, Arguments: obj}}}, "", true
}
