package server

import (
	"testing"

	"github.com/llamago/llamago/llama"
)

// TestJSONGrammar: the json_object grammar parses, accepts JSON objects
// and refuses other text, token by token.
func TestJSONGrammar(t *testing.T) {
	m := stories(t)
	// A token for each byte: tokenizing would add SentencePiece's leading
	// space, which the grammar does not allow.
	byteToken := map[byte]llama.TokenID{}
	for id := range llama.TokenID(m.VocabSize()) {
		if p, err := m.TokenToPiece(id, false); err == nil && len(p) == 1 {
			if _, ok := byteToken[p[0]]; !ok {
				byteToken[p[0]] = id
			}
		}
	}
	accepts := func(text string) bool {
		s, err := m.NewSampler(llama.WithGrammar(jsonObjectGrammar, ""))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for i := range len(text) {
			tok, ok := byteToken[text[i]]
			if !ok {
				t.Fatalf("no token for byte %q", text[i])
			}
			if s.Accept(tok) != nil {
				return false
			}
		}
		return true
	}
	for _, good := range []string{`{}`, `{"a": 1}`, `{"a": [1, -2.5e3, true, false, null, "x\"y\u00e9"], "b": {"c": {}}}`, "{\n  \"k\": \"v\"\n}"} {
		if !accepts(good) {
			t.Errorf("refused %q", good)
		}
	}
	for _, bad := range []string{`[]`, `"a"`, `{"a" 1}`, `{'a': 1}`, `{"a": 01}`, `{"a": tru}`, `{} x`, `{"a":1,}`} {
		if accepts(bad) {
			t.Errorf("accepted %q", bad)
		}
	}
}
