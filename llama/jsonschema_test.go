package llama_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/llamago/llamago/llama"
)

func TestJSONSchemaGrammar(t *testing.T) {
	g, err := llama.JSONSchemaGrammar(`{"type": "boolean"}`)
	if err != nil {
		t.Fatal(err)
	}
	// llama.cpp's converter, verbatim.
	want := "root ::= (\"true\" | \"false\") space\nspace ::= | \" \" | \"\\n\"{1,2} [ \\t]{0,20}\n"
	if g != want {
		t.Errorf("boolean schema:\n%s\nwant\n%s", g, want)
	}

	// Properties keep the schema's order; references into $defs resolve.
	g, err = llama.JSONSchemaGrammar(`{"type":"object","properties":{"zeta":{"$ref":"#/$defs/p"},"alpha":{"type":"integer","minimum":3,"maximum":5}},"required":["zeta","alpha"],"$defs":{"p":{"type":"object","properties":{"inner":{"type":"string"}},"required":["inner"]}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if z, a := strings.Index(g, `"\"zeta\""`), strings.Index(g, `"\"alpha\""`); z < 0 || a < 0 || !strings.Contains(g, `"\"inner\""`) || !strings.Contains(g, "[3-5]") {
		t.Errorf("grammar misses properties or bounds:\n%s", g)
	}
	if !regexp.MustCompile(`(?m)^root ::= "\{" space zeta-kv "," space alpha-kv "\}" space$`).MatchString(g) {
		t.Errorf("root rule does not keep the property order:\n%s", g)
	}

	// The grammar is one llama.cpp's grammar parser takes.
	m := loadModel(t, "stories260K.gguf", llama.WithVocabOnly())
	s, err := m.NewSampler(llama.WithGrammar(g, ""))
	if err != nil {
		t.Fatalf("NewSampler with the converted grammar: %v", err)
	}
	s.Close()
}

func TestJSONSchemaGrammarErrors(t *testing.T) {
	deep := strings.Repeat(`{"type":"array","items":`, 150) + `{"type":"integer"}` + strings.Repeat("}", 150)
	for _, tt := range []struct{ schema, want string }{
		{``, "EOF"},
		{`{"type":`, "unexpected EOF"},
		{`{"type":"string"} x`, "after the schema"},
		{`true`, "must be a JSON object"},
		{`[]`, "must be a JSON object"},
		{`{"type":"strng"}`, "Unrecognized schema"},
		{`{"type":"string","pattern":"[a-z]+"}`, "must start with '^'"},
		{`{"type":"string","pattern":"^[a-z$"}`, "Unbalanced square brackets"},
		{`{"$ref":"#/$defs/missing"}`, "Error resolving ref"},
		{`{"$ref":"other.json"}`, "Unsupported ref"},
		{`{"type":"string","format":5}`, "type must be string"},
		{`{"type":"array","items":{"type":"integer"},"minItems":"two"}`, "type must be number"},
		{deep, "nested more than"},
		{`{"type":"string","pattern":"^` + strings.Repeat("(", 65) + "a" + strings.Repeat(")", 65) + `$"}`, "nests groups"},
		{`{"properties":{"` + strings.Repeat("!", 2000) + `":{}}}`, "property name of 2000 bytes"},
		{`{"type":"string","description":"` + strings.Repeat("x", 1<<20) + `"}`, "bytes, at most"},
	} {
		g, err := llama.JSONSchemaGrammar(tt.schema)
		name := tt.schema
		if len(name) > 60 {
			name = name[:60] + "..."
		}
		if !errors.Is(err, llama.ErrInvalidSchema) || !strings.Contains(err.Error(), tt.want) || g != "" {
			t.Errorf("%s: %q, %v; want ErrInvalidSchema with %q", name, g, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error of several lines: %q", name, err)
		}
	}
	// Just within the limits: converts.
	ok := strings.Repeat(`{"type":"array","items":`, 60) + `{"type":"integer"}` + strings.Repeat("}", 60)
	if _, err := llama.JSONSchemaGrammar(ok); err != nil {
		t.Errorf("60 nested arrays: %v", err)
	}
	name := strings.Repeat("!", 1000)
	if _, err := llama.JSONSchemaGrammar(`{"properties":{"` + name + `":{"$ref":"#/$defs/` + name + `"}},"$defs":{"` + name + `":{"type":"integer"}}}`); err != nil {
		t.Errorf("names of 1000 bytes: %v", err)
	}
	pat := `^` + strings.Repeat("(", 64) + "a" + strings.Repeat(")", 64) + `[(]{0,3}$`
	if _, err := llama.JSONSchemaGrammar(`{"type":"string","pattern":"` + pat + `"}`); err != nil {
		t.Errorf("64 nested groups: %v", err)
	}
}

// structuredSchemas are the schemas of TestJSONSchemaGeneration. Each
// bounds its strings and arrays, so that even a model with random weights
// completes the value within the token limit.
var structuredSchemas = []struct{ name, schema string }{
	{"object", `{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer","minimum":0,"maximum":120}},"required":["name","age"],"additionalProperties":false}`},
	{"nested", `{"type":"object","properties":{"person":{"type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":6},"address":{"type":"object","properties":{"city":{"type":"string","maxLength":6},"zip":{"type":"string","pattern":"^[0-9]{5}$"}},"required":["city","zip"]}},"required":["name","address"]}},"required":["person"]}`},
	{"array", `{"type":"array","items":{"type":"integer","minimum":-5,"maximum":5},"minItems":1,"maxItems":4}`},
	{"enum", `{"enum":["red","green","blue",42,null]}`},
	{"const and exclusive bounds", `{"type":"object","properties":{"kind":{"const":"point"},"x":{"type":"integer","exclusiveMinimum":-10,"exclusiveMaximum":10}},"required":["kind","x"]}`},
	{"number boolean null", `{"type":"object","properties":{"n":{"type":"number"},"b":{"type":"boolean"},"z":{"type":"null"}},"required":["n","b","z"]}`},
	{"optional", `{"type":"object","properties":{"a":{"type":"integer","minimum":0,"maximum":9},"b":{"type":"string","maxLength":3},"c":{"type":"boolean"}},"required":["a"]}`},
	{"pattern", `{"type":"string","pattern":"^[A-Z]{2}-[0-9]{3}$"}`},
	{"array of objects", `{"type":"array","items":{"type":"object","properties":{"id":{"type":"integer","minimum":1,"maximum":99},"tag":{"enum":["x","y"]}},"required":["id","tag"]},"maxItems":3}`},
	{"anyOf", `{"anyOf":[{"type":"integer","minimum":0,"maximum":1000},{"type":"string","maxLength":4},{"type":"boolean"}]}`},
	{"refs", `{"type":"object","properties":{"from":{"$ref":"#/$defs/point"},"to":{"$ref":"#/$defs/point"}},"required":["from","to"],"$defs":{"point":{"type":"object","properties":{"x":{"type":"integer","minimum":0,"maximum":9},"y":{"type":"integer","minimum":0,"maximum":9}},"required":["x","y"]}}}`},
	{"tuple", `{"type":"array","prefixItems":[{"type":"string","maxLength":3},{"type":"integer","minimum":1,"maximum":3},{"type":"boolean"}]}`},
	{"type union and date", `{"type":"object","properties":{"v":{"type":["integer","null"]},"day":{"type":"string","format":"date"}},"required":["v","day"]}`},
}

func compileSchema(t *testing.T, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("compile %s: %v", schema, err)
	}
	return s
}

// validate checks that text is one JSON value the schema allows.
func validate(t *testing.T, s *jsonschema.Schema, text string) {
	t.Helper()
	if !json.Valid([]byte(text)) {
		t.Errorf("output is not JSON: %q", text)
		return
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		t.Errorf("output %q: %v", text, err)
		return
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("output %q does not validate: %v", text, err)
	}
}

// TestJSONSchemaGeneration samples under the grammars of a dozen schemas
// with several seeds, on two models: every output is complete, and
// validates against its schema.
func TestJSONSchemaGeneration(t *testing.T) {
	for _, model := range []struct {
		name  string
		seeds int
	}{{"stories260K.gguf", 4}, {"llama-2-tiny-random.gguf", 2}} {
		m := loadModel(t, model.name)
		c := newContext(t, m)
		for _, tt := range structuredSchemas {
			g, err := llama.JSONSchemaGrammar(tt.schema)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			s := compileSchema(t, tt.schema)
			for seed := range model.seeds {
				r := generate(t, c, context.Background(), "Here is the JSON:", llama.WithMaxTokens(200),
					llama.WithSampling(llama.WithSeed(uint32(seed)), llama.WithTemperature(1), llama.WithGrammar(g, "")))
				if r.err != nil || r.stats.StopReason != llama.StopEOG {
					t.Errorf("%s %s seed %d: %q, %v, %v", model.name, tt.name, seed, r.text, r.stats.StopReason, r.err)
					continue
				}
				validate(t, s, r.text)
			}
		}
	}
}

// TestGrammarOutputParses: many seeds of a GBNF grammar, on both models.
func TestGrammarOutputParses(t *testing.T) {
	grammar := `root ::= "(" item ("," item){0,4} ")"
item ::= [a-z]{1,5} | [0-9]{1,3} | "\"" [A-Za-z ]{0,4} "\""`
	re := regexp.MustCompile(`^\((?:[a-z]{1,5}|[0-9]{1,3}|"[A-Za-z ]{0,4}")(?:,(?:[a-z]{1,5}|[0-9]{1,3}|"[A-Za-z ]{0,4}")){0,4}\)$`)
	for _, model := range []struct {
		name  string
		seeds int
	}{{"stories260K.gguf", 24}, {"llama-2-tiny-random.gguf", 8}} {
		m := loadModel(t, model.name)
		c := newContext(t, m)
		for seed := range model.seeds {
			r := generate(t, c, context.Background(), "A list:", llama.WithMaxTokens(100),
				llama.WithSampling(llama.WithSeed(uint32(seed)), llama.WithTemperature(1.2), llama.WithGrammar(grammar, "")))
			if r.err != nil || r.stats.StopReason != llama.StopEOG || !re.MatchString(r.text) {
				t.Errorf("%s seed %d: %q, %v, %v", model.name, seed, r.text, r.stats.StopReason, r.err)
			}
		}
	}
}

// TestLazyGrammar: a lazy grammar leaves the text free until a trigger
// pattern matches, then constrains it from the trigger on.
func TestLazyGrammar(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	// Greedy, stories260K writes storiesPrefix: "..., there was a little
	// girl named Lily. ..." The grammar takes over at "named".
	r := mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(100),
		llama.WithSampling(llama.WithGreedy(), llama.WithLazyGrammar(`root ::= "named" " Bob" "."`, "", []string{`[\s\S]*?(named)`}, nil)))
	want := ", there was a little girl named Bob."
	if r.text != want || r.stats.StopReason != llama.StopEOG {
		t.Errorf("lazy grammar: %q %v, want %q", r.text, r.stats.StopReason, want)
	}
	// Triggered by a token: the grammar starts at it. The trigger is a
	// token of the free greedy text that does not occur before.
	free := mustGenerate(t, c, storiesPrompt, greedy(12)...)
	k := 4
	for slices.Contains(free.ids[:k], free.ids[k]) {
		k++
	}
	piece, err := m.TokenToPiece(free.ids[k], false)
	if err != nil {
		t.Fatal(err)
	}
	before := ""
	for _, tok := range free.tokens[:k] {
		before += tok.Text
	}
	r = mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(100),
		llama.WithSampling(llama.WithGreedy(), llama.WithLazyGrammar(`root ::= `+strconv.Quote(piece)+` " " [0-9]{3}`, "", nil, free.ids[k:k+1])))
	if !regexp.MustCompile(`^`+regexp.QuoteMeta(before+piece)+` [0-9]{3}$`).MatchString(r.text) || r.stats.StopReason != llama.StopEOG {
		t.Errorf("lazy grammar on token %q: %q %v, want %q + 3 digits", piece, r.text, r.stats.StopReason, before+piece)
	}
}

func ExampleJSONSchemaGrammar() {
	g, err := llama.JSONSchemaGrammar(`{"enum": ["yes", "no"]}`)
	if err != nil {
		panic(err)
	}
	fmt.Print(g)
	// Output:
	// root ::= ("\"yes\"" | "\"no\"") space
	// space ::= | " " | "\n"{1,2} [ \t]{0,20}
}

// TestJSONSchemaRootRef: references inside the definitions of a root that
// is a reference resolve (llama.cpp's converter alone leaves them as any
// object).
func TestJSONSchemaRootRef(t *testing.T) {
	g, err := llama.JSONSchemaGrammar(`{"$ref":"#/$defs/A","$defs":{"A":{"type":"object","properties":{"b":{"$ref":"#/$defs/B"}},"required":["b"]},"B":{"type":"object","properties":{"inner":{"type":"integer"}},"required":["inner"]}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(g, `"\"inner\""`) || strings.Contains(g, "ref-defs-B ::= object") {
		t.Errorf("nested reference unresolved:\n%s", g)
	}
}
