package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/llamago/llamago/llama"
)

// Function is a tool backed by a Go function, for WithFunctions: its
// Tool describes it to the model, and Call runs it on a call's arguments.
type Function struct {
	tool Tool
	call func(ctx context.Context, args json.RawMessage) (any, error)
}

// NewFunction makes a Function of fn, whose arguments are a T: its
// parameters schema is T's, derived as llama.JSONSchemaFor derives it
// (github.com/invopop/jsonschema: json names, required unless omitempty,
// `jsonschema:"..."` tags for descriptions, enums and bounds). T is
// usually a struct; fn's result goes back to the model as text: a string
// as it is, anything else as JSON.
func NewFunction[T any](name, description string, fn func(ctx context.Context, args T) (any, error)) (*Function, error) {
	if !toolName.MatchString(name) {
		return nil, fmt.Errorf("%w: name %q must be 1 to 64 letters, digits, '_', '-' or '.'", ErrInvalidTool, name)
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: %s has no function", ErrInvalidTool, name)
	}
	schema, err := llama.JSONSchemaFor[T]()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidTool, name, err)
	}
	var params map[string]any
	if err := json.Unmarshal(schema, &params); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidTool, name, err)
	}
	// The $schema keyword, and the definitions of a type that does not
	// refer to them (they are copied to the root), only add tokens to
	// the prompt.
	delete(params, "$schema")
	if defs, ok := params["$defs"]; ok {
		delete(params, "$defs")
		if b, _ := json.Marshal(params); bytes.Contains(b, []byte(`"$ref"`)) {
			params["$defs"] = defs
		}
	}
	compact, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	if _, err := llama.JSONSchemaGrammar(string(compact)); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidTool, name, err)
	}
	f := &Function{tool: Tool{Type: "function", Function: ToolFunction{Name: name, Description: description, Parameters: json.RawMessage(compact)}}}
	f.call = func(ctx context.Context, args json.RawMessage) (any, error) {
		var v T
		d := json.NewDecoder(bytes.NewReader(args))
		d.DisallowUnknownFields()
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: the arguments of %s: %w", ErrToolCall, name, err)
		}
		return fn(ctx, v)
	}
	return f, nil
}

// ErrToolCall is returned (wrapped) by Function.Call and Session.Run for
// a call that names no known function or whose arguments do not decode.
var ErrToolCall = errors.New("chat: invalid tool call")

// Tool is the function's description for the model.
func (f *Function) Tool() Tool { return f.tool }

// Name is the function's name.
func (f *Function) Name() string { return f.tool.Function.Name }

// Call runs the function on a call's arguments (a JSON object) and
// returns its result as text.
func (f *Function) Call(ctx context.Context, args json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("{}")
	}
	r, err := f.call(ctx, args)
	if err != nil {
		return "", err
	}
	if s, ok := r.(string); ok {
		return s, nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("chat: the result of %s: %w", f.Name(), err)
	}
	return string(b), nil
}

// callArguments returns a call's arguments as JSON.
func callArguments(c ToolCall) json.RawMessage {
	switch a := c.Function.Arguments.(type) {
	case json.RawMessage:
		return a
	case string:
		return json.RawMessage(a)
	case nil:
		return json.RawMessage("{}")
	}
	b, err := json.Marshal(c.Function.Arguments)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}
