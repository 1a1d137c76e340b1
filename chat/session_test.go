package chat

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
)

// reply runs a turn and returns the reply and the chunks' thinking text.
func reply(t testing.TB, s *Session, msg string) (answer, thinking string) {
	t.Helper()
	for ch, err := range s.Send(context.Background(), msg) {
		if err != nil {
			t.Fatalf("Send(%q): %v", msg, err)
		}
		if ch.Thinking {
			thinking += ch.Text
		} else {
			answer += ch.Text
		}
	}
	return answer, thinking
}

func storiesSession(t testing.TB, c *llama.Context, opts ...Option) *Session {
	t.Helper()
	tmpl, err := Builtin("chatml") // stories260K has no template of its own
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithSystem("You tell stories."), WithSampling(llama.WithGreedy()), WithMaxTokens(16)}, opts...)
	s, err := NewSession(newSeq(t, c), tmpl, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// kvLen is the number of positions the sequence holds in the KV cache.
func kvLen(t testing.TB, c *llama.Context) int {
	t.Helper()
	lo, hi, err := c.PositionRange(0)
	if err != nil {
		t.Fatal(err)
	}
	if hi >= 0 && lo != 0 {
		t.Fatalf("KV cache holds positions %d..%d", lo, hi)
	}
	return hi + 1
}

// TestPrefixReuse proves that each turn evaluates only the tokens that
// are new since the previous turn: the new message, the generation prompt
// and, when the previous reply ended on its token limit, that reply's
// last token (sampled but never decoded).
func TestPrefixReuse(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	s := storiesSession(t, c)
	tmpl := s.tmpl
	questions := []string{"Once upon a time", "Tell me more about the girl", "What happened next?", "How did it end?"}
	prevText := ""
	prevStream, prevKV := 0, 0
	for i, q := range questions {
		// The text this turn adds, rendered independently.
		msgs := append(s.messages(s.History()), Message{Role: "user", Content: q})
		full, err := tmpl.Render(msgs, RenderOptions{AddGenerationPrompt: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(full, prevText) {
			t.Fatalf("turn %d: the rendering of the earlier turns changed:\n%q\n%q", i+1, prevText, full)
		}
		delta := full[len(prevText):]

		c.ResetPerf()
		answer, _ := reply(t, s, q)
		st := s.Stats()
		perf := c.Perf()
		evaluated := perf.PromptTokens + perf.EvalTokens // every token decoded this turn

		uncached := st.PromptTokens - st.CachedTokens
		t.Logf("turn %d: prompt %d, cached %d, new %d, generated %d (%v), decoded %d; %q",
			i+1, st.PromptTokens, st.CachedTokens, st.NewTokens, st.GeneratedTokens, st.StopReason, evaluated, answer)
		if i == 0 {
			if st.CachedTokens != 0 || st.NewTokens != st.PromptTokens {
				t.Errorf("turn 1: cached %d, new %d of %d", st.CachedTokens, st.NewTokens, st.PromptTokens)
			}
		} else {
			undecoded := prevStream - prevKV // the last reply's final token
			if undecoded < 0 || undecoded > 1 {
				t.Errorf("turn %d: stream %d tokens, KV cache %d", i+1, prevStream, prevKV)
			}
			if st.CachedTokens != prevKV {
				t.Errorf("turn %d: %d cached tokens, the KV cache held %d", i+1, st.CachedTokens, prevKV)
			}
			if uncached != st.NewTokens+undecoded {
				t.Errorf("turn %d: evaluated %d prompt tokens, want %d new + %d undecoded", i+1, uncached, st.NewTokens, undecoded)
			}
			want, err := m.Tokenize(delta, llama.ParseSpecial)
			if err != nil {
				t.Fatal(err)
			}
			if p, _ := m.TokenToPiece(want[0], false); p == " " && !strings.HasPrefix(delta, " ") {
				want = want[1:] // SentencePiece's space prefix, which the session drops
			}
			if st.NewTokens != len(want) {
				t.Errorf("turn %d: %d new tokens, the new text %q is %d tokens", i+1, st.NewTokens, delta, len(want))
			}
		}
		// llama.cpp's own counters: the uncached prompt plus each
		// generated token but the last.
		if want := uncached + st.GeneratedTokens - 1; evaluated != want {
			t.Errorf("turn %d: llama.cpp decoded %d tokens, want %d", i+1, evaluated, want)
		}
		prevText = full + answer
		prevStream, prevKV = len(s.tokens), kvLen(t, c)
	}
	// The token stream stands for the rendered conversation.
	text, err := m.Detokenize(s.tokens, true, true)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimPrefix(text, " ") != s.text || s.text != prevText {
		t.Errorf("token stream detokenizes to\n%q\nrendered text\n%q", text, s.text)
	}
}

// TestSaveLoad saves a session after one turn, and checks that a fresh
// context restored from the file continues exactly as the original does,
// without evaluating the first turn again; and that another model refuses
// the file.
func TestSaveLoad(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	path := filepath.Join(t.TempDir(), "session.llgo")

	c1 := newContext(t, m)
	s1 := storiesSession(t, c1)
	reply(t, s1, "Once upon a time")
	if err := s1.Save(path); err != nil {
		t.Fatal(err)
	}
	want, _ := reply(t, s1, "What happened next?")
	wantStats := s1.Stats()

	c2 := newContext(t, m)
	s2 := storiesSession(t, c2, WithSystem("another system prompt"))
	if err := s2.Load(path); err != nil {
		t.Fatal(err)
	}
	if s2.System() != "You tell stories." || len(s2.History()) != 2 {
		t.Fatalf("loaded system %q, history %v", s2.System(), s2.History())
	}
	c2.ResetPerf()
	got, _ := reply(t, s2, "What happened next?")
	gotStats := s2.Stats()
	if got != want {
		t.Errorf("restored session replied %q, the original %q", got, want)
	}
	if gotStats.PromptTokens != wantStats.PromptTokens || gotStats.CachedTokens != wantStats.CachedTokens || gotStats.CachedTokens == 0 {
		t.Errorf("restored turn: prompt %d cached %d, original: prompt %d cached %d",
			gotStats.PromptTokens, gotStats.CachedTokens, wantStats.PromptTokens, wantStats.CachedTokens)
	}
	if perf := c2.Perf(); perf.PromptTokens+perf.EvalTokens != gotStats.PromptTokens-gotStats.CachedTokens+gotStats.GeneratedTokens-1 {
		t.Errorf("restored turn decoded %d tokens", perf.PromptTokens+perf.EvalTokens)
	}
	h1, h2 := s1.History(), s2.History()
	if len(h1) != len(h2) {
		t.Fatalf("histories differ: %v / %v", h1, h2)
	}
	for i := range h1 {
		if h1[i].Content != h2[i].Content || h1[i].Role != h2[i].Role {
			t.Errorf("message %d differs: %v / %v", i, h1[i], h2[i])
		}
	}

	// Another model refuses the file, and the session is unchanged.
	other := loadModel(t, "llama-2-tiny-random.gguf")
	c3 := newContext(t, other)
	tmpl, _ := Builtin("chatml")
	s3, err := NewSession(newSeq(t, c3), tmpl, WithSystem("kept"))
	if err != nil {
		t.Fatal(err)
	}
	err = s3.Load(path)
	if !errors.Is(err, ErrModelMismatch) || !errors.Is(err, llama.ErrStateMismatch) {
		t.Fatalf("Load into another model: %v, want ErrModelMismatch", err)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), m.Description()) {
		t.Errorf("error does not name the saving model: %v", err)
	}
	if s3.System() != "kept" || len(s3.History()) != 0 {
		t.Error("a refused Load changed the session")
	}

	// Corrupt files are refused.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"truncated": data[:len(data)-10],
		"flipped":   flip(data, len(data)-5),
		"not ours":  []byte("hello"),
	} {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, bad, 0o644)
		if err := s2.Load(p); !errors.Is(err, ErrBadSessionFile) {
			t.Errorf("%s file: %v, want ErrBadSessionFile", name, err)
		}
	}
}

// TestContextShift runs a long conversation on a small context: under
// ShiftContext it keeps going by dropping old turns; under FailWhenFull
// it stops with ErrContextFull and leaves the history as it was.
func TestContextShift(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	questions := []string{"Once upon a time there was a girl", "She had a dog", "They went to the park", "It started to rain", "They ran home", "Mom made soup", "They were happy", "The end of the day came"}

	c := newContext(t, m, llama.WithContextSize(256))
	s := storiesSession(t, c, WithContextPolicy(ShiftContext(0)), WithMaxTokens(24))
	dropped := 0
	for i := 0; i < 3; i++ {
		for _, q := range questions {
			reply(t, s, q)
			st := s.Stats()
			dropped += st.Dropped
			if st.PromptTokens+st.GeneratedTokens > c.SequenceContextSize() {
				t.Fatalf("turn used %d+%d tokens of %d", st.PromptTokens, st.GeneratedTokens, c.SequenceContextSize())
			}
		}
	}
	h := s.History()
	if dropped == 0 || len(h) >= 2*3*len(questions) {
		t.Fatalf("no turn was dropped (history %d messages)", len(h))
	}
	if h[0].Role != "user" || h[len(h)-1].Role != "assistant" || h[len(h)-2].Content != questions[len(questions)-1] {
		t.Errorf("history after shifts: %v", h)
	}
	t.Logf("dropped %d messages; %d left", dropped, len(h))

	c2 := newContext(t, m, llama.WithContextSize(256))
	s2 := storiesSession(t, c2, WithMaxTokens(24))
	var err error
	for i := 0; err == nil && i < 50; i++ {
		before := s2.History()
		for _, e := range s2.Send(context.Background(), questions[i%len(questions)]) {
			if e != nil {
				err = e
			}
		}
		if err != nil && len(s2.History()) != len(before) {
			t.Error("a failed turn changed the history")
		}
	}
	if !errors.Is(err, llama.ErrContextFull) {
		t.Fatalf("FailWhenFull: %v, want ErrContextFull", err)
	}
}

// forced makes the sampler produce exactly text.
func forced(text string) Option {
	var b strings.Builder
	b.WriteString(`root ::= "`)
	for _, r := range text {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteString(`"`)
	return WithSampling(llama.WithGreedy(), llama.WithGrammar(b.String(), "root"))
}

// TestThinking streams a DeepSeek-R1-style reply, whose generation prompt
// opens the thinking, and a Qwen3-style one that opens it itself.
func TestThinking(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	r1, err := ParseTemplate(string(mustRead(t, "testdata/deepseek-r1.jinja")))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		tmpl     *Template
		out      string
		think    string
		answer   string
		hide     bool
		opened   bool
		override bool
	}{
		{"prompt opens thinking", r1, "Let me see.</think>\n\nFour.", "Let me see.", "\n\nFour.", false, true, false},
		{"hidden", r1, "Hmm.</think>Yes.", "", "Yes.", true, true, false},
		{"model opens thinking", nil, "<think>Hmm, a dog.</think>A dog!", "Hmm, a dog.", "A dog!", false, false, false},
		{"custom tags", nil, "[R]x[/R]y", "x", "y", false, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := newContext(t, m)
			tmpl := c.tmpl
			if tmpl == nil {
				tmpl, _ = Builtin("chatml")
			}
			opts := []Option{forced(c.out), WithMaxTokens(64)}
			if c.hide {
				opts = append(opts, WithHiddenThinking())
			}
			if c.override {
				opts = append(opts, WithThinkingTags("[R]", "[/R]"))
			}
			s, err := NewSession(newSeq(t, ctx), tmpl, opts...)
			if err != nil {
				t.Fatal(err)
			}
			answer, thinking := reply(t, s, "What is 2+2?")
			if answer != c.answer || thinking != c.think {
				t.Errorf("answer %q thinking %q, want %q %q", answer, thinking, c.answer, c.think)
			}
			if got := s.Stats().ThinkingOpened; got != c.opened {
				t.Errorf("ThinkingOpened = %v", got)
			}
			if h := s.History(); h[len(h)-1].Content != c.out {
				t.Errorf("history keeps %q, want the reply as generated %q", h[len(h)-1].Content, c.out)
			}
		})
	}
}

// TestStopString ends a reply on the template's end-of-turn marker, which
// stories260K has no token for, and continues the conversation from the
// text before it.
func TestStopString(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	s := storiesSession(t, c, forced("Hi there<|im_end|>\nmore"), WithMaxTokens(40))
	if !strings.Contains(strings.Join(s.StopStrings(), " "), "<|im_end|>") {
		t.Fatalf("stop strings %q lack <|im_end|>", s.StopStrings())
	}
	answer, _ := reply(t, s, "Hello")
	if answer != "Hi there" || s.Stats().StopReason != llama.StopString {
		t.Fatalf("reply %q (%v)", answer, s.Stats().StopReason)
	}
	// The stream holds the reply's tokens as far as their text is the
	// reply's: a stop string may begin inside a token.
	p1 := s.Stats().PromptTokens
	if got := s.text[strings.LastIndex(s.text, "assistant\n")+len("assistant\n"):]; !strings.HasPrefix("Hi there", got) || len(got) < len("Hi th") {
		t.Errorf("stream holds the reply %q", got)
	}
	reply(t, s, "Again")
	if st := s.Stats(); st.CachedTokens < p1 {
		t.Errorf("second turn reused %d tokens, the first prompt was %d", st.CachedTokens, p1)
	}
}

// TestBOS checks that a template that writes BOS itself does not get a
// second one from the tokenizer.
func TestBOS(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	llama3 := readTemplate(t, "llama3") // writes bos_token
	s, err := NewSession(newSeq(t, c), llama3, WithSampling(llama.WithGreedy()), WithMaxTokens(4))
	if err != nil {
		t.Fatal(err)
	}
	reply(t, s, "Hi")
	bos := m.BOS()
	if s.tokens[0] != bos || s.tokens[1] == bos {
		t.Errorf("prompt starts %v, want one BOS %d", s.tokens[:2], bos)
	}
	chatml, _ := Builtin("chatml") // does not
	s2, _ := NewSession(newSeq(t, newContext(t, m)), chatml, WithSampling(llama.WithGreedy()), WithMaxTokens(4))
	reply(t, s2, "Hi")
	if s2.tokens[0] != bos || s2.tokens[1] == bos {
		t.Errorf("prompt starts %v, want one BOS %d", s2.tokens[:2], bos)
	}
}

// TestSessionControl covers breaking off a reply, cancellation, Clear,
// SetSystem and a turn started during another.
func TestSessionControl(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	s := storiesSession(t, c)

	// Breaking off keeps the reply so far.
	var first string
	for ch, err := range s.Send(context.Background(), "Once upon a time") {
		if err != nil {
			t.Fatal(err)
		}
		first = ch.Text
		// A turn during a turn is refused.
		for _, err := range s.Send(context.Background(), "again") {
			if !errors.Is(err, ErrBusy) {
				t.Errorf("nested Send: %v", err)
			}
		}
		if err := s.Clear(); !errors.Is(err, ErrBusy) {
			t.Errorf("Clear during Send: %v", err)
		}
		break
	}
	h := s.History()
	if len(h) != 2 || h[1].Content != first {
		t.Fatalf("history after break: %v", h)
	}

	// A cancelled turn leaves the history alone.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var err error
	for _, e := range s.Send(ctx, "never") {
		err = e
	}
	if !errors.Is(err, context.Canceled) || len(s.History()) != 2 {
		t.Fatalf("cancelled: %v, history %d", err, len(s.History()))
	}

	// Clear keeps the system prompt and its cached tokens.
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	reply(t, s, "Hello")
	if st := s.Stats(); len(s.History()) != 2 || st.CachedTokens == 0 {
		t.Errorf("after Clear: history %d, cached %d", len(s.History()), st.CachedTokens)
	}
	if err := s.SetSystem("Be brief."); err != nil {
		t.Fatal(err)
	}
	reply(t, s, "Hello")
	if s.System() != "Be brief." || !strings.Contains(s.text, "Be brief.") {
		t.Errorf("system prompt not rendered: %q", s.text)
	}
}

func flip(data []byte, i int) []byte {
	b := append([]byte{}, data...)
	b[i] ^= 0xff
	return b
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFromModel reads the Phi-3 template from the vocabulary GGUF, with
// package gguf and through llama.
func TestFromModel(t *testing.T) {
	path := filepath.Join(modelsDir(t), "vocab", "ggml-vocab-phi-3.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	src, ok := f.String("tokenizer.chat_template")
	if !ok || src != string(mustRead(t, "testdata/phi3.jinja")) {
		t.Fatalf("testdata/phi3.jinja is not the template of %s", path)
	}
	m := loadModel(t, "vocab/ggml-vocab-phi-3.gguf", llama.WithVocabOnly())
	tmpl, err := FromModel(m)
	if err != nil {
		t.Fatal(err)
	}
	basic := []Message{
		{Role: "system", Content: "You are a helpful assistant"},
		{Role: "user", Content: "Hello"},
		{Role: "assistant", Content: "Hi there"},
		{Role: "user", Content: "Who are you"},
		{Role: "assistant", Content: "   I am an assistant   "},
		{Role: "user", Content: "Another question"},
	}
	got, err := tmpl.Render(basic, RenderOptions{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	// bos_token comes from the model: the same as the golden case.
	if want := string(mustRead(t, "testdata/golden/phi3-basic.txt")); got != want {
		t.Errorf("FromModel render:\n%q\nwant\n%q", got, want)
	}

	stories := loadModel(t, "stories260K.gguf", llama.WithVocabOnly())
	if _, err := FromModel(stories); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("FromModel(stories260K) = %v, want ErrNoTemplate", err)
	}
	if tmpl, err := Resolve(stories, ""); err != nil || tmpl.Name() != "chatml" {
		t.Errorf("Resolve(stories260K) = %v, %v; want chatml", tmpl, err)
	}
	if tmpl, err := Resolve(m, ""); err != nil || tmpl.Builtin() {
		t.Errorf("Resolve(phi-3) = %v, %v; want its own", tmpl, err)
	}
	if tmpl, err := Resolve(m, "gemma"); err != nil || tmpl.Name() != "gemma" {
		t.Errorf("Resolve(phi-3, gemma) = %v, %v", tmpl, err)
	}
}

// TestShiftDuringReply fills the context in the middle of a reply: the
// session drops old turns and the reply goes on where it stopped.
func TestShiftDuringReply(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithContextSize(256))
	s := storiesSession(t, c, WithContextPolicy(ShiftContext(0)), WithMaxTokens(0), forced("ok"))
	reply(t, s, "First question")
	reply(t, s, "Second question")

	long := strings.Repeat("The dog ran to the park and played with a ball. ", 5)
	sampler, err := m.NewSampler(llama.WithGreedy(), llama.WithGrammar(`root ::= "`+long+`"`, "root"))
	if err != nil {
		t.Fatal(err)
	}
	defer sampler.Close()
	s.cfg.sampler = sampler // the grammar's state must survive the shift
	answer, _ := reply(t, s, "Tell me a long story")
	st := s.Stats()
	t.Logf("reply of %d tokens, dropped %d messages, last generation: prompt %d cached %d", st.GeneratedTokens, st.Dropped, st.PromptTokens, st.CachedTokens)
	if answer != long {
		t.Fatalf("reply %q, want %q", answer, long)
	}
	if st.Dropped == 0 {
		t.Error("no message was dropped")
	}
	if h := s.History(); h[len(h)-1].Content != long || h[len(h)-2].Content != "Tell me a long story" {
		t.Errorf("history ends %v", h[len(h)-2:])
	}
	// The conversation goes on.
	s.cfg.sampler = nil
	s.cfg.samplerOpts = []llama.SamplerOption{llama.WithGreedy()}
	s.cfg.maxTokens = 8
	reply(t, s, "And then?")
}

// TestAlteredHistory measures prefix reuse with templates that render
// earlier replies differently from how they were generated: Qwen3 drops
// the thinking of earlier turns, Llama 3 trims replies. The reuse then
// ends where the reply begins; the prompt before it is not evaluated
// again.
func TestAlteredHistory(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	for _, c := range []struct{ template, out string }{
		{"qwen3", "<think>\nlet me think\n</think>\n\nA dog."},
		{"llama3", " A dog. "},
		{"chatml", "A dog."}, // unaltered: reuse goes on through the reply
	} {
		t.Run(c.template, func(t *testing.T) {
			ctx := newContext(t, m)
			s, err := NewSession(newSeq(t, ctx), readTemplate(t, c.template), forced(c.out), WithMaxTokens(40))
			if err != nil {
				t.Fatal(err)
			}
			reply(t, s, "What is it?")
			first := s.Stats()
			kv := kvLen(t, ctx)
			reply(t, s, "And then?")
			st := s.Stats()
			t.Logf("%s: turn 1 prompt %d + reply %d; turn 2 prompt %d, cached %d, new %d", c.template,
				first.PromptTokens, first.GeneratedTokens, st.PromptTokens, st.CachedTokens, st.NewTokens)
			if c.template == "chatml" {
				if st.CachedTokens != kv {
					t.Errorf("cached %d, the KV cache held %d", st.CachedTokens, kv)
				}
				return
			}
			if st.CachedTokens != first.PromptTokens {
				t.Errorf("cached %d, want the first prompt's %d", st.CachedTokens, first.PromptTokens)
			}
		})
	}
}

// TestSystemFolded uses a system prompt with Gemma 2's template, which
// refuses system messages: the prompt starts the first user message.
func TestSystemFolded(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	s, err := NewSession(newSeq(t, newContext(t, m)), readTemplate(t, "gemma2"), WithSystem("Be brief."), WithSampling(llama.WithGreedy()), WithMaxTokens(4))
	if err != nil {
		t.Fatal(err)
	}
	reply(t, s, "Hi")
	if !strings.Contains(s.text, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>") {
		t.Errorf("rendered %q", s.text)
	}
}

// TestSessionsShareContext: sessions on the sequences of one Context reply
// at once, each as it would alone, and keep their own histories and
// caches.
func TestSessionsShareContext(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	msgs := []string{"Tell me about a cat.", "Once upon a time", "What did the dog do?"}
	follow := "And then?"
	alone := make([][2]string, len(msgs))
	for i, msg := range msgs {
		s := storiesSession(t, newContext(t, m))
		alone[i][0], _ = reply(t, s, msg)
		alone[i][1], _ = reply(t, s, follow)
	}

	c := newContext(t, m, llama.WithSequences(len(msgs)), llama.WithContextSize(1536))
	sessions := make([]*Session, len(msgs))
	for i := range msgs {
		sessions[i] = storiesSession(t, c)
	}
	got := make([][2]string, len(msgs))
	stats := make([]TurnStats, len(msgs))
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			got[i][0], _ = reply(t, s, msgs[i])
			got[i][1], _ = reply(t, s, follow)
			stats[i] = s.Stats()
		})
	}
	wg.Wait()
	for i := range msgs {
		if got[i] != alone[i] {
			t.Errorf("session %d together replied %q, alone %q", i, got[i], alone[i])
		}
		if h := sessions[i].History(); len(h) != 4 || h[0].Content != msgs[i] || h[2].Content != follow {
			t.Errorf("session %d history: %v", i, h)
		}
		// The second turn reused the first from the session's own cache.
		if stats[i].CachedTokens == 0 || stats[i].CachedTokens+stats[i].NewTokens+1 < stats[i].PromptTokens {
			t.Errorf("session %d second turn: %+v", i, stats[i])
		}
	}
}
