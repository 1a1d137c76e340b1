package server

import (
	"math"
	"testing"

	"github.com/llamago/llamago/llama"
)

func TestTextStream(t *testing.T) {
	tests := []struct {
		name    string
		stops   []string
		pieces  []string
		want    []string // released after each piece
		stopped int      // index of the piece that matches a stop, or -1
		flush   string
	}{
		{"plain", nil, []string{"a", "b"}, []string{"a", "b"}, -1, ""},
		{"utf8 split", nil, []string{"\xe4", "\xb8", "\xad!"}, []string{"", "", "中!"}, -1, ""},
		{"utf8 at end", nil, []string{"a\xe4\xb8"}, []string{"a"}, -1, "\xe4\xb8"},
		{"stop in one piece", []string{"END"}, []string{"abcENDxyz"}, []string{"abc"}, 0, ""},
		{"stop across pieces", []string{"END"}, []string{"ab", "cE", "N", "Dz"}, []string{"ab", "c", "", ""}, 3, ""},
		{"held prefix released", []string{"END"}, []string{"xE", "Nx"}, []string{"x", "ENx"}, -1, ""},
		{"prefix at the end", []string{"END"}, []string{"abEN"}, []string{"ab"}, -1, "EN"},
		{"earliest stop wins", []string{"cd", "bcd"}, []string{"abcd"}, []string{"a"}, 0, ""},
		{"invalid byte passes", nil, []string{"\xff", "a"}, []string{"\xff", "a"}, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &textStream{stops: tt.stops}
			for i, p := range tt.pieces {
				out, stopped := s.push(p)
				if out != tt.want[i] || stopped != (i == tt.stopped) {
					t.Fatalf("piece %d %q: %q, %v; want %q, %v", i, p, out, stopped, tt.want[i], i == tt.stopped)
				}
				if stopped {
					return
				}
			}
			if f := s.flush(); f != tt.flush {
				t.Errorf("flush = %q, want %q", f, tt.flush)
			}
		})
	}
}

func TestLogSoftmax(t *testing.T) {
	logits := []float32{1, 3, 2, 3, -1}
	ls := newLogSoftmax(logits, 3)
	var sum float64
	for i := range logits {
		sum += math.Exp(ls.of(llama.TokenID(i)).Logprob)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("probabilities sum to %v", sum)
	}
	top := ls.of(2).Top
	if len(top) != 3 || top[0].ID != 1 || top[1].ID != 3 || top[2].ID != 2 || top[0].Logprob != top[1].Logprob {
		t.Errorf("top = %+v", top)
	}
	if lp := ls.of(2).Logprob; math.Abs(lp-top[2].Logprob) > 1e-12 {
		t.Errorf("logprob of 2 = %v, in top %v", lp, top[2].Logprob)
	}
	if got := newLogSoftmax(logits, 0).top; got != nil {
		t.Errorf("k = 0: %v", got)
	}
}

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

func TestCommonPrefix(t *testing.T) {
	for _, tt := range []struct {
		a, b []llama.TokenID
		want int
	}{{nil, nil, 0}, {[]llama.TokenID{1, 2, 3}, []llama.TokenID{1, 2}, 2}, {[]llama.TokenID{1, 2}, []llama.TokenID{1, 3}, 1}, {[]llama.TokenID{4}, []llama.TokenID{1}, 0}} {
		if got := commonPrefix(tt.a, tt.b); got != tt.want {
			t.Errorf("commonPrefix(%v, %v) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
