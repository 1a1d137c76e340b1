package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/llamago/llamago/chat"
	"github.com/llamago/llamago/llama"
)

// The request bodies: OpenAI's fields, plus llama.cpp's extras. Unknown
// fields are ignored, as OpenAI-compatible servers do; a known field of the
// wrong type is a 400 naming it.

// samplingParams are the fields common to chat and text completions.
type samplingParams struct {
	Model            string             `json:"model"`
	MaxTokens        *int               `json:"max_tokens"`
	Temperature      *float64           `json:"temperature"`
	TopP             *float64           `json:"top_p"`
	N                *int               `json:"n"`
	Stop             stopList           `json:"stop"`
	Seed             *int64             `json:"seed"`
	PresencePenalty  *float64           `json:"presence_penalty"`
	FrequencyPenalty *float64           `json:"frequency_penalty"`
	LogitBias        map[string]float64 `json:"logit_bias"`
	Stream           bool               `json:"stream"`
	StreamOptions    *streamOptions     `json:"stream_options"`
	ResponseFormat   *responseFormat    `json:"response_format"`
	User             string             `json:"user"`

	// llama.cpp's extras.
	TopK          *int     `json:"top_k"`
	MinP          *float64 `json:"min_p"`
	RepeatPenalty *float64 `json:"repeat_penalty"`
	RepeatLastN   *int     `json:"repeat_last_n"`
	Grammar       string   `json:"grammar"`
	IgnoreEOS     bool     `json:"ignore_eos"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type responseFormat struct {
	Type       string          `json:"type"`
	JSONSchema *jsonSchemaSpec `json:"json_schema"`
}

type jsonSchemaSpec struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema"`
	Strict *bool           `json:"strict"`
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	samplingParams
	Messages            []chatMessage     `json:"messages"`
	MaxCompletionTokens *int              `json:"max_completion_tokens"`
	Logprobs            *bool             `json:"logprobs"`
	TopLogprobs         *int              `json:"top_logprobs"`
	Tools               []json.RawMessage `json:"tools"`
	ToolChoice          *toolChoice       `json:"tool_choice"`
	ParallelToolCalls   *bool             `json:"parallel_tool_calls"`
}

// toolChoice is "tool_choice": "auto", "none", "required", or
// {"type": "function", "function": {"name": ...}}.
type toolChoice struct {
	mode string
	name string
}

func (c *toolChoice) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	bad := fieldError("tool_choice", `must be "auto", "none", "required" or {"type": "function", "function": {"name": ...}}`)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		if err := json.Unmarshal(data, &c.mode); err != nil {
			return bad
		}
		switch c.mode {
		case "auto", "none", "required":
			return nil
		}
		return bad
	}
	var obj struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(data, &obj); err != nil || obj.Type != "function" || obj.Function.Name == "" {
		return bad
	}
	c.mode, c.name = "required", obj.Function.Name
	return nil
}

// completionRequest is the body of POST /v1/completions and of the legacy
// POST /v1/engines/{engine}/completions.
type completionRequest struct {
	samplingParams
	Prompt   *promptList `json:"prompt"`
	Logprobs *int        `json:"logprobs"`
	Echo     bool        `json:"echo"`
	Suffix   *string     `json:"suffix"`
	BestOf   *int        `json:"best_of"`
}

// chatMessage is a message of a chat request. Content is a string or an
// array of parts, of which text and image_url parts are supported.
type chatMessage struct {
	Role       string          `json:"role"`
	Content    messageContent  `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  []chat.ToolCall `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
	Reasoning  string          `json:"reasoning_content"`
}

// messageContent is a message's text: a string, null, or an array of
// content parts whose text parts are joined; an image part stands in the
// text as llama.DefaultMediaMarker, its URL in images.
type messageContent struct {
	text   string
	images []string
}

func (c *messageContent) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		return nil
	case len(data) > 0 && data[0] == '"':
		return json.Unmarshal(data, &c.text)
	case len(data) > 0 && data[0] == '[':
		var parts []struct {
			Type     string          `json:"type"`
			Text     *string         `json:"text"`
			ImageURL json.RawMessage `json:"image_url"`
		}
		if err := json.Unmarshal(data, &parts); err != nil {
			return fieldError("content", "must be a string or an array of content parts")
		}
		var b bytes.Buffer
		for _, p := range parts {
			text := ""
			switch {
			case p.Type == "image_url":
				url, err := imageURL(p.ImageURL)
				if err != nil {
					return err
				}
				c.images = append(c.images, url)
				text = llama.DefaultMediaMarker
			case (p.Type != "text" && p.Type != "input_text") || p.Text == nil:
				return fieldError("content", fmt.Sprintf("content parts of type %q are not supported: only text and image_url", p.Type))
			default:
				text = *p.Text
			}
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(text)
		}
		c.text = b.String()
		return nil
	}
	return fieldError("content", "must be a string or an array of content parts")
}

// stopList is "stop": a string or an array of strings.
type stopList []string

func (s *stopList) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case bytes.Equal(data, []byte("null")):
		*s = nil
		return nil
	case len(data) > 0 && data[0] == '"':
		var one string
		if err := json.Unmarshal(data, &one); err != nil {
			return fieldError("stop", "must be a string or an array of strings")
		}
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return fieldError("stop", "must be a string or an array of strings")
	}
	*s = many
	return nil
}

// promptList is "prompt" (and the input of embeddings): a string, an array
// of strings, an array of token ids, or an array of arrays of token ids.
// Each item is one prompt: text or tokens.
type promptList struct {
	items []promptItem
	field string
}

type promptItem struct {
	text   string
	tokens []int64
	isText bool
}

func (p *promptList) UnmarshalJSON(data []byte) error {
	p.items = nil
	bad := fieldError(p.name(), "must be a string, an array of strings, an array of token ids or an array of arrays of token ids")
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return bad
	}
	switch data[0] {
	case '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return bad
		}
		p.items = []promptItem{{text: s, isText: true}}
		return nil
	case '[':
	default:
		return bad
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return bad
	}
	if len(raw) == 0 {
		return nil // an empty list: the handler reports it
	}
	first := bytes.TrimSpace(raw[0])
	switch {
	case len(first) > 0 && first[0] == '"':
		var ss []string
		if err := json.Unmarshal(data, &ss); err != nil {
			return bad
		}
		for _, s := range ss {
			p.items = append(p.items, promptItem{text: s, isText: true})
		}
	case len(first) > 0 && first[0] == '[':
		var tss [][]int64
		if err := json.Unmarshal(data, &tss); err != nil {
			return bad
		}
		for _, ts := range tss {
			p.items = append(p.items, promptItem{tokens: ts})
		}
	default:
		var ts []int64
		if err := json.Unmarshal(data, &ts); err != nil {
			return bad
		}
		p.items = []promptItem{{tokens: ts}}
	}
	return nil
}

func (p *promptList) name() string {
	if p.field == "" {
		return "prompt"
	}
	return p.field
}

// inputList is the input of embeddings: as promptList, named "input" in
// errors.
type inputList struct{ promptList }

func (p *inputList) UnmarshalJSON(data []byte) error {
	p.field = "input"
	return p.promptList.UnmarshalJSON(data)
}

// embeddingRequest is the body of POST /v1/embeddings.
type embeddingRequest struct {
	Model          string     `json:"model"`
	Input          *inputList `json:"input"`
	EncodingFormat string     `json:"encoding_format"`
	Dimensions     *int       `json:"dimensions"`
	User           string     `json:"user"`
}

// tokenizeRequest is the body of POST /tokenize, as llama-server's.
type tokenizeRequest struct {
	Content      *string `json:"content"`
	AddSpecial   bool    `json:"add_special"`
	ParseSpecial *bool   `json:"parse_special"`
	WithPieces   bool    `json:"with_pieces"`
}

// detokenizeRequest is the body of POST /detokenize.
type detokenizeRequest struct {
	Tokens []int64 `json:"tokens"`
}

// fieldErr is a type error in a field with a custom decoder.
type fieldErr struct {
	field, msg string
}

func (e *fieldErr) Error() string { return e.field + " " + e.msg }

func fieldError(field, msg string) error { return &fieldErr{field, msg} }

// decodeError turns an error of json.Unmarshal into a 400.
func decodeError(err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var fe *fieldErr
	switch {
	case errors.As(err, &fe):
		return badRequest(fe.field, "'%s' %s.", fe.field, fe.msg)
	case errors.As(err, &syn):
		return badRequestCode("", "invalid_json", "The body is not valid JSON: %s (at byte %d).", syn.Error(), syn.Offset)
	case errors.As(err, &typ):
		typ.Field = strings.ReplaceAll(typ.Field, "samplingParams.", "")
		if typ.Field == "" {
			return badRequestCode("", "invalid_json", "The body must be a JSON object, not %s.", typ.Value)
		}
		return badRequestCode(typ.Field, "invalid_type", "'%s' must be %s, not %s.", typ.Field, typeName(typ.Type.String()), typ.Value)
	case errors.Is(err, errEmptyBody):
		return badRequestCode("", "invalid_json", "The body is empty: it must be a JSON object.")
	}
	return badRequestCode("", "invalid_json", "The body is not valid JSON: %v.", err)
}

var errEmptyBody = errors.New("empty body")

// typeName names a Go type of a request field as JSON does.
func typeName(goType string) string {
	switch goType {
	case "int", "int64", "*int", "*int64", "uint32":
		return "an integer"
	case "float64", "*float64":
		return "a number"
	case "bool", "*bool":
		return "a boolean"
	case "string", "*string":
		return "a string"
	}
	switch {
	case len(goType) > 2 && goType[:2] == "[]":
		return "an array"
	case len(goType) > 3 && goType[:3] == "map":
		return "an object"
	}
	return "an object"
}

// finite reports whether f is neither NaN nor infinite.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// parseTokenID parses a logit_bias key.
func parseTokenID(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 32)
	return n, err == nil
}
