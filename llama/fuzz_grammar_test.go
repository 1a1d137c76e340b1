package llama_test

import (
	"context"
	"errors"
	"testing"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// The seeds of FuzzJSONSchemaGrammar and FuzzGrammar: inputs that crashed
// llama.cpp, hung it or grew its memory without end before the binding's
// checks refused them, and a few that work. go test runs them; explore
// with
//
//	go test -run '^$' -fuzz FuzzJSONSchemaGrammar ./llama
//	go test -run '^$' -fuzz FuzzGrammar ./llama
//
// An input that runs past testllama.BoundedTime or grows the memory by
// testllama.BoundedMemory is reported as a crasher, with its text.
var (
	schemaSeeds = []string{
		`{"type":"string","pattern":"^(?:a)$"}`,                               // segmentation fault
		`{"type":"string","pattern":"^(?<n>a)$"}`,                             // segmentation fault
		`{"type":"string","pattern":"^(?=a)b$"}`,                              // segmentation fault
		`{"type":"string","pattern":"^+[a-z]$"}`,                              // segmentation fault
		`{"type":"string","pattern":"^a]$"}`,                                  // endless loop
		`{"type":"string","pattern":"^a{2,1}$"}`,                              // memory without end
		`{"type":"string","minLength":3,"maxLength":1}`,                       // memory without end
		`{"type":"string","pattern":"^((a?)?){0,60}$"}`,                       // search without end
		`{"allOf":[{"$ref":"#/$defs/a"}],"$defs":{"a":{"$ref":"#/$defs/a"}}}`, // stack overflow
		`{"type":["object","object"],"properties":{"a":{"type":"integer"}}}`,
		`{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer","minimum":0,"maximum":120}},"required":["name"]}`,
		`{"type":"array","items":{"enum":["a","b",3]},"minItems":1,"maxItems":3}`,
		`{"type":"string","pattern":"^[a-z]{2,4}(-[0-9]+)*$"}`,
	}
	grammarSeeds = []string{
		`root ::= "a"{2,1}`, // memory without end
		"root ::= z root | \"b\"\nz ::= y\ny ::= \"a\" |", // stack overflow
		`root ::= (("a"?)?){0,60}`,                        // search without end
		"root ::= \"a\" root b | \"x\"\nb ::= \"c\"? | \"d\"?",
		`root ::= "(" root ")"? | "x"`,
		`root ::= [a-z ]{1,20} "."`,
		jsonGrammar,
	}
)

// FuzzJSONSchemaGrammar converts schemas to grammars and samples with
// them: each must give ErrInvalidSchema, ErrInvalidGrammar or a sampler
// that generates, within testllama.Bounded's limits.
func FuzzJSONSchemaGrammar(f *testing.F) {
	m, c := fuzzGrammarModel(f)
	for _, s := range schemaSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, schema string) {
		testllama.Bounded(schema, func() {
			g, err := llama.JSONSchemaGrammar(schema)
			if err != nil {
				if !errors.Is(err, llama.ErrInvalidSchema) {
					t.Errorf("JSONSchemaGrammar: %v", err)
				}
				return
			}
			fuzzSample(t, m, c, g)
		})
	})
}

// FuzzGrammar samples with GBNF grammars: each must give ErrInvalidGrammar
// or a sampler that generates, within testllama.Bounded's limits.
func FuzzGrammar(f *testing.F) {
	m, c := fuzzGrammarModel(f)
	for _, g := range grammarSeeds {
		f.Add(g)
	}
	f.Fuzz(func(t *testing.T, grammar string) {
		testllama.Bounded(grammar, func() { fuzzSample(t, m, c, grammar) })
	})
}

// fuzzGrammarModel is stories260K and a context of it.
func fuzzGrammarModel(f *testing.F) (*llama.Model, *llama.Context) {
	m, err := llama.Load(context.Background(), modelPath(f, "stories260K.gguf"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	return m, c
}

// fuzzSample makes a sampler of grammar g and generates a few tokens with
// it, at a high temperature so that the grammar, not the model, decides.
func fuzzSample(t *testing.T, m *llama.Model, c *llama.Context, g string) {
	s, err := m.NewSampler(llama.WithGrammar(g, ""), llama.WithSeed(1), llama.WithTemperature(2), llama.WithTopK(0))
	if err != nil {
		if !errors.Is(err, llama.ErrInvalidGrammar) && !errors.Is(err, llama.ErrInvalidArgument) {
			t.Errorf("NewSampler: %v", err)
		}
		return
	}
	defer s.Close()
	for _, err := range c.Generate(context.Background(), "Once", llama.WithSampler(s), llama.WithMaxTokens(16)) {
		if err != nil {
			break // a grammar the vocabulary cannot follow, say
		}
	}
}
