package llama_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

// vocabSep separates the cases of a .inp file (llama.cpp's
// tests/test-tokenizer-0.cpp); the file ends with it.
const vocabSep = "\n__ggml_vocab_test__\n"

// roundTrip is what Detokenize(Tokenize(text)) gives back for a tokenizer,
// found by running all 46 conformance cases through each vocabulary.
type roundTrip int

const (
	// rtExact: the input text comes back byte for byte. This holds for the
	// BPE tokenizers without clean_spaces (deepseek-coder, deepseek-llm) and
	// for both SPM vocabularies: the leading space SPM adds when
	// tokenizing (add_space_prefix, "Hello" -> "▁Hello") is removed again by
	// llama_detokenize from the first token.
	rtExact roundTrip = iota
	// rtCleanSpaces: the text comes back with llama.cpp's
	// tokenizer_clean_spaces applied (gpt-2, falcon, mpt, refact,
	// starcoder): a space before ? ! . , is dropped, " ' " becomes "'", and
	// the space before 's 'm 're 've is dropped. In the vectors only " ?"
	// occurs, in two cases ("you 😁 ?我" -> "you 😁?我").
	rtCleanSpaces
	// rtWordPiece: BERT's WordPiece normalises (lowercases, strips accents,
	// splits punctuation, drops characters it maps to [UNK]), so the text
	// does not come back. What holds: the detokenized text is lowercase,
	// and tokenizing it again gives the same ids with [UNK] left out.
	rtWordPiece
)

var vocabTests = []struct {
	file  string
	typ   llama.VocabType
	round roundTrip
}{
	{"ggml-vocab-bert-bge.gguf", llama.VocabWPM, rtWordPiece},
	{"ggml-vocab-deepseek-coder.gguf", llama.VocabBPE, rtExact},
	{"ggml-vocab-deepseek-llm.gguf", llama.VocabBPE, rtExact},
	{"ggml-vocab-falcon.gguf", llama.VocabBPE, rtCleanSpaces},
	{"ggml-vocab-gpt-2.gguf", llama.VocabBPE, rtCleanSpaces},
	{"ggml-vocab-llama-spm.gguf", llama.VocabSPM, rtExact},
	{"ggml-vocab-mpt.gguf", llama.VocabBPE, rtCleanSpaces},
	{"ggml-vocab-phi-3.gguf", llama.VocabSPM, rtExact},
	{"ggml-vocab-refact.gguf", llama.VocabBPE, rtCleanSpaces},
	{"ggml-vocab-starcoder.gguf", llama.VocabBPE, rtCleanSpaces},
}

type vocabCase struct {
	text string
	ids  []llama.TokenID
}

// readVocabCases reads a .inp/.out pair as llama.cpp's test-tokenizer-0
// does (see PROVENANCE.md).
func readVocabCases(t *testing.T, path string) []vocabCase {
	t.Helper()
	inp, err := os.ReadFile(path + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(path + ".out")
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for raw := string(inp); raw != ""; {
		i := strings.Index(raw, vocabSep)
		if i < 0 {
			texts = append(texts, raw)
			break
		}
		texts = append(texts, raw[:i])
		raw = raw[i+len(vocabSep):]
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(texts) != len(lines) {
		t.Fatalf("%s: %d cases in .inp, %d lines in .out", path, len(texts), len(lines))
	}
	cases := make([]vocabCase, len(texts))
	for i, text := range texts {
		cases[i].text = text
		cases[i].ids = []llama.TokenID{} // an empty line is an empty list
		for f := range strings.SplitSeq(strings.TrimSpace(lines[i]), " ") {
			if f == "" {
				continue
			}
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				t.Fatalf("%s.out line %d: %v", path, i+1, err)
			}
			cases[i].ids = append(cases[i].ids, llama.TokenID(n))
		}
	}
	return cases
}

// cleanSpaces is llama.cpp's tokenizer_clean_spaces post-processing of
// llama_detokenize (llama-vocab.cpp), pass for pass.
func cleanSpaces(s string) string {
	if s == "" {
		return s
	}
	// " ?", " !", " .", " ," lose the space.
	b := []byte{s[0]}
	for i := 1; i < len(s); i++ {
		if s[i-1] == ' ' && strings.IndexByte("?!.,", s[i]) >= 0 {
			b = b[:len(b)-1]
		}
		b = append(b, s[i])
	}
	// " ' " becomes "'".
	s = string(b)
	b = []byte{s[0]}
	for i := 1; i < len(s); i++ {
		x := s[i]
		if x == '\'' && i+1 < len(s) && s[i-1] == ' ' && s[i+1] == ' ' {
			b = b[:len(b)-1]
			i++ // the space after it is skipped
		}
		b = append(b, x)
	}
	// " 's", " 'm", " 're", " 've" lose the space.
	s = string(b)
	b = []byte{s[0]}
	for i := 1; i < len(s); i++ {
		if s[i-1] == ' ' && s[i] == '\'' && i+1 < len(s) {
			switch x1 := s[i+1]; {
			case x1 == 's' || x1 == 'm':
				b = b[:len(b)-1]
			case i+2 < len(s) && (x1 == 'r' || x1 == 'v') && s[i+2] == 'e':
				b = b[:len(b)-1]
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

func TestCleanSpacesPort(t *testing.T) {
	for in, want := range map[string]string{
		"":              "",
		"you ?":         "you?",
		"a , b . c ! d": "a, b. c! d",
		"it 's we 're":  "it's we're",
		"I 'm you 've":  "I'm you've",
		"don 't":        "don 't",
		" ?":            "?",
		"a ' b":         "a'b",
	} {
		if got := cleanSpaces(in); got != want {
			t.Errorf("cleanSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTokenizerConformance(t *testing.T) {
	dir := filepath.Join(modelsDir(t), "vocab")
	files, err := filepath.Glob(filepath.Join(dir, "*.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(vocabTests) {
		t.Fatalf("%d vocab files in %s, the table has %d", len(files), dir, len(vocabTests))
	}
	for _, vt := range vocabTests {
		t.Run(strings.TrimSuffix(strings.TrimPrefix(vt.file, "ggml-vocab-"), ".gguf"), func(t *testing.T) {
			path := filepath.Join(dir, vt.file)
			m := loadModel(t, filepath.Join("vocab", vt.file), llama.WithVocabOnly())
			if !m.VocabOnly() {
				t.Error("VocabOnly() = false")
			}
			if got := m.VocabType(); got != vt.typ {
				t.Errorf("VocabType = %v, want %v", got, vt.typ)
			}
			cases := readVocabCases(t, path)
			if len(cases) != 46 {
				t.Fatalf("%d cases, want 46", len(cases))
			}
			unk := llama.NullToken
			if vt.round == rtWordPiece {
				unk = 100
				if s, err := m.TokenText(unk); err != nil || s != "[UNK]" {
					t.Fatalf("TokenText(100) = %q, %v; want [UNK]", s, err)
				}
			}
			for i, c := range cases {
				got, err := m.Tokenize(c.text, 0)
				if err != nil {
					t.Fatalf("case %d %q: %v", i, c.text, err)
				}
				if !slices.Equal(got, c.ids) {
					t.Errorf("case %d: Tokenize(%q) =\n%v, want\n%v", i, c.text, got, c.ids)
					continue
				}
				text, err := m.Detokenize(got, false, false)
				if err != nil {
					t.Fatalf("case %d: Detokenize: %v", i, err)
				}
				switch vt.round {
				case rtExact:
					if text != c.text {
						t.Errorf("case %d: round trip %q -> %q", i, c.text, text)
					}
				case rtCleanSpaces:
					if want := cleanSpaces(c.text); text != want {
						t.Errorf("case %d: round trip %q -> %q, want %q", i, c.text, text, want)
					}
				case rtWordPiece:
					if low := strings.ToLower(text); text != low {
						t.Errorf("case %d: detokenized %q is not lowercase", i, text)
					}
					again, err := m.Tokenize(text, 0)
					if err != nil {
						t.Fatal(err)
					}
					want := slices.DeleteFunc(slices.Clone(got), func(id llama.TokenID) bool { return id == unk })
					if !slices.Equal(again, want) {
						t.Errorf("case %d: Tokenize(Detokenize(%v)) = %v, want %v", i, got, again, want)
					}
				}
			}
		})
	}
}

// TestTokenizerHostileInput feeds every vocabulary text that is not
// well-formed: it must tokenize without crashing, and what comes back must
// detokenize.
func TestTokenizerHostileInput(t *testing.T) {
	inputs := []string{
		"", "\x00", "a\x00b", "\xff\xfe\xfd", "\xe6\x97", "日本\xe8", strings.Repeat("\x80", 64),
		strings.Repeat("ab ", 5000), strings.Repeat("🦙", 500),
		"<s></s><unk><|endoftext|>[CLS][SEP]<|user|><|end|>", "<s", "</s", "<|", "[UNK",
	}
	for _, vt := range vocabTests {
		m := loadModel(t, filepath.Join("vocab", vt.file), llama.WithVocabOnly())
		for _, in := range inputs {
			for _, flags := range []llama.SpecialTokens{0, llama.AddSpecial, llama.ParseSpecial, llama.AddSpecial | llama.ParseSpecial} {
				ids, err := m.Tokenize(in, flags)
				if err != nil {
					t.Errorf("%s: Tokenize(%.20q, %d): %v", vt.file, in, flags, err)
					continue
				}
				for _, rs := range []bool{false, true} {
					if _, err := m.Detokenize(ids, rs, rs); err != nil {
						t.Errorf("%s: Detokenize(Tokenize(%.20q)): %v", vt.file, in, err)
					}
				}
			}
		}
	}
	// Bytes that decode above U+10FFFF make the pre-tokenizers of BPE and
	// WordPiece vocabularies throw: an error about the text, not the model,
	// which goes on working. SentencePiece falls back on byte tokens.
	for _, vt := range vocabTests {
		m := loadModel(t, filepath.Join("vocab", vt.file), llama.WithVocabOnly())
		for _, in := range []string{"\xf4\x90\x80\x80", "ok \xf7\xbf\xbf\xbf ok"} {
			_, err := m.Tokenize(in, 0)
			if vt.typ == llama.VocabSPM && err != nil || vt.typ != llama.VocabSPM && !errors.Is(err, llama.ErrInvalidArgument) {
				t.Errorf("%s: Tokenize(%q): %v", vt.file, in, err)
			}
		}
		if ids, err := m.Tokenize("still fine", 0); err != nil || len(ids) == 0 {
			t.Errorf("%s: after invalid text, Tokenize: %v, %v", vt.file, ids, err)
		}
	}

	// SPM keeps arbitrary bytes through byte-fallback tokens.
	m := loadModel(t, "vocab/ggml-vocab-llama-spm.gguf", llama.WithVocabOnly())
	for _, in := range []string{"a\x00b", "\xff\xfe\xfd", "日本\xe8"} {
		ids, _ := m.Tokenize(in, 0)
		if got, _ := m.Detokenize(ids, false, false); got != in {
			t.Errorf("SPM round trip of %q = %q", in, got)
		}
	}
}

func TestTokenizeSpecial(t *testing.T) {
	m := loadModel(t, "vocab/ggml-vocab-llama-spm.gguf", llama.WithVocabOnly())
	if m.BOS() != 1 || m.EOS() != 2 || !m.AddsBOS() || m.AddsEOS() {
		t.Fatalf("BOS %d EOS %d AddsBOS %v AddsEOS %v; want 1 2 true false", m.BOS(), m.EOS(), m.AddsBOS(), m.AddsEOS())
	}
	tests := []struct {
		text  string
		flags llama.SpecialTokens
		want  []llama.TokenID
	}{
		{"Hello world", 0, []llama.TokenID{15043, 3186}},
		{"Hello world", llama.AddSpecial, []llama.TokenID{1, 15043, 3186}},
		{"", 0, []llama.TokenID{}},
		{"", llama.AddSpecial, []llama.TokenID{1}},
		// Without ParseSpecial "<s>" is plain text: "▁<", "s", ">".
		{"<s>Hello world</s>", 0, []llama.TokenID{529, 29879, 29958, 10994, 3186, 829, 29879, 29958}},
		{"<s>Hello world</s>", llama.AddSpecial, []llama.TokenID{1, 529, 29879, 29958, 10994, 3186, 829, 29879, 29958}},
		// With it, "<s>" and "</s>" are BOS and EOS.
		{"<s>Hello world</s>", llama.ParseSpecial, []llama.TokenID{1, 15043, 3186, 2}},
		{"<s>Hello world</s>", llama.AddSpecial | llama.ParseSpecial, []llama.TokenID{1, 1, 15043, 3186, 2}},
	}
	for _, tt := range tests {
		got, err := m.Tokenize(tt.text, tt.flags)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.want) || got == nil {
			t.Errorf("Tokenize(%q, %d) = %#v, want %v", tt.text, tt.flags, got, tt.want)
		}
	}

	pieces := []struct {
		id            llama.TokenID
		text          string // TokenText: as stored, "▁" for space
		piece, unpars string // TokenToPiece without and with special
		control       bool
	}{
		{0, "<unk>", "", "<unk>", false},
		{1, "<s>", "", "<s>", true},
		{2, "</s>", "", "</s>", true},
		{13, "<0x0A>", "\n", "\n", false},
		{29871, "▁", " ", " ", false},
		{15043, "▁Hello", " Hello", " Hello", false},
	}
	for _, p := range pieces {
		text, err := m.TokenText(p.id)
		if err != nil || text != p.text {
			t.Errorf("TokenText(%d) = %q, %v; want %q", p.id, text, err, p.text)
		}
		for special, want := range map[bool]string{false: p.piece, true: p.unpars} {
			if got, err := m.TokenToPiece(p.id, special); err != nil || got != want {
				t.Errorf("TokenToPiece(%d, %v) = %q, %v; want %q", p.id, special, got, err, want)
			}
		}
		if got := m.IsControl(p.id); got != p.control {
			t.Errorf("IsControl(%d) = %v", p.id, got)
		}
	}

	// Detokenize: removeSpecial drops the BOS the model adds (and with it
	// the removal of SPM's leading space); unparseSpecial renders control
	// tokens as text. EOS stays: this vocabulary does not add it.
	ids := []llama.TokenID{1, 15043, 3186, 2}
	for _, tt := range []struct {
		removeSpecial, unparseSpecial bool
		want                          string
	}{
		{false, false, " Hello world"},
		{false, true, "<s> Hello world</s>"},
		{true, false, " Hello world"},
		{true, true, " Hello world</s>"},
	} {
		got, err := m.Detokenize(ids, tt.removeSpecial, tt.unparseSpecial)
		if err != nil || got != tt.want {
			t.Errorf("Detokenize(%v, %v, %v) = %q, %v; want %q", ids, tt.removeSpecial, tt.unparseSpecial, got, err, tt.want)
		}
	}
	if got, err := m.Detokenize([]llama.TokenID{15043, 3186}, false, false); err != nil || got != "Hello world" {
		t.Errorf("Detokenize without BOS = %q, %v; want %q", got, err, "Hello world")
	}
	if got, err := m.Detokenize(nil, false, false); err != nil || got != "" {
		t.Errorf("Detokenize(nil) = %q, %v", got, err)
	}
	// A long text makes Detokenize grow its buffer.
	long := strings.Repeat("Hello world, 日本語 🦙! ", 2000)
	ids, err := m.Tokenize(long, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.Detokenize(ids, false, false); err != nil || got != long {
		t.Errorf("long round trip: %v, equal %v", err, got == long)
	}
}

func TestStoriesVocab(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	if m.VocabType() != llama.VocabSPM || m.VocabSize() != 512 {
		t.Errorf("VocabType %v VocabSize %d, want SPM 512", m.VocabType(), m.VocabSize())
	}
	if m.BOS() != 1 || m.EOS() != 2 {
		t.Errorf("BOS %d EOS %d, want 1 2", m.BOS(), m.EOS())
	}
	if !m.IsEOG(2) {
		t.Error("IsEOG(2) = false")
	}
	for _, id := range []llama.TokenID{0, 1, 13, 403} {
		if m.IsEOG(id) {
			t.Errorf("IsEOG(%d) = true", id)
		}
	}
	ids, err := m.Tokenize("Once upon a time", llama.AddSpecial)
	if err != nil {
		t.Fatal(err)
	}
	if want := []llama.TokenID{1, 403, 407, 261, 378}; !slices.Equal(ids, want) {
		t.Errorf("Tokenize = %v, want %v", ids, want)
	}
	var b strings.Builder
	for _, id := range ids {
		p, err := m.TokenToPiece(id, false)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(p)
	}
	if b.String() != " Once upon a time" {
		t.Errorf("pieces = %q", b.String())
	}
}

func TestInvalidTokens(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	n := llama.TokenID(m.VocabSize())
	for _, id := range []llama.TokenID{-1, -2, n, n + 1, 1 << 30, -1 << 31, 1<<31 - 1} {
		if _, err := m.TokenToPiece(id, false); !errors.Is(err, llama.ErrInvalidToken) {
			t.Errorf("TokenToPiece(%d): %v", id, err)
		}
		if _, err := m.TokenToPiece(id, true); !errors.Is(err, llama.ErrInvalidToken) {
			t.Errorf("TokenToPiece(%d, true): %v", id, err)
		}
		if _, err := m.TokenText(id); !errors.Is(err, llama.ErrInvalidToken) {
			t.Errorf("TokenText(%d): %v", id, err)
		}
		if _, err := m.Detokenize([]llama.TokenID{1, 403, id}, false, false); !errors.Is(err, llama.ErrInvalidToken) {
			t.Errorf("Detokenize(..., %d): %v", id, err)
		}
		if m.IsEOG(id) || m.IsControl(id) {
			t.Errorf("IsEOG/IsControl(%d) = true", id)
		}
	}
	// The last valid id works.
	if _, err := m.TokenToPiece(n-1, false); err != nil {
		t.Errorf("TokenToPiece(%d): %v", n-1, err)
	}
}
