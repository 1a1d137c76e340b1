package chat

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/llamago/llamago/llama"
)

// TestGrammarReplies: a grammar given as a sampler option constrains every
// reply of a session, whether written in GBNF or converted from a JSON
// Schema; the sampler is built afresh for each reply, so each starts at
// the grammar's root.
func TestGrammarReplies(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)

	s := storiesSession(t, c, WithMaxTokens(64),
		WithSampling(llama.WithSeed(5), llama.WithTemperature(1), llama.WithGrammar(`root ::= ("yes" | "no") ", " [a-z]{1,6} "."`, "")))
	re := regexp.MustCompile(`^(yes|no), [a-z]{1,6}\.$`)
	for _, msg := range []string{"Is it sunny?", "Do you like cats?", "Why?"} {
		if answer, _ := reply(t, s, msg); !re.MatchString(answer) {
			t.Errorf("reply to %q: %q does not match the grammar", msg, answer)
		}
	}

	schema := `{"type":"object","properties":{"mood":{"enum":["happy","sad"]},"n":{"type":"integer","minimum":1,"maximum":9},"word":{"type":"string","maxLength":5}},"required":["mood","n","word"]}`
	g, err := llama.JSONSchemaGrammar(schema)
	if err != nil {
		t.Fatal(err)
	}
	s = storiesSession(t, newContext(t, m), WithMaxTokens(160), WithSampling(llama.WithSeed(9), llama.WithTemperature(1), llama.WithGrammar(g, "")))
	for _, msg := range []string{"How are you?", "And now?", "Tell me again."} {
		answer, _ := reply(t, s, msg)
		var v struct {
			Mood string `json:"mood"`
			N    int    `json:"n"`
			Word string `json:"word"`
		}
		d := json.NewDecoder(bytes.NewReader([]byte(answer)))
		d.DisallowUnknownFields()
		if err := d.Decode(&v); err != nil || (v.Mood != "happy" && v.Mood != "sad") || v.N < 1 || v.N > 9 || len([]rune(v.Word)) > 5 {
			t.Errorf("reply to %q: %q (%+v, %v) is not what the schema allows", msg, answer, v, err)
		}
	}
	// The grammar ends the reply: after the value (and the white space
	// llama.cpp's JSON grammars allow after it) only end of generation is
	// allowed.
	if st := s.Stats(); st.StopReason != llama.StopEOG {
		t.Errorf("last reply stopped with %v, want eog (the grammar's end)", st.StopReason)
	}
}
