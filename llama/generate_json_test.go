package llama_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/llamago/llamago/llama"
)

type jsonPoint struct {
	X int8  `json:"x"`
	Y uint8 `json:"y"`
}

type jsonShape struct {
	Kind   string      `json:"kind" jsonschema:"enum=circle,enum=square"`
	Label  string      `json:"label" jsonschema:"maxLength=6"`
	Code   string      `json:"code" jsonschema:"pattern=^[A-Z]{3}$"`
	Center jsonPoint   `json:"center"`
	Points []jsonPoint `json:"points" jsonschema:"maxItems=2"`
	Tags   []string    `json:"tags,omitempty" jsonschema:"maxItems=2,maxLength=3"`
	OK     bool        `json:"ok"`
	Size   int         `json:"size" jsonschema:"minimum=1,maximum=9"`
}

func checkShape(t *testing.T, v jsonShape) {
	t.Helper()
	if v.Kind != "circle" && v.Kind != "square" {
		t.Errorf("kind %q", v.Kind)
	}
	if utf8.RuneCountInString(v.Label) > 6 {
		t.Errorf("label %q", v.Label)
	}
	if !regexp.MustCompile(`^[A-Z]{3}$`).MatchString(v.Code) {
		t.Errorf("code %q", v.Code)
	}
	if len(v.Points) > 2 || len(v.Tags) > 2 {
		t.Errorf("points %v, tags %v", v.Points, v.Tags)
	}
	for _, tag := range v.Tags {
		if utf8.RuneCountInString(tag) > 3 {
			t.Errorf("tag %q", tag)
		}
	}
	if v.Size < 1 || v.Size > 9 {
		t.Errorf("size %d", v.Size)
	}
}

// TestGenerateJSON fills a nested struct from models with random and
// tiny weights, over several seeds.
func TestGenerateJSON(t *testing.T) {
	schema, err := llama.JSONSchemaFor[jsonShape]()
	if err != nil {
		t.Fatal(err)
	}
	s := compileSchema(t, string(schema))
	for _, model := range []struct {
		name  string
		seeds int
	}{{"stories260K.gguf", 4}, {"llama-2-tiny-random.gguf", 2}} {
		m := loadModel(t, model.name)
		c := newContext(t, m)
		for seed := range model.seeds {
			var stats llama.Stats
			v, err := llama.GenerateJSON[jsonShape](context.Background(), c, "A shape as JSON:", llama.WithMaxTokens(300), llama.WithStats(&stats),
				llama.WithSampling(llama.WithSeed(uint32(seed)), llama.WithTemperature(1)))
			if err != nil {
				t.Errorf("%s seed %d: %v", model.name, seed, err)
				continue
			}
			if stats.StopReason != llama.StopEOG || stats.GeneratedTokens == 0 {
				t.Errorf("%s seed %d: stats %+v", model.name, seed, stats)
			}
			checkShape(t, v)
			b, _ := json.Marshal(v)
			validate(t, s, string(b))
		}
	}
}

func TestGenerateJSONTruncated(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	ctx := context.Background()
	_, err := llama.GenerateJSON[jsonShape](ctx, c, "A shape:", llama.WithMaxTokens(5), llama.WithSampling(llama.WithSeed(1)))
	var je *llama.JSONError
	if !errors.Is(err, llama.ErrTruncated) || !errors.As(err, &je) {
		t.Fatalf("5 tokens: %v, want ErrTruncated", err)
	}
	if je.Stats.StopReason != llama.StopMaxTokens || je.Stats.GeneratedTokens != 5 || !strings.HasPrefix(je.Text, "{") || json.Valid([]byte(je.Text)) {
		t.Errorf("truncated output %q, stats %+v", je.Text, je.Stats)
	}
	if !strings.Contains(err.Error(), "5 tokens generated") {
		t.Errorf("error %q", err)
	}

	// A stop string cuts it too.
	_, err = llama.GenerateJSON[jsonShape](ctx, c, "A shape:", llama.WithStop(`"kind"`), llama.WithSampling(llama.WithSeed(1)))
	if !errors.Is(err, llama.ErrTruncated) {
		t.Errorf("stop string: %v, want ErrTruncated", err)
	}

	// The grammar replaces the caller's; WithSampler is refused.
	v, err := llama.GenerateJSON[bool](ctx, c, "Yes or no:", llama.WithSampling(llama.WithGreedy(), llama.WithGrammar(`root ::= "x"`, "")))
	if err != nil {
		t.Errorf("bool with a caller's grammar: %v %v", v, err)
	}
	smp, err := m.NewSampler()
	if err != nil {
		t.Fatal(err)
	}
	defer smp.Close()
	if _, err := llama.GenerateJSON[bool](ctx, c, "x", llama.WithSampler(smp)); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("WithSampler: %v", err)
	}
	// A type JSON cannot represent.
	if _, err := llama.GenerateJSON[chan int](ctx, c, "x"); !errors.Is(err, llama.ErrInvalidSchema) {
		t.Errorf("chan: %v", err)
	}
}

type jsonTree struct {
	Name     string     `json:"name"`
	Children []jsonTree `json:"children,omitempty"`
}

func TestJSONSchemaFor(t *testing.T) {
	b, err := llama.JSONSchemaFor[jsonShape]()
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s["type"] != "object" || s["additionalProperties"] != false || s["$ref"] != nil {
		t.Errorf("root schema %s", b)
	}
	req, _ := s["required"].([]any)
	if len(req) != 7 {
		t.Errorf("required %v: want every field but tags", req)
	}
	g, err := llama.JSONSchemaGrammar(string(b))
	if err != nil {
		t.Fatal(err)
	}
	// The point's fields, behind a $ref, are in the grammar, with bounds.
	for _, want := range []string{`"\"x\""`, `"\"y\""`, `"\"circle\""`, `[A-Z]`, `[2] [0-7]`, `[5] [0-5]`} {
		if !strings.Contains(g, want) {
			t.Errorf("grammar misses %s:\n%s", want, g)
		}
	}
	// A recursive type converts: its definition refers to itself.
	b, err = llama.JSONSchemaFor[jsonTree]()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := llama.JSONSchemaGrammar(string(b)); err != nil {
		t.Errorf("recursive type %s: %v", b, err)
	}
	for _, tt := range []struct {
		got  func() ([]byte, error)
		want string
	}{
		{llama.JSONSchemaFor[int8], `"maximum":127,"minimum":-128`},
		{llama.JSONSchemaFor[[]uint16], `"maximum":65535,"minimum":0`},
		{llama.JSONSchemaFor[uint], `"minimum":0`},
		{llama.JSONSchemaFor[int], `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"integer"}`},
	} {
		b, err := tt.got()
		if err != nil || !strings.Contains(string(b), tt.want) {
			t.Errorf("%s, %v: want %s", b, err, tt.want)
		}
	}
}
