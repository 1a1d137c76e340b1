package llama_test

import (
	"context"
	"errors"
	"iter"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/llamago/llamago/llama"
)

const storiesPrompt = "Once upon a time"

// longStoriesPrompt is a prompt of about 60 tokens for stories260K.
const longStoriesPrompt = "Once upon a time there was a little boy named Tom. He liked to play with his red ball in the garden. " +
	"One day the ball rolled away and Tom ran after it. He looked under the big tree"

// run collects a generation: the tokens, the concatenated text and the
// error that ended it (nil if none).
type run struct {
	tokens []llama.Token
	ids    []llama.TokenID // IDs of the sampled tokens, without NullToken
	text   string
	err    error
	stats  llama.Stats
}

func generate(t testing.TB, c *llama.Context, ctx context.Context, prompt string, opts ...llama.GenerateOption) run {
	t.Helper()
	var r run
	opts = append(opts, llama.WithStats(&r.stats))
	return collect(t, c.Generate(ctx, prompt, opts...), &r)
}

// generateTokens is generate with a tokenized prompt.
func generateTokens(t testing.TB, c *llama.Context, ctx context.Context, prompt []llama.TokenID, opts ...llama.GenerateOption) run {
	t.Helper()
	var r run
	opts = append(opts, llama.WithStats(&r.stats))
	return collect(t, c.GenerateTokens(ctx, prompt, opts...), &r)
}

func mustGenerateTokens(t testing.TB, c *llama.Context, prompt []llama.TokenID, opts ...llama.GenerateOption) run {
	t.Helper()
	r := generateTokens(t, c, context.Background(), prompt, opts...)
	if r.err != nil {
		t.Fatalf("GenerateTokens: %v", r.err)
	}
	return r
}

// collect runs a generation into r (whose stats it fills already).
func collect(t testing.TB, seq iter.Seq2[llama.Token, error], r *run) run {
	t.Helper()
	var b strings.Builder
	for tok, err := range seq {
		if r.err != nil {
			t.Fatalf("Generate yielded after the error %v", r.err)
		}
		if err != nil {
			r.err = err
			continue
		}
		r.tokens = append(r.tokens, tok)
		if tok.ID != llama.NullToken {
			r.ids = append(r.ids, tok.ID)
		}
		b.WriteString(tok.Text)
	}
	r.text = b.String()
	return *r
}

func greedy(n int) []llama.GenerateOption {
	return []llama.GenerateOption{llama.WithMaxTokens(n), llama.WithSampling(llama.WithGreedy())}
}

func mustGenerate(t testing.TB, c *llama.Context, prompt string, opts ...llama.GenerateOption) run {
	t.Helper()
	r := generate(t, c, context.Background(), prompt, opts...)
	if r.err != nil {
		t.Fatalf("Generate(%q): %v", prompt, r.err)
	}
	return r
}

func TestGreedyDeterministic(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c1 := newContext(t, m)
	c2 := newContext(t, m)
	a := mustGenerate(t, c1, storiesPrompt, greedy(60)...)
	b := mustGenerate(t, c1, storiesPrompt, greedy(60)...) // same context, prompt cached
	d := mustGenerate(t, c2, storiesPrompt, greedy(60)...) // another context
	if !strings.HasPrefix(a.text, storiesPrefix) {
		t.Fatalf("greedy text %q, want prefix %q", a.text, storiesPrefix)
	}
	for _, r := range []run{b, d} {
		if r.text != a.text || !slices.Equal(r.ids, a.ids) {
			t.Errorf("greedy runs differ:\n%q\n%q", a.text, r.text)
		}
	}
	if b.stats.CachedTokens != 4 {
		t.Errorf("second run on the same context cached %d prompt tokens, want 4 (all but the last)", b.stats.CachedTokens)
	}
	// Token metadata.
	for i, tok := range a.tokens {
		if tok.Index != i {
			t.Errorf("token %d has Index %d", i, tok.Index)
		}
		if i > 0 && tok.Elapsed < a.tokens[i-1].Elapsed {
			t.Errorf("Elapsed goes back at token %d", i)
		}
	}
}

// TestChunkedPromptLogits decodes the same prompt in batches of 1, 7 and
// 512 tokens: the logits of the last token must agree.
func TestChunkedPromptLogits(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	prompt, err := m.Tokenize(longStoriesPrompt, llama.AddSpecial)
	if err != nil {
		t.Fatal(err)
	}
	if len(prompt) < 40 {
		t.Fatalf("prompt has %d tokens, want 40+", len(prompt))
	}
	logitsFor := func(chunk int) []float32 {
		c := newContext(t, m)
		b, err := llama.NewBatch(chunk, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		for i := 0; i < len(prompt); i += chunk {
			b.Clear()
			end := min(i+chunk, len(prompt))
			for j := i; j < end; j++ {
				if err := b.Add(prompt[j], j, j == len(prompt)-1); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Decode(context.Background(), b); err != nil {
				t.Fatalf("chunk %d at %d: %v", chunk, i, err)
			}
		}
		l, err := c.Logits(-1)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != m.VocabSize() {
			t.Fatalf("%d logits, want %d", len(l), m.VocabSize())
		}
		lo, hi, _ := c.PositionRange(0)
		if lo != 0 || hi != len(prompt)-1 {
			t.Errorf("chunk %d: positions %d..%d, want 0..%d", chunk, lo, hi, len(prompt)-1)
		}
		return slices.Clone(l)
	}
	ref := logitsFor(512)
	// Batches of one token take other matrix kernels than larger ones, so
	// the results differ in the last bits: compare relative to the scale of
	// the logits.
	var scale float64
	for _, v := range ref {
		scale = max(scale, math.Abs(float64(v)))
	}
	for _, chunk := range []int{1, 7} {
		got := logitsFor(chunk)
		var maxDiff float64
		for i := range ref {
			maxDiff = max(maxDiff, math.Abs(float64(got[i]-ref[i])))
		}
		t.Logf("chunk %d: max |Δlogit| = %g, max |logit| = %g", chunk, maxDiff, scale)
		if maxDiff >= 1e-3*max(1, scale) || math.IsNaN(maxDiff) {
			t.Errorf("chunk %d: logits differ from one batch by up to %g", chunk, maxDiff)
		}
		if argmax(got) != argmax(ref) {
			t.Errorf("chunk %d: argmax %d, want %d", chunk, argmax(got), argmax(ref))
		}
	}
}

func argmax(l []float32) int {
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	return best
}

func TestSeededSampling(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	sample := func(seed uint32) run {
		return mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(60),
			llama.WithSampling(llama.WithTemperature(0.8), llama.WithSeed(seed)))
	}
	a, b, d := sample(42), sample(42), sample(7)
	if a.text != b.text {
		t.Errorf("seed 42 twice:\n%q\n%q", a.text, b.text)
	}
	if a.text == d.text {
		t.Errorf("seeds 42 and 7 gave the same text %q", a.text)
	}
	g := mustGenerate(t, c, storiesPrompt, greedy(60)...)
	if a.text == g.text {
		t.Errorf("temperature 0.8 gave the greedy text")
	}
	// A Sampler passed in keeps its state: the second run continues the
	// random stream, and Seed reports the seed.
	s, err := m.NewSampler(llama.WithTemperature(0.8), llama.WithSeed(42))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Seed() != 42 {
		t.Errorf("Seed() = %d", s.Seed())
	}
	e := mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(60), llama.WithSampler(s))
	if e.text != a.text {
		t.Errorf("WithSampler(seed 42) = %q, want %q", e.text, a.text)
	}
}

func TestStopStrings(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	full := mustGenerate(t, c, storiesPrompt, greedy(40)...)
	if !strings.HasPrefix(full.text, storiesPrefix) {
		t.Fatalf("greedy text %q", full.text)
	}
	// A stop string that spans two tokens: the end of one piece and the
	// start of the next.
	var pieces []string
	for _, tok := range full.tokens {
		p, _ := m.TokenToPiece(tok.ID, false)
		pieces = append(pieces, p)
	}
	// split spans two long pieces; next is the second of them, first
	// found in the text there: both end in the same piece, split earlier.
	var split, next string
	at := 0
	for i := 0; i+1 < len(pieces); i++ {
		if i >= 3 && len(pieces[i]) >= 3 && len(pieces[i+1]) >= 3 &&
			strings.Index(full.text, pieces[i+1]) == at+len(pieces[i]) {
			split = pieces[i][len(pieces[i])-2:] + pieces[i+1][:2]
			next = pieces[i+1]
			break
		}
		at += len(pieces[i])
	}
	if split == "" {
		t.Fatal("no two long pieces in a row")
	}
	t.Logf("split stop string %q, next piece %q", split, next)

	tests := []struct {
		name  string
		stops []string
		want  string // the stop string that matches; "" for none
	}{
		{"word", []string{"Lily"}, "Lily"},
		{"split", []string{split}, split},
		{"first of two", []string{"park", "Lily"}, "Lily"},
		// Both end in the same piece: the one that starts first in the
		// text wins, not the first listed.
		{"earliest of two", []string{next, split}, split},
		{"one char", []string{"."}, "."},
		{"newline absent", []string{"\n"}, ""},
		{"empty ignored", []string{""}, ""},
		{"absent", []string{"dragon"}, ""},
		// A prefix of it ends the text: held back, then released at the end.
		{"prefix at end", []string{full.text[len(full.text)-4:] + "#"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustGenerate(t, c, storiesPrompt, append(greedy(40), llama.WithStop(tt.stops...))...)
			if tt.want == "" {
				if r.text != full.text || r.stats.StopReason != llama.StopMaxTokens {
					t.Errorf("got %q (%v), want %q (max_tokens)", r.text, r.stats.StopReason, full.text)
				}
				return
			}
			i := strings.Index(full.text, tt.want)
			if i < 0 {
				t.Fatalf("%q not in %q", tt.want, full.text)
			}
			if r.text != full.text[:i] {
				t.Errorf("text %q, want %q", r.text, full.text[:i])
			}
			if r.stats.StopReason != llama.StopString || r.stats.StopString != tt.want {
				t.Errorf("stop %v %q, want stop_string %q", r.stats.StopReason, r.stats.StopString, tt.want)
			}
			for _, tok := range r.tokens {
				for _, s := range tt.stops {
					if s != "" && strings.Contains(tok.Text, s) {
						t.Errorf("token text %q contains the stop string %q", tok.Text, s)
					}
				}
			}
			// The token that completed the stop string was sampled.
			if r.stats.GeneratedTokens <= len(r.ids)-1 || r.stats.GeneratedTokens > len(full.ids) {
				t.Errorf("GeneratedTokens %d, emitted %d", r.stats.GeneratedTokens, len(r.ids))
			}
		})
	}

	// Complete agrees.
	res, err := c.Complete(context.Background(), storiesPrompt, append(greedy(40), llama.WithStop("Lily"))...)
	if err != nil || res.Text != ", there was a little girl named " || res.StopReason != llama.StopString {
		t.Errorf("Complete with stop: %q %v %v", res.Text, res.StopReason, err)
	}
}

func TestMaxTokens(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	for _, n := range []int{1, 2, 5, 17, 64} {
		r := mustGenerate(t, c, storiesPrompt, greedy(n)...)
		if len(r.ids) != n || r.stats.GeneratedTokens != n || r.stats.StopReason != llama.StopMaxTokens {
			t.Errorf("WithMaxTokens(%d): %d tokens, stats %+v", n, len(r.ids), r.stats)
		}
	}
	for _, n := range []int{0, -2} {
		r := generate(t, c, context.Background(), storiesPrompt, greedy(n)...)
		if !errors.Is(r.err, llama.ErrInvalidArgument) || len(r.tokens) != 0 {
			t.Errorf("WithMaxTokens(%d): %d tokens, err %v", n, len(r.tokens), r.err)
		}
	}
}

// TestEOG: stories260K separates its stories with BOS, not EOS, so greedy
// decoding never ends by itself (from "Once upon a time" it runs to a full
// 2048-token context). A grammar makes it end: once the grammar is complete
// only end-of-generation tokens are allowed.
func TestEOG(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	r := mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(100),
		llama.WithSampling(llama.WithGreedy(), llama.WithGrammar(`root ::= ", there was a little"`, "")))
	if r.text != ", there was a little" || r.stats.StopReason != llama.StopEOG {
		t.Errorf("grammar: %q %v", r.text, r.stats.StopReason)
	}
	if r.stats.GeneratedTokens != len(r.ids) || slices.Contains(r.ids, m.EOS()) {
		t.Errorf("the EOS token was counted or emitted: %v, stats %+v", r.ids, r.stats)
	}

	// Greedy decoding goes from one story to the next through BOS, a control
	// token: it is streamed with empty Text and does not end the generation.
	r = mustGenerate(t, c, storiesPrompt, greedy(400)...)
	i := slices.Index(r.ids, m.BOS())
	if i < 0 || r.stats.StopReason != llama.StopMaxTokens || slices.Contains(r.ids, m.EOS()) {
		t.Fatalf("greedy 400 tokens: BOS at %d, %v", i, r.stats.StopReason)
	}
	if r.tokens[i].Text != "" || !strings.HasPrefix(r.tokens[i+1].Text, " Once") {
		t.Errorf("BOS streamed as %q, then %q", r.tokens[i].Text, r.tokens[i+1].Text)
	}

	// A huge bias on EOS ends it at once, with no tokens.
	bias := map[llama.TokenID]float32{m.EOS(): 100}
	r = mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(100), llama.WithSampling(llama.WithGreedy(), llama.WithLogitBias(bias)))
	if r.text != "" || len(r.tokens) != 0 || r.stats.StopReason != llama.StopEOG {
		t.Errorf("EOS bias: %q %d tokens %v", r.text, len(r.tokens), r.stats.StopReason)
	}
	// WithIgnoreEOS bans it again, without touching the caller's map.
	r = mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(20),
		llama.WithSampling(llama.WithGreedy(), llama.WithLogitBias(bias), llama.WithIgnoreEOS()))
	if len(r.ids) != 20 || r.stats.StopReason != llama.StopMaxTokens || slices.Contains(r.ids, m.EOS()) {
		t.Errorf("WithIgnoreEOS: %d tokens %v", len(r.ids), r.stats.StopReason)
	}
	if len(bias) != 1 || bias[m.EOS()] != 100 {
		t.Errorf("WithIgnoreEOS changed the caller's logit bias map: %v", bias)
	}

	// Held-back text is released at EOG in a final NullToken step: the
	// grammar ends on the prefix of a stop string.
	r = mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(100), llama.WithStop("little boy"),
		llama.WithSampling(llama.WithGreedy(), llama.WithGrammar(`root ::= ", there was a little"`, "")))
	if r.text != ", there was a little" || r.stats.StopReason != llama.StopEOG {
		t.Errorf("grammar with stop: %q %v", r.text, r.stats.StopReason)
	}
	if last := r.tokens[len(r.tokens)-1]; last.ID != llama.NullToken || !strings.HasSuffix(last.Text, "little") {
		t.Errorf("last step %+v, want NullToken releasing %q", last, "little")
	}
}

// textBoundariesOK reports whether the Texts of the tokens split their
// concatenation only between UTF-8 characters (invalid bytes count as
// characters of their own).
func textBoundariesOK(t *testing.T, tokens []llama.Token) {
	t.Helper()
	var full strings.Builder
	var cuts []int
	for _, tok := range tokens {
		full.WriteString(tok.Text)
		cuts = append(cuts, full.Len())
	}
	s := full.String()
	starts := map[int]bool{len(s): true}
	for i := 0; i < len(s); {
		starts[i] = true
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	for i, cut := range cuts {
		if !starts[cut] {
			t.Errorf("token %d (%+v) ends inside a UTF-8 character", i, tokens[i])
		}
	}
}

// TestGenerateUTF8 samples gibberish from the random Llama-2 model, whose
// vocabulary has byte tokens.
func TestGenerateUTF8(t *testing.T) {
	m := loadModel(t, "llama-2-tiny-random.gguf")
	c := newContext(t, m)
	bos := m.BOS()
	check := func(t *testing.T, r run) {
		// The text equals the detokenized ids. removeSpecial drops the
		// leading BOS and keeps the leading space of the first token, as in
		// a continuation.
		want, err := m.Detokenize(append([]llama.TokenID{bos}, r.ids...), true, false)
		if err != nil {
			t.Fatal(err)
		}
		if r.text != want {
			t.Errorf("text %q\nwant %q", r.text, want)
		}
		textBoundariesOK(t, r.tokens)
	}

	t.Run("unconstrained", func(t *testing.T) {
		r := mustGenerate(t, c, "Hello", llama.WithMaxTokens(300),
			llama.WithSampling(llama.WithSeed(42), llama.WithTemperature(1.5), llama.WithTopK(0), llama.WithTopP(1), llama.WithMinP(0)))
		if len(r.ids) != 300 {
			t.Fatalf("%d tokens", len(r.ids))
		}
		check(t, r)
	})

	// A grammar of emoji, which the vocabulary spells with byte tokens:
	// each emoji comes in four tokens, the first three with empty Text.
	t.Run("bytes", func(t *testing.T) {
		r := mustGenerate(t, c, "Hello", llama.WithMaxTokens(100),
			llama.WithSampling(llama.WithSeed(1), llama.WithGrammar(`root ::= [😀-🙏]{6} "a"`, "")))
		check(t, r)
		if r.stats.StopReason != llama.StopEOG || utf8.RuneCountInString(r.text) != 7 || !utf8.ValidString(r.text) {
			t.Fatalf("text %q, %v", r.text, r.stats.StopReason)
		}
		held := 0
		for _, tok := range r.tokens {
			if !utf8.ValidString(tok.Text) {
				t.Errorf("token %+v: invalid UTF-8", tok)
			}
			if tok.Text == "" {
				held++
			}
			if txt, _ := m.TokenText(tok.ID); tok.Text == "" && !strings.HasPrefix(txt, "<0x") {
				t.Errorf("token %d %q held back", tok.ID, txt)
			}
		}
		if held < 6 {
			t.Errorf("%d tokens held back, want 3 per emoji: %+v", held, r.tokens)
		}

		// A stop string on the third emoji: the text is the first two.
		third := string([]rune(r.text)[2])
		if strings.Contains(r.text[:8], third) {
			return
		}
		s := mustGenerate(t, c, "Hello", llama.WithMaxTokens(100), llama.WithStop(third),
			llama.WithSampling(llama.WithSeed(1), llama.WithGrammar(`root ::= [😀-🙏]{6} "a"`, "")))
		if s.text != r.text[:8] || s.stats.StopReason != llama.StopString {
			t.Errorf("stop at %q: %q %v, want %q", third, s.text, s.stats.StopReason, r.text[:8])
		}
	})
}

// TestPrefixReuse: a prompt that extends the cached one decodes only the
// new part and generates what a fresh context does.
func TestPrefixReuse(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	first := mustGenerate(t, c, storiesPrompt, greedy(20)...)
	if first.stats.CachedTokens != 0 {
		t.Errorf("fresh context cached %d tokens", first.stats.CachedTokens)
	}
	prompt2 := storiesPrompt + first.text + " One day"
	second := mustGenerate(t, c, prompt2, greedy(20)...)
	ptoks, _ := m.Tokenize(storiesPrompt, llama.AddSpecial)
	if second.stats.CachedTokens < len(ptoks) || second.stats.CachedTokens >= second.stats.PromptTokens {
		t.Errorf("CachedTokens %d, want %d..%d", second.stats.CachedTokens, len(ptoks), second.stats.PromptTokens-1)
	}
	fresh := mustGenerate(t, newContext(t, m), prompt2, greedy(20)...)
	if fresh.stats.CachedTokens != 0 {
		t.Errorf("fresh context cached %d tokens", fresh.stats.CachedTokens)
	}
	if second.text != fresh.text {
		t.Errorf("cached run %q, fresh run %q", second.text, fresh.text)
	}

	// A shorter prompt reuses its prefix too, and then the old one again.
	third := mustGenerate(t, c, storiesPrompt, greedy(20)...)
	if third.text != first.text || third.stats.CachedTokens != len(ptoks)-1 {
		t.Errorf("back to the first prompt: %q cached %d", third.text, third.stats.CachedTokens)
	}

	// A Decode in the sequence invalidates what Generate knows: the next
	// Generate starts over and still gives the same text.
	b, _ := llama.NewBatch(1, 1)
	defer b.Close()
	_, hi, err := c.PositionRange(0)
	if err != nil || hi < 5 {
		t.Fatalf("PositionRange: %d, %v", hi, err)
	}
	b.Add(1, hi+1, true)
	if err := c.Decode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	after := mustGenerate(t, c, storiesPrompt, greedy(20)...)
	if after.text != first.text || after.stats.CachedTokens != 0 {
		t.Errorf("after a Decode: %q cached %d", after.text, after.stats.CachedTokens)
	}
	// RemoveTokens of a suffix keeps the prefix usable.
	if ok, err := c.RemoveTokens(0, 3, -1); !ok || err != nil {
		t.Fatalf("RemoveTokens: %v %v", ok, err)
	}
	after = mustGenerate(t, c, storiesPrompt, greedy(20)...)
	if after.text != first.text || after.stats.CachedTokens != 3 {
		t.Errorf("after RemoveTokens: %q cached %d", after.text, after.stats.CachedTokens)
	}
}

func TestSequences(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithSequences(2))
	a := mustGenerate(t, c, storiesPrompt, greedy(20)...)
	// Context.Generate took sequence 0, the least recently used: a new
	// Sequence gets the other, empty.
	q, err := c.NewSequence()
	if err != nil {
		t.Fatal(err)
	}
	if toks, ok := q.Tokens(); q.ID() != 1 || !ok || len(toks) != 0 {
		t.Errorf("NewSequence: id %d, tokens %v %v; want 1, empty", q.ID(), toks, ok)
	}
	b := collect(t, q.Generate(context.Background(), storiesPrompt, greedy(20)...), &run{})
	if b.err != nil || a.text != b.text {
		t.Errorf("sequence 1: %q %v, sequence 0: %q", b.text, b.err, a.text)
	}
	r, err := q.Complete(context.Background(), storiesPrompt, greedy(20)...)
	if err != nil || r.Text != a.text || r.CachedTokens != 4 {
		t.Errorf("sequence 1 again: %q cached %d %v; want %q cached 4", r.Text, r.CachedTokens, err, a.text)
	}
	// The second takes sequence 0, whose cache it empties; there is no third.
	q2, err := c.NewSequence()
	if err != nil || q2.ID() != 0 {
		t.Fatalf("second NewSequence: %v %v", q2, err)
	}
	if _, hi, _ := c.PositionRange(0); hi != -1 {
		t.Errorf("a new Sequence holds positions up to %d", hi)
	}
	if _, err := c.NewSequence(); !errors.Is(err, llama.ErrNoSequence) {
		t.Errorf("third NewSequence: %v, want ErrNoSequence", err)
	}
	// With every sequence held, Context.Generate waits for one.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if r := generate(t, c, ctx, storiesPrompt, greedy(5)...); !errors.Is(r.err, context.DeadlineExceeded) || len(r.tokens) != 0 {
		t.Errorf("Generate with no free sequence: %d tokens, %v", len(r.tokens), r.err)
	}
	// Close empties the sequence and gives it back.
	for _, s := range []*llama.Sequence{q, q2} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, hi, _ := c.PositionRange(s.ID()); hi != -1 {
			t.Errorf("closed sequence %d holds positions up to %d", s.ID(), hi)
		}
		if r := collect(t, s.Generate(context.Background(), storiesPrompt, greedy(5)...), &run{}); !errors.Is(r.err, llama.ErrClosed) {
			t.Errorf("Generate on a closed Sequence: %v", r.err)
		}
		if err := s.Clear(); !errors.Is(err, llama.ErrClosed) {
			t.Errorf("Clear on a closed Sequence: %v", err)
		}
	}
	if r := mustGenerate(t, c, storiesPrompt, greedy(20)...); r.text != a.text {
		t.Errorf("after Close: %q, want %q", r.text, a.text)
	}
}

func TestGenerateBadPrompt(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	for _, tt := range []struct {
		prompt []llama.TokenID
		err    error
	}{
		{nil, llama.ErrInvalidArgument},
		{[]llama.TokenID{}, llama.ErrInvalidArgument},
		{[]llama.TokenID{1, 512}, llama.ErrInvalidToken},
		{[]llama.TokenID{-1}, llama.ErrInvalidToken},
	} {
		n := 0
		var got error
		for _, err := range c.GenerateTokens(context.Background(), tt.prompt, greedy(5)...) {
			n++
			got = err
		}
		if n != 1 || !errors.Is(got, tt.err) {
			t.Errorf("GenerateTokens(%v): %d steps, %v; want %v", tt.prompt, n, got, tt.err)
		}
	}
	// An empty text prompt without BOS is empty too.
	r := generate(t, c, context.Background(), "", append(greedy(5), llama.WithTokenizeFlags(0))...)
	if !errors.Is(r.err, llama.ErrInvalidArgument) {
		t.Errorf("empty prompt: %v", r.err)
	}
	// With BOS it is a prompt of one token.
	r = mustGenerate(t, c, "", greedy(5)...)
	if len(r.ids) != 5 || r.stats.PromptTokens != 1 {
		t.Errorf("BOS-only prompt: %d tokens, %+v", len(r.ids), r.stats)
	}
	// The tokens GenerateTokens gets are those Generate makes.
	ids, _ := m.Tokenize(storiesPrompt, llama.AddSpecial)
	var b strings.Builder
	for tok, err := range c.GenerateTokens(context.Background(), ids, greedy(20)...) {
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(tok.Text)
	}
	if want := mustGenerate(t, c, storiesPrompt, greedy(20)...).text; b.String() != want {
		t.Errorf("GenerateTokens %q, Generate %q", b.String(), want)
	}
}

func TestBreakAndReuse(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	var st llama.Stats
	n := 0
	for _, err := range c.Generate(context.Background(), storiesPrompt, append(greedy(40), llama.WithStats(&st))...) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if st.StopReason != llama.StopBreak || st.GeneratedTokens != 3 {
		t.Errorf("after break: %+v", st)
	}
	r := mustGenerate(t, c, storiesPrompt, greedy(40)...)
	if !strings.HasPrefix(r.text, storiesPrefix) {
		t.Errorf("after break: %q", r.text)
	}
}

func TestCancelGeneration(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var st llama.Stats
	n := 0
	var cancelled time.Time
	var got []error
	for _, err := range c.Generate(ctx, storiesPrompt, llama.WithSampling(llama.WithGreedy()), llama.WithStats(&st)) {
		if err != nil {
			got = append(got, err)
			continue
		}
		if n++; n == 5 {
			cancelled = time.Now()
			cancel()
		}
	}
	if d := time.Since(cancelled); d > 2*time.Second {
		t.Errorf("generation went on %v after cancel", d)
	}
	if n != 5 || len(got) != 1 || !errors.Is(got[0], context.Canceled) {
		t.Errorf("%d tokens, errors %v; want 5 tokens and context.Canceled", n, got)
	}
	if st.StopReason != llama.StopCancelled || st.GeneratedTokens != 5 {
		t.Errorf("stats %+v", st)
	}
	// The context is still usable.
	if r := mustGenerate(t, c, storiesPrompt, greedy(20)...); !strings.HasPrefix(storiesPrefix, r.text[:20]) {
		t.Errorf("after cancel: %q", r.text)
	}

	// A context done before the start yields its error at once.
	r := generate(t, c, ctx, storiesPrompt, greedy(5)...)
	if len(r.tokens) != 0 || !errors.Is(r.err, context.Canceled) || r.stats.StopReason != llama.StopCancelled {
		t.Errorf("cancelled before: %d tokens, %v, %v", len(r.tokens), r.err, r.stats.StopReason)
	}
}

// TestDecodeTimeout: a deadline that passes while a long prompt is decoded
// aborts the computation through llama.cpp's abort callback.
func TestDecodeTimeout(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	// ggml checks the abort flag between graph nodes, and one attention
	// node over a whole large micro-batch takes long: keep them small.
	c := newContext(t, m, llama.WithContextSize(2048), llama.WithBatchSize(2048), llama.WithUBatchSize(128))
	prompt, err := m.Tokenize(strings.Repeat("Once upon a time there was a little girl. ", 120), llama.AddSpecial)
	if err != nil {
		t.Fatal(err)
	}
	prompt = prompt[:min(len(prompt), 1000)]

	// Decode: one llama_decode call for the whole prompt, which takes about
	// a second on one thread.
	b, _ := llama.NewBatch(len(prompt), 1)
	defer b.Close()
	for i, tok := range prompt {
		b.Add(tok, i, i == len(prompt)-1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Decode(ctx, b)
	elapsed := time.Since(start)
	t.Logf("Decode of %d tokens aborted after %v", len(prompt), elapsed)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Decode: %v, want DeadlineExceeded", err)
	}
	if elapsed > 500*time.Millisecond {
		t.Errorf("abort took %v", elapsed)
	}
	// Finished micro-batches stay in the cache, the rest does not.
	if _, hi, _ := c.PositionRange(0); hi >= len(prompt)-1 || (hi+1)%128 != 0 {
		t.Errorf("after the abort the cache holds positions up to %d", hi)
	}
	if _, err := c.Logits(-1); !errors.Is(err, llama.ErrNoLogits) {
		t.Errorf("Logits after an aborted decode: %v", err)
	}

	// Generate: the error comes before any token.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	var st llama.Stats
	n := 0
	var gerr error
	for _, err := range c.GenerateTokens(ctx, prompt, append(greedy(5), llama.WithStats(&st))...) {
		if err != nil {
			gerr = err
		} else {
			n++
		}
	}
	elapsed = time.Since(start)
	if n != 0 || !errors.Is(gerr, context.DeadlineExceeded) || st.StopReason != llama.StopCancelled {
		t.Errorf("Generate: %d tokens, %v, %v", n, gerr, st.StopReason)
	}
	if elapsed > 500*time.Millisecond {
		t.Errorf("Generate abort took %v", elapsed)
	}

	// The context works afterwards.
	if err := c.ClearMemory(); err != nil {
		t.Fatal(err)
	}
	if r := mustGenerate(t, c, storiesPrompt, greedy(20)...); !strings.HasPrefix(storiesPrefix, r.text[:20]) {
		t.Errorf("after abort: %q", r.text)
	}
}

func TestContextFull(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	// llama.cpp rounds n_ctx up to a multiple of 256.
	c := newContext(t, m, llama.WithContextSize(64))
	n := c.SequenceContextSize()
	if n < 64 || n > 512 {
		t.Fatalf("SequenceContextSize %d", n)
	}

	t.Run("prompt", func(t *testing.T) {
		long := strings.Repeat("Once upon a time there was a girl. ", n/5)
		ids, _ := m.Tokenize(long, llama.AddSpecial)
		if len(ids) <= n {
			t.Fatalf("prompt of %d tokens for a context of %d", len(ids), n)
		}
		r := generate(t, c, context.Background(), long, greedy(10)...)
		if len(r.tokens) != 0 || !errors.Is(r.err, llama.ErrContextFull) {
			t.Errorf("%d tokens, err %v; want ErrContextFull before any token", len(r.tokens), r.err)
		}
		if r.stats.StopReason != llama.StopContextFull {
			t.Errorf("StopReason %v, want context_full", r.stats.StopReason)
		}
		// A prompt of exactly n tokens leaves no room to generate either.
		rr := 0
		var err2 error
		for _, err := range c.GenerateTokens(context.Background(), ids[:n], greedy(1)...) {
			rr++
			err2 = err
		}
		if rr != 1 || !errors.Is(err2, llama.ErrContextFull) {
			t.Errorf("prompt of n_ctx tokens: %v", err2)
		}
		if _, err := c.Complete(context.Background(), long, greedy(10)...); !errors.Is(err, llama.ErrContextFull) {
			t.Errorf("Complete: %v", err)
		}
	})

	t.Run("generation", func(t *testing.T) {
		r := generate(t, c, context.Background(), storiesPrompt, llama.WithSampling(llama.WithGreedy()))
		ptoks, _ := m.Tokenize(storiesPrompt, llama.AddSpecial)
		if !errors.Is(r.err, llama.ErrContextFull) || r.stats.StopReason != llama.StopContextFull {
			t.Fatalf("err %v, reason %v; want ErrContextFull", r.err, r.stats.StopReason)
		}
		if len(r.ids) != n-len(ptoks) {
			t.Errorf("%d tokens before the context was full, want %d", len(r.ids), n-len(ptoks))
		}
		// Complete reports a full context as a stop reason, not an error.
		res, err := c.Complete(context.Background(), storiesPrompt, llama.WithSampling(llama.WithGreedy()))
		if err != nil || res.StopReason != llama.StopContextFull || res.Text != r.text || len(res.Tokens) != len(r.ids) {
			t.Errorf("Complete: %v %v %d tokens", err, res.StopReason, len(res.Tokens))
		}
	})
}

func TestComplete(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	res, err := c.Complete(context.Background(), storiesPrompt, greedy(30)...)
	if err != nil {
		t.Fatal(err)
	}
	r := mustGenerate(t, newContext(t, m), storiesPrompt, greedy(30)...)
	if res.Text != r.text || !slices.Equal(res.Tokens, r.ids) {
		t.Errorf("Complete %q, Generate %q", res.Text, r.text)
	}
	s := res.Stats
	if s.PromptTokens != 5 || s.CachedTokens != 0 || s.GeneratedTokens != 30 || s.StopReason != llama.StopMaxTokens {
		t.Errorf("stats %+v", s)
	}
	if s.TimeToFirst <= 0 || s.Generation <= 0 || s.PromptEval <= 0 || s.TokensPerSecond() <= 0 || s.PromptTokensPerSecond() <= 0 {
		t.Errorf("timings %+v, %v tok/s, %v prompt tok/s", s, s.TokensPerSecond(), s.PromptTokensPerSecond())
	}
	if s.StopReason.String() != "max_tokens" {
		t.Errorf("StopReason.String() = %q", s.StopReason.String())
	}
	if p := c.Perf(); p.PromptTokens == 0 || p.EvalTokens < 29 {
		t.Errorf("Perf %+v", p)
	}
	// Errors before any token are returned.
	if _, err := c.Complete(context.Background(), storiesPrompt, greedy(0)...); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Complete with max 0: %v", err)
	}
}

// TestLogprobs: with WithLogprobs each token carries its log-probability
// under the raw logits and the most likely alternatives; under greedy
// sampling the token is the most likely one.
func TestLogprobs(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	r := mustGenerate(t, c, storiesPrompt, append(greedy(20), llama.WithLogprobs(3))...)
	plain := mustGenerate(t, c, storiesPrompt, greedy(20)...)
	if r.text != plain.text {
		t.Errorf("with logprobs %q, without %q", r.text, plain.text)
	}
	for _, tok := range r.tokens {
		if tok.ID == llama.NullToken {
			continue
		}
		top := tok.TopLogprobs
		if len(top) != 3 || top[0].ID != tok.ID || math.Abs(top[0].Logprob-tok.Logprob) > 1e-9 || tok.Logprob > 0 {
			t.Fatalf("token %d: logprob %v, top %+v", tok.ID, tok.Logprob, top)
		}
		var p float64
		for i, a := range top {
			p += math.Exp(a.Logprob)
			if i > 0 && a.Logprob > top[i-1].Logprob {
				t.Errorf("top not sorted: %+v", top)
			}
		}
		if p > 1+1e-9 {
			t.Errorf("top probabilities sum to %v", p)
		}
	}
	for _, tok := range plain.tokens {
		if tok.Logprob != 0 || tok.TopLogprobs != nil {
			t.Fatalf("logprobs without WithLogprobs: %+v", tok)
		}
	}
	if r := generate(t, c, context.Background(), storiesPrompt, append(greedy(5), llama.WithLogprobs(-1))...); !errors.Is(r.err, llama.ErrInvalidArgument) {
		t.Errorf("WithLogprobs(-1): %v", r.err)
	}
}
