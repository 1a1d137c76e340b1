package llama_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

// TestPenaltyWindows: penalty windows beyond MaxSamplerWindow are refused
// before llama.cpp allocates them (it truncated those above 2³¹ to 32
// bits), and a window of -1 means the context, not "off".
func TestPenaltyWindows(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	for name, o := range map[string]llama.SamplerOption{
		"repeat window":      llama.WithPenalties(llama.MaxSamplerWindow+1, 1.1, 0, 0),
		"repeat window 2^32": llama.WithPenalties(1<<32+10, 1.1, 0, 0),
		"DRY window":         llama.WithDRY(0.8, 1.75, 2, 1<<32+10, nil),
		"context size":       llama.WithSamplerContextSize(1 << 32),
		"negative context":   llama.WithSamplerContextSize(-5),
	} {
		if s, err := m.NewSampler(o); !errors.Is(err, llama.ErrInvalidArgument) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s: NewSampler = %v, want ErrInvalidArgument", name, err)
		}
	}

	c := newContext(t, m)
	gen := func(lastN int) string {
		return mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(100),
			llama.WithSampling(llama.WithGreedy(), llama.WithPenalties(lastN, 3, 0, 0))).text
	}
	off, whole, ctx := gen(0), gen(c.SequenceContextSize()), gen(-1)
	if whole == off {
		t.Fatalf("a repeat penalty over the context changed nothing: %q", off)
	}
	if ctx != whole {
		t.Errorf("window -1 gives\n%q\nwant the context's window's\n%q", ctx, whole)
	}
}

// TestContextMemory: a context that cannot fit in the memory available is
// refused at once with the estimate, before llama.cpp allocates its KV
// cache (-c 10000000 on stories260K took 6.7 GB for 22 s, then failed on
// its compute buffers).
func TestContextMemory(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	defer llama.SetMemoryAvailable(256 << 20)()
	c, err := m.NewContext(llama.WithContextSize(10_000_000))
	if err == nil {
		c.Close()
		t.Fatal("a context of 10000000 positions was made in 256 MiB")
	}
	// KV: 10000128 positions × 5 layers × 4 KV heads × 8 values × 2 bytes
	// × K and V = 6.0 GiB; the mask, 6 bytes × 512 × 10000128 = 28.6 GiB;
	// without flash attention (off on the CPU) the scores of 8 heads,
	// 4 bytes × 512 × 8 × 10000128 = 152.6 GiB.
	if !errors.Is(err, llama.ErrOutOfMemory) || !strings.Contains(err.Error(), "10000128 positions needs about 177.") ||
		!strings.Contains(err.Error(), "KV cache 6.0 GiB") || !strings.Contains(err.Error(), "256.0 MiB is available") {
		t.Errorf("NewContext: %v", err)
	}
	c, err = m.NewContext(llama.WithContextSize(2048), llama.WithThreads(1))
	if err != nil {
		t.Fatalf("a context of 2048 positions in 256 MiB: %v", err)
	}
	c.Close()
}

// TestGrammarBounds: grammars that made llama.cpp's parser or sampler
// grow without end, crash or search for ever are refused with
// ErrInvalidGrammar before llama.cpp sees them; ordinary ones, recursive
// and repetitive, still work.
func TestGrammarBounds(t *testing.T) {
	m := loadModel(t, "stories260K.gguf", llama.WithVocabOnly())
	alts := func(n int, alt string) string { return strings.TrimSuffix(strings.Repeat(alt+" | ", n), " | ") }
	var chain strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&chain, "r%d ::= r%d\n", i, i+1)
	}
	chain.WriteString("r3000 ::= \"a\"\nroot ::= r0\n")
	var doubling strings.Builder
	doubling.WriteString("root ::= d0\n")
	for i := range 40 {
		fmt.Fprintf(&doubling, "d%d ::= d%d | d%d\n", i, i+1, i+1)
	}
	doubling.WriteString("d40 ::= \"a\"\n")
	for _, tt := range []struct{ name, grammar, want string }{
		// llama.cpp expanded it into rules until memory ran out.
		{"inverted repetition", `root ::= "a"{2,1}`, "repetition {2,1}: the minimum is greater than the maximum"},
		{"inverted repetition in a group", `root ::= ("a" | "b"){5,4} "c"`, "repetition {5,4}"},
		{"expansion", `root ::= "` + strings.Repeat("a", 2000) + `"{2000}`, "too large"},
		{"optional expansion", `root ::= "` + strings.Repeat("ab", 1000) + `"{0,2000}`, "too large"},
		{"nesting", "root ::= " + strings.Repeat("(", 300) + `"a"` + strings.Repeat(")", 300), "groups nest more than 256 deep"},
		// A rule that begins with itself through one that can be empty
		// without an empty alternative: llama.cpp's check misses it and
		// its search recursed until the stack overflowed.
		{"hidden left recursion", "root ::= z root | \"b\"\nz ::= y\ny ::= \"a\" |", "left recursion: rule root can begin with itself"},
		{"left recursion", `root ::= root "a" | "b"`, "left recursion"},
		{"long chain", chain.String(), "more than 2048 rules begin one another"},
		// The search for the ways to begin doubled at each level.
		{"nested optional", `root ::= (("a"?)?){0,60}`, "too many ways for its rules to begin"},
		{"doubling", doubling.String(), "too many ways for its rules to begin"},
		{"wide", "root ::= x x\nx ::= " + alts(2000, `"a"`), "too many ways for its rules to continue"},
		{"ambiguous recursion", "root ::= \"a\" root b | \"x\"\nb ::= \"c\"? | \"d\"?", "ambiguous recursion"},
	} {
		s, err := m.NewSampler(llama.WithGrammar(tt.grammar, ""))
		if err == nil {
			s.Close()
			t.Errorf("%s: NewSampler accepted it", tt.name)
			continue
		}
		if !errors.Is(err, llama.ErrInvalidGrammar) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrInvalidGrammar with %q", tt.name, err, tt.want)
		}
	}

	for name, g := range map[string]string{
		"right recursion":  `root ::= "(" root ")"? | "x"`,
		"long repetition":  `root ::= [a-z]{0,2000} "."`,
		"json":             jsonGrammar,
		"many alternates":  "root ::= (" + alts(5000, `"abc"`) + `) "."`,
		"optional chains":  `root ::= ("a"? "b"? "c"?){0,20} "."`,
		"enum of strings":  "root ::= (" + alts(3000, `"\"value\""`) + ") space\nspace ::= | \" \" | \"\\n\"{1,2} [ \\t]{0,20}",
		"nested structure": "root ::= item+\nitem ::= \"[\" (item (\",\" item)*)? \"]\" | [0-9]+",
	} {
		s, err := m.NewSampler(llama.WithGrammar(g, ""))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		s.Close()
	}
}

// jsonGrammar is llama.cpp's grammars/json.gbnf, in substance.
const jsonGrammar = `root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
`

// TestJSONSchemaBounds: schemas that crashed llama.cpp's converter, made
// it loop for ever or work out of proportion, or converted to a grammar
// of those TestGrammarBounds refuses, give ErrInvalidSchema at once.
func TestJSONSchemaBounds(t *testing.T) {
	str := func(pattern string) string { return `{"type":"string","pattern":` + strconv.Quote(pattern) + `}` }
	props := func(n int, required bool) string {
		var p, r []string
		for i := range n {
			p = append(p, fmt.Sprintf(`"p%d":{"type":"integer"}`, i))
			r = append(r, fmt.Sprintf(`"p%d"`, i))
		}
		s := `{"type":"object","properties":{` + strings.Join(p, ",") + `}`
		if required {
			s += `,"required":[` + strings.Join(r, ",") + `]`
		}
		return s + "}"
	}
	var defs []string
	for i := range 1500 {
		defs = append(defs, fmt.Sprintf(`"a%d":{"$ref":"#/$defs/a%d"}`, i, i+1))
	}
	chain := `{"$ref":"#/$defs/a0","$defs":{` + strings.Join(defs, ",") + `,"a1500":{"type":"integer"}}}`
	for _, tt := range []struct{ name, schema, want string }{
		// Segmentation faults in the converter.
		{"non-capturing group", str("^(?:a)$"), `(?...) groups`},
		{"named group", str("^(?<n>a)$"), `(?...) groups`},
		{"lookahead", str("^(?=a)b$"), `(?...) groups`},
		{"leading quantifier", str("^+[a-z]$"), `'+' at offset 1 has nothing before it to repeat`},
		{"quantifier in a group", str("^a(*)$"), `'*' at offset 3 has nothing before it`},
		{"leading repetition", str("^{3}a$"), `'{' at offset 1`},
		{"reference to itself", `{"allOf":[{"$ref":"#/$defs/a"}],"$defs":{"a":{"$ref":"#/$defs/a"}}}`, `$ref "#/$defs/a" refers to itself`},
		// Endless loops in the converter.
		{"stray bracket", str("^a]$"), `unbalanced ']' at offset 2`},
		{"stray brace", str("^a}b$"), `unbalanced '}' at offset 2`},
		// Repetitions the grammar parser expanded without end.
		{"inverted lengths", `{"type":"string","minLength":3,"maxLength":1}`, "minLength 3 is greater than maxLength 1"},
		{"inverted items", `{"type":"array","items":{"type":"integer"},"minItems":3,"maxItems":2}`, "minItems 3 is greater than maxItems 2"},
		{"inverted repetition in a pattern", str("^a{2,1}$"), "repetition {2,1}"},
		{"nested optional pattern", str("^((a?)?){0,60}$"), "too many ways"},
		// Work out of proportion to the schema.
		{"optional properties", props(300, false), "an object with 300 optional properties, at most 256"},
		{"repeated type", `{"type":["object","null","object"],"properties":{"a":{"type":"integer"}}}`, "distinct type names"},
		{"reference chain", chain, "references"},
	} {
		g, err := llama.JSONSchemaGrammar(tt.schema)
		if err == nil {
			t.Errorf("%s: converted to %.200q", tt.name, g)
			continue
		}
		if !errors.Is(err, llama.ErrInvalidSchema) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrInvalidSchema with %q", tt.name, err, tt.want)
		}
	}

	m := loadModel(t, "stories260K.gguf", llama.WithVocabOnly())
	for name, schema := range map[string]string{
		"pattern":             str(`^[a-z]{3}(-[0-9]+)*\.(com|org)$`),
		"required properties": props(2000, true),
		"optional properties": props(200, false),
		"lengths":             `{"type":"string","minLength":2,"maxLength":2000}`,
		"type union":          `{"type":["object","null"],"properties":{"a":{"type":["integer","string"]}}}`,
		"references":          `{"type":"object","properties":{"a":{"$ref":"#/$defs/p"},"b":{"$ref":"#/$defs/p"}},"$defs":{"p":{"type":"object","properties":{"x":{"$ref":"#/$defs/q"}}},"q":{"type":"array","items":{"type":"number"}}}}`,
	} {
		g, err := llama.JSONSchemaGrammar(schema)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		s, err := m.NewSampler(llama.WithGrammar(g, ""))
		if err != nil {
			t.Errorf("%s: NewSampler: %v", name, err)
			continue
		}
		s.Close()
	}
}

// TestLogitsAreCopies: Logits and Embeddings return slices the caller
// owns, not views into the context's memory, which the next Decode
// overwrites and Close (maybe in another goroutine) frees.
func TestLogitsAreCopies(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := llama.NewBatch(4, 1)
	defer b.Close()
	decode := func(tok llama.TokenID, pos int) {
		b.Clear()
		b.Add(tok, pos, true)
		if err := c.Decode(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	decode(1, 0)
	first, err := c.Logits(-1)
	if err != nil {
		t.Fatal(err)
	}
	keep := slices.Clone(first)
	first[0] = 12345
	if again, _ := c.Logits(-1); again[0] == 12345 {
		t.Error("writing the returned logits changed the context's")
	}
	decode(2, 1)
	c.Close()
	if !slices.Equal(first[1:], keep[1:]) {
		t.Error("the returned logits changed with the next Decode or Close")
	}

	e, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithEmbeddings(llama.PoolingNone))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	b.Clear()
	b.Add(1, 0, true)
	if err := e.Decode(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	v, err := e.Embeddings(-1)
	if err != nil {
		t.Fatal(err)
	}
	v[0] = 12345
	if again, _ := e.Embeddings(-1); again[0] == 12345 {
		t.Error("writing the returned embedding changed the context's")
	}
}
