package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"

	"github.com/llamago/llamago/llama"
)

var (
	// ErrNoTemplate is returned by FromModel for a model whose file has no
	// tokenizer.chat_template.
	ErrNoTemplate = errors.New("chat: the model has no chat template")

	// ErrTemplateSyntax is returned for Jinja source that does not parse.
	ErrTemplateSyntax = errors.New("chat: template syntax error")

	// ErrTemplateLimit is returned when a template is too large or too
	// deeply nested, or a render exceeds a limit: macro recursion, range()
	// sizes, or RenderOptions.Timeout.
	ErrTemplateLimit = errors.New("chat: template limit exceeded")

	// ErrRender is returned for a template that fails while rendering
	// (including a panic in the engine). A raise_exception call in the
	// template is a *RaiseError instead.
	ErrRender = errors.New("chat: template render failed")
)

// RaiseError is the error of a template that called
// raise_exception(message), as transformers' TemplateError: the template
// refuses the conversation, e.g. "Conversation roles must alternate
// user/assistant/user/assistant/...".
type RaiseError struct {
	Message string
}

func (e *RaiseError) Error() string { return "chat: template refused the conversation: " + e.Message }

// Message is one message of a conversation, with the fields that real
// chat templates read (OpenAI's format, as transformers takes it).
type Message struct {
	// Role is "system", "user", "assistant" or "tool" (some templates
	// know others, such as "ipython").
	Role    string `json:"role"`
	Content string `json:"content"`
	// Reasoning is an assistant message's thinking, passed to templates
	// as reasoning_content (Qwen3 and others render or drop it). Leave it
	// empty when Content holds the thinking between its tags.
	Reasoning string `json:"reasoning_content,omitempty"`
	// ToolCalls are the calls an assistant message makes.
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	// Name is the name of the tool whose result a tool message holds.
	Name string `json:"name,omitempty"`
	// ToolCallID is the id of the call a tool message answers.
	ToolCallID string `json:"tool_call_id,omitempty"`
	// Images are a user message's pictures, for a session with a
	// projector (WithProjector). Each stands where Content has
	// llama.DefaultMediaMarker, in order; a Content without markers gets
	// one per image at its start.
	Images []*llama.Image `json:"-"`
}

// ToolCall is a function call made by an assistant message.
type ToolCall struct {
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"` // "function" when empty
	Function FunctionCall `json:"function"`
}

// FunctionCall names a function and its arguments.
type FunctionCall struct {
	Name string `json:"name"`
	// Arguments are usually an object (a map, a struct or a
	// json.RawMessage), which templates render with tojson; a few
	// templates (DeepSeek's) concatenate them and need a JSON string.
	Arguments any `json:"arguments"`
}

// Tool describes a function the model may call, in the OpenAI format that
// transformers passes to templates as tools.
type Tool struct {
	Type     string       `json:"type"` // "function"
	Function ToolFunction `json:"function"`
}

// ToolFunction is the function of a Tool. Parameters is a JSON schema.
type ToolFunction struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Parameters  any    `json:"parameters,omitempty"`
}

// RenderOptions are the variables a template is rendered with besides
// messages.
type RenderOptions struct {
	// AddGenerationPrompt ends the text with the header of an assistant
	// reply (add_generation_prompt).
	AddGenerationPrompt bool
	// Tools are passed as tools: Tool values, or any JSON-marshalable
	// value in the same format (a json.RawMessage keeps its key order).
	// Without tools the variable is none, as in transformers.
	Tools []any
	// BOS and EOS are bos_token and eos_token; empty ones take the
	// template's (from the model for FromModel).
	BOS, EOS string
	// Extra are more variables, such as enable_thinking or date_string.
	// They are set last and may override the others.
	Extra map[string]any
	// Now is the time strftime_now formats (default time.Now()).
	Now time.Time
	// Timeout bounds the render (default DefaultRenderTimeout).
	Timeout time.Duration
}

// DefaultRenderTimeout bounds a render when RenderOptions.Timeout is zero.
const DefaultRenderTimeout = 10 * time.Second

// Limits of a render, beyond which it fails with ErrTemplateLimit.
const (
	maxMacroDepth = 100     // nested macro calls, about Python's recursion limit
	maxRangeItems = 1 << 20 // items made by range() in one render
)

// Template renders conversations into prompt text: a Jinja chat template
// (a model's tokenizer.chat_template) or one of llama.cpp's built-in
// templates. A Template is safe for concurrent use.
type Template struct {
	name     string // builtin name, or "" for Jinja
	src      string // Jinja source
	compiled *jinja.Template
	bos, eos string
}

// ParseTemplate compiles Jinja chat template source. Rendering follows
// transformers' apply_chat_template: trim_blocks and lstrip_blocks, the
// globals raise_exception and strftime_now, tojson as json.dumps.
func ParseTemplate(src string) (*Template, error) {
	prepared, err := prepare(src)
	if err != nil {
		return nil, err
	}
	var compiled *jinja.Template
	err = protect(func() error {
		var err error
		compiled, err = jinja.Compile(prepared)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplateSyntax, err)
	}
	return &Template{src: src, compiled: compiled}, nil
}

// Builtin returns one of llama.cpp's built-in templates by name (see
// BuiltinNames): chatml, llama3, phi3, gemma, mistral-v7, ... They are
// rendered by llama.cpp and know only roles and contents: no tools, no
// template variables.
func Builtin(name string) (*Template, error) {
	if !slices.Contains(llama.BuiltinTemplates(), name) {
		return nil, fmt.Errorf("chat: %q is not one of llama.cpp's built-in templates (%s)", name, strings.Join(BuiltinNames(), ", "))
	}
	return &Template{name: name}, nil
}

// BuiltinNames lists the names Builtin accepts, sorted.
func BuiltinNames() []string {
	names := llama.BuiltinTemplates()
	slices.Sort(names)
	return names
}

// FromModel returns the model's own template, from its
// tokenizer.chat_template, with bos_token and eos_token set to the text of
// the model's BOS and EOS tokens. A model without one gives ErrNoTemplate:
// the caller chooses the fallback (Resolve falls back to chatml).
func FromModel(m *llama.Model) (*Template, error) {
	src := m.ChatTemplate()
	if src == "" {
		return nil, fmt.Errorf("%w (%s)", ErrNoTemplate, m.Path())
	}
	t, err := ParseTemplate(src)
	if err != nil {
		return nil, fmt.Errorf("chat: the chat template of %s: %w", m.Path(), err)
	}
	t.bos, t.eos = specialText(m, m.BOS()), specialText(m, m.EOS())
	return t, nil
}

// Resolve picks a template for a model: with name "", the model's own,
// or chatml when it has none (the rule llama.cpp follows); otherwise the
// built-in template of that name.
func Resolve(m *llama.Model, name string) (*Template, error) {
	if name != "" {
		return Builtin(name)
	}
	t, err := FromModel(m)
	if errors.Is(err, ErrNoTemplate) {
		return Builtin("chatml")
	}
	return t, err
}

// specialText is the text of a special token, or "" for NullToken.
func specialText(m *llama.Model, t llama.TokenID) string {
	if t == llama.NullToken {
		return ""
	}
	s, err := m.TokenText(t)
	if err != nil {
		return ""
	}
	return s
}

// WithTokens returns a copy of t whose bos_token and eos_token default to
// bos and eos.
func (t *Template) WithTokens(bos, eos string) *Template {
	c := *t
	c.bos, c.eos = bos, eos
	return &c
}

// Name is the built-in template's name, or "jinja".
func (t *Template) Name() string {
	if t.name == "" {
		return "jinja"
	}
	return t.name
}

// Builtin reports whether t is one of llama.cpp's built-in templates.
func (t *Template) Builtin() bool { return t.name != "" }

// Source is the Jinja source, or "" for a built-in template.
func (t *Template) Source() string { return t.src }

// Render renders a conversation. Tools, tool calls and tool results go to
// the template as transformers passes them when it renders tools itself
// (see NativeTools); otherwise they are rendered as text in the generic
// format (see ToolFormatGeneric and GenericToolsPrompt). A template that
// calls raise_exception
// returns a *RaiseError; other failures wrap ErrRender, ErrTemplateLimit.
//
// Rendering is bounded: macro recursion deeper than 100 calls, range()
// making more than 2^20 items in all, or a render running past
// opts.Timeout fail with ErrTemplateLimit. The engine offers no way to
// stop a render from outside, so a timed-out render goes on in the
// background until it ends; and it cannot bound memory, so a template
// can still exhaust it by repeating a string ('x' * n) or doubling one
// in a loop. Templates come from model files: treat them as code.
func (t *Template) Render(msgs []Message, opts RenderOptions) (string, error) {
	if !t.NativeTools() && usesTools(msgs, opts) {
		msgs, opts = genericTools(msgs, opts)
	}
	if t.name != "" {
		return t.renderBuiltin(msgs, opts)
	}
	data, err := t.variables(msgs, opts)
	if err != nil {
		return "", err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultRenderTimeout
	}
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = protect(func() error {
			var err error
			r.s, err = t.compiled.RenderValues(data)
			return err
		})
		done <- r
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return "", renderError(r.err)
		}
		return r.s, nil
	case <-timer.C:
		return "", fmt.Errorf("%w: render took longer than %v", ErrTemplateLimit, timeout)
	}
}

// renderError classifies an error from the engine.
func renderError(err error) error {
	var re *RaiseError
	switch {
	case errors.As(err, &re), errors.Is(err, ErrTemplateLimit), errors.Is(err, ErrRender):
		return err
	}
	return fmt.Errorf("%w: %w", ErrRender, err)
}

// protect runs f, turning a panic into an error.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: the Jinja engine panicked: %v", ErrRender, r)
		}
	}()
	return f()
}

// variables builds the template's variables: messages, tools,
// add_generation_prompt, bos_token, eos_token, the globals and Extra.
func (t *Template) variables(msgs []Message, opts RenderOptions) (map[string]jinja.Value, error) {
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		v, err := messageValue(m)
		if err != nil {
			return nil, fmt.Errorf("chat: message %d: %w", i, err)
		}
		list[i] = v
	}
	tools := jinja.None()
	if len(opts.Tools) > 0 {
		items := make([]jinja.Value, len(opts.Tools))
		for i, tool := range opts.Tools {
			v, err := toValue(tool)
			if err != nil {
				return nil, fmt.Errorf("chat: tool %d: %w", i, err)
			}
			items[i] = v
		}
		tools = jinja.NewList(items)
	}
	bos, eos := opts.BOS, opts.EOS
	if bos == "" {
		bos = t.bos
	}
	if eos == "" {
		eos = t.eos
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	data := map[string]jinja.Value{
		"messages":              jinja.NewList(list),
		"tools":                 tools,
		"documents":             jinja.None(),
		"add_generation_prompt": jinja.NewBool(opts.AddGenerationPrompt),
		"bos_token":             jinja.NewString(bos),
		"eos_token":             jinja.NewString(eos),
	}
	for name, fn := range runtimeGlobals(now) {
		data[name] = fn
	}
	for k, v := range opts.Extra {
		val, err := toValue(v)
		if err != nil {
			return nil, fmt.Errorf("chat: template variable %s: %w", k, err)
		}
		data[k] = val
	}
	return data, nil
}

// messageValue converts a message, leaving out empty optional fields:
// templates test them with "is defined" or "in message".
func messageValue(m Message) (jinja.Value, error) {
	v := jinja.NewDict()
	d := v.AsDict()
	d.Set("role", jinja.NewString(m.Role))
	if m.Content == "" && len(m.ToolCalls) > 0 {
		d.Set("content", jinja.None()) // as OpenAI sends a tool-call message
	} else {
		d.Set("content", jinja.NewString(m.Content))
	}
	if m.Reasoning != "" {
		d.Set("reasoning_content", jinja.NewString(m.Reasoning))
	}
	if m.Name != "" {
		d.Set("name", jinja.NewString(m.Name))
	}
	if len(m.ToolCalls) > 0 {
		calls := make([]jinja.Value, len(m.ToolCalls))
		for i, c := range m.ToolCalls {
			cv := jinja.NewDict()
			cd := cv.AsDict()
			if c.ID != "" {
				cd.Set("id", jinja.NewString(c.ID))
			}
			typ := c.Type
			if typ == "" {
				typ = "function"
			}
			cd.Set("type", jinja.NewString(typ))
			fv := jinja.NewDict()
			fd := fv.AsDict()
			fd.Set("name", jinja.NewString(c.Function.Name))
			args, err := toValue(c.Function.Arguments)
			if err != nil {
				return jinja.Value{}, fmt.Errorf("tool call %d arguments: %w", i, err)
			}
			fd.Set("arguments", args)
			cd.Set("function", fv)
			calls[i] = cv
		}
		d.Set("tool_calls", jinja.NewList(calls))
	}
	if m.ToolCallID != "" {
		d.Set("tool_call_id", jinja.NewString(m.ToolCallID))
	}
	return v, nil
}

// runtimeGlobals are the functions of one render: transformers' globals
// and the hooks prepare inserts. They hold the render's limits.
func runtimeGlobals(now time.Time) map[string]jinja.Value {
	depth := 0
	rangeItems := 0
	return map[string]jinja.Value{
		"raise_exception": jinja.NewCallable("raise_exception", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			msg := ""
			if len(args) > 0 {
				msg = printable(args[0])
			}
			return jinja.Value{}, &RaiseError{Message: msg}
		}),
		"strftime_now": jinja.NewCallable("strftime_now", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			if len(args) == 0 || !args[0].IsString() {
				return jinja.Value{}, fmt.Errorf("strftime_now: want a format string")
			}
			return jinja.NewString(strftime(now, args[0].AsString())), nil
		}),
		"range": jinja.NewCallable("range", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			var a [3]int64
			for i, v := range args {
				if i >= 3 || !v.IsInt() {
					return jinja.Value{}, fmt.Errorf("range: want 1 to 3 integers")
				}
				a[i] = v.AsInt()
			}
			start, stop, step := int64(0), a[0], int64(1)
			switch len(args) {
			case 0:
				return jinja.Value{}, fmt.Errorf("range: want 1 to 3 integers")
			case 2:
				start, stop = a[0], a[1]
			case 3:
				start, stop, step = a[0], a[1], a[2]
			}
			if step == 0 {
				return jinja.Value{}, fmt.Errorf("range: step must not be zero")
			}
			n := int64(0)
			if step > 0 && stop > start {
				n = (stop - start + step - 1) / step
			} else if step < 0 && stop < start {
				n = (start - stop - step - 1) / -step
			}
			if n > int64(maxRangeItems-rangeItems) {
				return jinja.Value{}, fmt.Errorf("%w: range() made more than %d items in one render", ErrTemplateLimit, maxRangeItems)
			}
			rangeItems += int(n)
			items := make([]jinja.Value, n)
			for i := range items {
				items[i] = jinja.NewInt(start + int64(i)*step)
			}
			return jinja.NewList(items), nil
		}),
		hookToJSON: jinja.NewCallable("tojson", toJSON),
		hookEnter: jinja.NewCallable(hookEnter, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
			depth++
			if depth > maxMacroDepth {
				return jinja.Value{}, fmt.Errorf("%w: macro calls nested more than %d deep", ErrTemplateLimit, maxMacroDepth)
			}
			return jinja.NewString(""), nil
		}),
		hookLeave: jinja.NewCallable(hookLeave, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
			depth--
			return jinja.NewString(""), nil
		}),
	}
}

// printable is the text {{ v }} renders for a value.
func printable(v jinja.Value) string {
	switch {
	case v.IsString():
		return v.AsString()
	case v.IsNone():
		return "None"
	case v.IsUndefined():
		return ""
	case v.IsFloat():
		return pyFloat(v.AsFloat(), false)
	}
	return strings.Trim(v.String(), "'")
}

// renderBuiltin renders with llama.cpp's built-in template.
func (t *Template) renderBuiltin(msgs []Message, opts RenderOptions) (string, error) {
	if len(opts.Tools) > 0 {
		return "", fmt.Errorf("chat: llama.cpp's built-in template %q cannot render tools", t.name)
	}
	cm := make([]llama.ChatMessage, len(msgs))
	for i, m := range msgs {
		if len(m.ToolCalls) > 0 {
			return "", fmt.Errorf("chat: llama.cpp's built-in template %q cannot render tool calls", t.name)
		}
		cm[i] = llama.ChatMessage{Role: m.Role, Content: m.Content}
	}
	s, err := llama.ApplyBuiltinTemplate(t.name, cm, opts.AddGenerationPrompt)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrRender, err)
	}
	return s, nil
}

// UnmarshalJSON keeps object arguments as a json.RawMessage, so that
// their keys stay in order, and string arguments as a string.
func (f *FunctionCall) UnmarshalJSON(data []byte) error {
	var raw struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	f.Name = raw.Name
	f.Arguments = nil
	if len(raw.Arguments) > 0 && string(raw.Arguments) != "null" {
		var s string
		if json.Unmarshal(raw.Arguments, &s) == nil {
			f.Arguments = s
		} else {
			f.Arguments = raw.Arguments
		}
	}
	return nil
}
