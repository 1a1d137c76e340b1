package chat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"

	"github.com/llamago/llamago/llama"
)

// ErrBusy is returned by a Session method called while a Send is still
// being iterated.
var ErrBusy = errors.New("chat: session is busy with another turn")

// Chunk is a piece of a streamed reply.
type Chunk struct {
	// Text is the text released at this step (see llama.Token.Text).
	Text string
	// Thinking reports text between the thinking tags.
	Thinking bool
	// Token is the token whose step released Text, or llama.NullToken
	// for text released at the end. Text released by one token may come
	// in several chunks (thinking, then answer) with the same Token.
	Token llama.TokenID
}

// TurnStats describe the last turn of a Session.
type TurnStats struct {
	// Stats are the generation's: PromptTokens is the whole rendered
	// conversation, CachedTokens the part reused from the KV cache.
	// After a context shift during the reply, they are those of the last
	// generation, with GeneratedTokens, DraftTokens and AcceptedTokens
	// counting the whole reply.
	llama.Stats
	// NewTokens are the prompt tokens tokenized for this turn: the text
	// the template rendered after the longest prefix that the session's
	// token stream already held (normally the new message and the
	// generation prompt). PromptTokens-CachedTokens is NewTokens, plus
	// the previous reply's last token when it was not decoded.
	NewTokens int
	// Dropped counts the messages a context shift removed for this turn.
	Dropped int
	// ThinkingOpened reports that the generation prompt opened the
	// thinking, so the reply started inside it (DeepSeek-R1 style).
	ThinkingOpened bool
}

// ContextPolicy says what a Session does when the conversation does not
// fit the context.
type ContextPolicy struct {
	shift bool
	keep  int
}

// FailWhenFull makes Send fail with an error wrapping llama.ErrContextFull
// when the conversation does not fit. It is the default.
func FailWhenFull() ContextPolicy { return ContextPolicy{} }

// ShiftContext makes Send drop the oldest turns until the conversation
// fits, keeping the system prompt and the first keep messages of the
// history. A turn is a user message with the replies after it, so roles
// keep alternating. The rendered conversation then differs from what the
// KV cache holds after the kept prefix, which is evaluated again.
func ShiftContext(keep int) ContextPolicy { return ContextPolicy{shift: true, keep: max(keep, 0)} }

type config struct {
	system      string
	samplerOpts []llama.SamplerOption
	sampler     *llama.Sampler
	maxTokens   int
	stops       []string
	policy      ContextPolicy
	tags        *ThinkingTags
	hideThink   bool
	tools       []any
	vars        map[string]any
	functions   map[string]*Function
	choice      ToolChoice
	format      *ToolFormat
	projector   *llama.Projector
	spec        *llama.Speculation
}

// Option configures NewSession.
type Option func(*config)

// WithSystem sets the system prompt. With a template that refuses system
// messages, it starts the first user message instead.
func WithSystem(text string) Option { return func(c *config) { c.system = text } }

// WithSampling sets the options of the sampler built for each reply (by
// default llama.DefaultSamplerConfig).
func WithSampling(opts ...llama.SamplerOption) Option {
	return func(c *config) { c.samplerOpts = append(c.samplerOpts, opts...) }
}

// WithSampler samples with s, which the caller owns (its state, such as
// penalties, carries over between replies).
func WithSampler(s *llama.Sampler) Option { return func(c *config) { c.sampler = s } }

// WithSpeculation sets how replies speculate (see llama.WithSpeculation):
// prompt lookup, or the draft model of the sequence's context, which
// replies use by default.
func WithSpeculation(sp llama.Speculation) Option { return func(c *config) { c.spec = &sp } }

// WithMaxTokens limits each reply to n tokens; 0 or less means no limit
// but the context.
func WithMaxTokens(n int) Option { return func(c *config) { c.maxTokens = n } }

// WithStop adds strings that end a reply. The template's end-of-turn
// markers are added by the session when the model does not end
// generation on them by itself.
func WithStop(stops ...string) Option { return func(c *config) { c.stops = append(c.stops, stops...) } }

// WithContextPolicy sets what happens when the context is full (default
// FailWhenFull).
func WithContextPolicy(p ContextPolicy) Option { return func(c *config) { c.policy = p } }

// WithThinkingTags sets the thinking markers (default: the template's, see
// Template.ThinkingTags). Empty tags turn thinking detection off.
func WithThinkingTags(open, close string) Option {
	return func(c *config) { c.tags = &ThinkingTags{open, close} }
}

// WithHiddenThinking leaves thinking out of the streamed chunks (it stays
// in the history, which the template may render or drop).
func WithHiddenThinking() Option { return func(c *config) { c.hideThink = true } }

// WithTools passes tools to the template (see RenderOptions.Tools). Tools
// in the OpenAI format (Tool values, or JSON of the same shape) also make
// the session parse the replies for calls, in the template's format (see
// DetectToolFormat), and constrain them with the tools' grammar (see
// WithToolChoice): a reply's calls are its message's ToolCalls, left out
// of the streamed text.
func WithTools(tools ...any) Option { return func(c *config) { c.tools = append(c.tools, tools...) } }

// WithFunctions adds tools backed by Go functions (see NewFunction), which
// Run calls when the model asks.
func WithFunctions(fns ...*Function) Option {
	return func(c *config) {
		if c.functions == nil {
			c.functions = map[string]*Function{}
		}
		for _, f := range fns {
			if f != nil {
				c.functions[f.Name()] = f
				c.tools = append(c.tools, f.Tool())
			}
		}
	}
}

// WithToolChoice sets whether the model must call tools (default
// ToolAuto): ToolRequired or a name constrain the whole reply to calls,
// ToolAuto constrains calls once the model starts one, ToolNone neither
// constrains nor parses. Run applies it to the first reply only, and
// lets the model choose after the tools' results.
func WithToolChoice(c ToolChoice) Option { return func(cfg *config) { cfg.choice = c } }

// WithToolFormat sets the format of tool calls (default: the template's,
// see DetectToolFormat).
func WithToolFormat(f ToolFormat) Option { return func(c *config) { c.format = &f } }

// WithProjector gives the session the vision projector of its model, for
// messages with images (Message.Images). Without one, a message with
// images is refused.
func WithProjector(p *llama.Projector) Option { return func(c *config) { c.projector = p } }

// WithTemplateVars passes more template variables, such as
// enable_thinking (see RenderOptions.Extra).
func WithTemplateVars(vars map[string]any) Option {
	return func(c *config) {
		if c.vars == nil {
			c.vars = map[string]any{}
		}
		for k, v := range vars {
			c.vars[k] = v
		}
	}
}

// Session is a conversation with a model: the system prompt, the history
// and the token stream the KV cache holds. Each Send renders the whole
// conversation with the template, and decodes only what the cache does
// not hold already: normally the new message and the generation prompt.
//
// A Session runs on a llama.Sequence, which it uses alone; it runs one
// turn at a time (another call meanwhile gets ErrBusy). Sessions on the
// sequences of one Context reply at once, their tokens decoded together.
type Session struct {
	seq  *llama.Sequence
	c    *llama.Context
	m    *llama.Model
	tmpl *Template
	cfg  config

	mu      sync.Mutex
	busy    bool
	system  string
	history []Message

	// The conversation's token stream: text is the rendered text that
	// tokens stand for; ends[i] is the end of token i in text when a
	// prefix of text ends there exactly, -1 inside a tokenized chunk.
	text   string
	tokens []llama.TokenID
	ends   []int

	stats    TurnStats
	stops    []string
	bos, eos string // text of the model's BOS and EOS

	// Tools: the format of calls, and the grammars of the configured
	// choice and of auto (nil without tools, or with ToolNone).
	format        ToolFormat
	parseTools    bool
	grammar, auto *ToolGrammar
}

// NewSession starts a conversation in a sequence of a context (see
// llama.Context.NewSequence) with a template (see FromModel, Builtin,
// Resolve). The caller keeps the sequence, and closes it after the
// session.
func NewSession(seq *llama.Sequence, tmpl *Template, opts ...Option) (*Session, error) {
	if seq == nil || tmpl == nil {
		return nil, fmt.Errorf("chat: NewSession needs a sequence and a template")
	}
	c := seq.Context()
	s := &Session{seq: seq, c: c, m: c.Model(), tmpl: tmpl}
	for _, o := range opts {
		o(&s.cfg)
	}
	s.system = s.cfg.system
	s.bos, s.eos = specialText(s.m, s.m.BOS()), specialText(s.m, s.m.EOS())
	s.stops = s.stopStrings()
	if err := s.setupTools(); err != nil {
		return nil, err
	}
	return s, nil
}

// setupTools builds the tool grammars of the configured tools.
func (s *Session) setupTools() error {
	s.format = DetectToolFormat(s.tmpl)
	if s.cfg.format != nil {
		s.format = *s.cfg.format
	}
	var tools []Tool
	for i, t := range s.cfg.tools {
		var tool Tool
		data, err := json.Marshal(t)
		if err == nil {
			err = json.Unmarshal(data, &tool)
		}
		if err != nil || tool.Function.Name == "" {
			return fmt.Errorf("%w: tool %d is not in the OpenAI format", ErrInvalidTool, i)
		}
		tools = append(tools, tool)
	}
	if len(tools) == 0 || s.cfg.choice.Mode == ToolNone && s.cfg.choice.Name == "" {
		return nil
	}
	s.parseTools = true
	choice := s.cfg.choice
	if choice.Name != "" {
		choice.Mode = ToolRequired
	}
	g, ok, err := s.format.Grammar(tools, choice)
	if err != nil {
		return err
	}
	if ok {
		s.grammar = &g
	}
	a, ok, err := s.format.Grammar(tools, ToolChoice{Mode: ToolAuto, Single: choice.Single})
	if err != nil {
		return err
	}
	if ok {
		s.auto = &a
	}
	return nil
}

// turnMarkers are the end-of-turn and start-of-turn markers of the chat
// formats; a reply ends on those its template uses.
var turnMarkers = []string{
	"<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|start_header_id|>", "<|end|>", "<|user|>",
	"<end_of_turn>", "<start_of_turn>", "<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>",
	"<｜end▁of▁sentence｜>", "<｜User｜>", "[INST]", "<|endoftext|>", "</s>",
}

// stopStrings returns the template's markers that the model does not
// turn into an end-of-generation token, and the configured stops.
func (s *Session) stopStrings() []string {
	probe := []Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello"}, {Role: "user", Content: "Bye"}}
	text, err := s.tmpl.Render(probe, s.renderOptions(true))
	stops := slices.Clone(s.cfg.stops)
	if err != nil {
		return stops
	}
	for _, mk := range turnMarkers {
		if !strings.Contains(text, mk) {
			continue
		}
		toks, err := s.m.Tokenize(mk, llama.ParseSpecial)
		if err == nil && len(toks) == 1 && s.m.IsEOG(toks[0]) {
			continue // the model stops there by itself
		}
		stops = append(stops, mk)
	}
	return stops
}

// StopStrings are the strings that end a reply.
func (s *Session) StopStrings() []string { return slices.Clone(s.stops) }

func (s *Session) renderOptions(gen bool) RenderOptions {
	o := RenderOptions{AddGenerationPrompt: gen, Tools: s.cfg.tools, Extra: s.cfg.vars}
	if s.tmpl.bos == "" {
		o.BOS = s.bos
	}
	if s.tmpl.eos == "" {
		o.EOS = s.eos
	}
	return o
}

func (s *Session) acquire() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return ErrBusy
	}
	s.busy = true
	return nil
}

func (s *Session) release() {
	s.mu.Lock()
	s.busy = false
	s.mu.Unlock()
}

// System returns the system prompt.
func (s *Session) System() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.system
}

// SetSystem replaces the system prompt; the next turn evaluates the
// conversation again from the first difference.
func (s *Session) SetSystem(text string) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	s.mu.Lock()
	s.system = text
	s.mu.Unlock()
	return nil
}

// History returns the messages of the conversation, without the system
// prompt. Assistant messages hold the replies as generated, thinking
// included (see SplitThinking).
func (s *Session) History() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.history)
}

// Clear forgets the history, keeping the system prompt. The KV cache is
// kept, so the system prompt is not evaluated again.
func (s *Session) Clear() error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	s.mu.Lock()
	s.history = nil
	s.mu.Unlock()
	return nil
}

// Stats describes the last turn.
func (s *Session) Stats() TurnStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// messages returns the conversation to render.
func (s *Session) messages(history []Message) []Message {
	if s.system == "" {
		return history
	}
	return append([]Message{{Role: "system", Content: s.system}}, history...)
}

// render renders the conversation. A template that refuses system
// messages (Gemma 2's, Mistral's first ones) gets the system prompt at the
// start of the first user message instead, as llama.cpp does.
func (s *Session) render(history []Message, gen bool) (string, error) {
	text, err := s.tmpl.Render(s.messages(history), s.renderOptions(gen))
	var re *RaiseError
	if err == nil || s.system == "" || !errors.As(err, &re) {
		return text, err
	}
	merged := slices.Clone(history)
	for i := range merged {
		if merged[i].Role == "user" {
			merged[i].Content = s.system + "\n\n" + merged[i].Content
			if text, err := s.tmpl.Render(merged, s.renderOptions(gen)); err == nil {
				return text, nil
			}
			break
		}
	}
	return "", err
}

// prompt is a rendered, tokenized conversation.
type prompt struct {
	text      string
	tokens    []llama.TokenID
	ends      []int
	newTokens int
	opened    bool // the generation prompt opened the thinking
}

// buildPrompt renders history with the generation prompt and tokenizes
// it, reusing the session's token stream for the longest common prefix
// that ends on a token boundary.
func (s *Session) buildPrompt(history []Message, tags ThinkingTags) (prompt, error) {
	text, err := s.render(history, true)
	if err != nil {
		return prompt{}, err
	}
	p := prompt{text: text, opened: s.opensThinking(history, text, tags)}
	common := 0
	for common < len(text) && common < len(s.text) && text[common] == s.text[common] {
		common++
	}
	keep, at := 0, 0
	for i, e := range s.ends {
		if e >= 0 && e <= common {
			keep, at = i+1, e
		}
	}
	delta, err := s.tokenize(text[at:], keep == 0)
	if err != nil {
		return prompt{}, err
	}
	p.tokens = append(slices.Clone(s.tokens[:keep]), delta...)
	p.ends = slices.Clone(s.ends[:keep])
	for range len(delta) - 1 {
		p.ends = append(p.ends, -1)
	}
	if len(delta) > 0 {
		p.ends = append(p.ends, len(text))
	}
	p.newTokens = len(delta)
	return p, nil
}

// tokenize tokenizes a piece of the rendered conversation, parsing
// special tokens. The first piece gets BOS when the model wants one and
// the template did not write it; later pieces lose the lone space token
// that SentencePiece vocabularies put at the start of a tokenization.
func (s *Session) tokenize(text string, first bool) ([]llama.TokenID, error) {
	if text == "" {
		return nil, nil
	}
	toks, err := s.m.Tokenize(text, llama.ParseSpecial)
	if err != nil {
		return nil, err
	}
	bos := s.m.BOS()
	if first {
		if s.m.AddsBOS() && bos != llama.NullToken && (len(toks) == 0 || toks[0] != bos) {
			toks = append([]llama.TokenID{bos}, toks...)
		}
		for len(toks) > 1 && toks[0] == bos && toks[1] == bos {
			toks = toks[1:] // never a double BOS
		}
		return toks, nil
	}
	if len(toks) > 1 && !strings.HasPrefix(text, " ") {
		if p, err := s.m.TokenToPiece(toks[0], false); err == nil && p == " " {
			toks = toks[1:]
		}
	}
	return toks, nil
}

// opensThinking reports whether the generation prompt that render added
// leaves the thinking open, so that the reply starts inside it.
func (s *Session) opensThinking(history []Message, withGen string, tags ThinkingTags) bool {
	if tags.Open == "" {
		return false
	}
	var suffix string
	if without, err := s.render(history, false); err == nil && strings.HasPrefix(withGen, without) {
		suffix = withGen[len(without):]
	} else {
		suffix = withGen[max(0, len(withGen)-2*len(tags.Open)-8):]
	}
	i := strings.LastIndex(suffix, tags.Open)
	return i >= 0 && !strings.Contains(suffix[i:], tags.Close)
}

// Send adds a user message and streams the reply. See SendMessage.
func (s *Session) Send(ctx context.Context, message string) iter.Seq2[Chunk, error] {
	return s.SendMessage(ctx, Message{Role: "user", Content: message})
}

// SendMessage adds a message (a user message, or a tool result) and
// streams the model's reply, thinking (unless hidden) and answer.
//
// When the reply ends, or the caller stops iterating, the message and the
// reply so far join the history. When the turn fails (the template
// refuses the conversation, the context is full under FailWhenFull, ctx
// is done, a decode fails) the error is yielded and the history is left
// as it was.
func (s *Session) SendMessage(ctx context.Context, msg Message) iter.Seq2[Chunk, error] {
	return s.send(ctx, []Message{msg}, s.grammar)
}

// SendMessages adds messages, such as the results of a reply's tool
// calls, and streams the model's reply, as SendMessage.
func (s *Session) SendMessages(ctx context.Context, msgs ...Message) iter.Seq2[Chunk, error] {
	return s.send(ctx, msgs, s.grammar)
}

func (s *Session) send(ctx context.Context, msgs []Message, g *ToolGrammar) iter.Seq2[Chunk, error] {
	return func(yield func(Chunk, error) bool) {
		if err := s.acquire(); err != nil {
			yield(Chunk{}, err)
			return
		}
		defer s.release()
		if len(msgs) == 0 {
			yield(Chunk{}, errors.New("chat: no message to send"))
			return
		}
		if err := s.turn(ctx, msgs, g, yield); err != nil {
			yield(Chunk{}, err)
		}
	}
}

// turn runs one exchange.
func (s *Session) turn(ctx context.Context, msgs []Message, g *ToolGrammar, yield func(Chunk, error) bool) error {
	tags := s.tmpl.ThinkingTags()
	if s.cfg.tags != nil {
		tags = *s.cfg.tags
	}
	msgs = slices.Clone(msgs)
	for i := range msgs {
		msg := &msgs[i]
		if len(msg.Images) == 0 {
			continue
		}
		if s.cfg.projector == nil {
			return fmt.Errorf("chat: a message with images needs a session with a projector (WithProjector)")
		}
		switch n := strings.Count(msg.Content, llama.DefaultMediaMarker); {
		case n == 0:
			msg.Content = strings.Repeat(llama.DefaultMediaMarker, len(msg.Images)) + "\n" + msg.Content
		case n != len(msg.Images):
			return fmt.Errorf("chat: a message with %d images has %d markers %s", len(msg.Images), n, llama.DefaultMediaMarker)
		}
	}
	history := append(slices.Clone(s.history), msgs...)
	stats := TurnStats{}
	p, history, err := s.fit(history, 0, "", tags, &stats)
	if err != nil {
		return err
	}
	stats.NewTokens = p.newTokens
	stats.ThinkingOpened = p.opened

	split := newSplitter(tags, p.opened)
	stopped := false
	var parser *ToolParser
	var calls []ToolCall
	var kept strings.Builder // the reply without its calls
	if s.parseTools {
		parser = NewToolParser(s.format)
	}
	emit := func(tok llama.TokenID) func(string, bool) {
		return func(text string, thinking bool) {
			if parser != nil && !thinking {
				var c []ToolCall
				text, c = parser.Feed(text)
				calls = append(calls, c...)
			}
			kept.WriteString(text)
			if stopped || text == "" || (thinking && s.cfg.hideThink) {
				return
			}
			if !yield(Chunk{Text: text, Thinking: thinking, Token: tok}, nil) {
				stopped = true
			}
		}
	}

	// The reply's tokens and their text since the last context shift,
	// whose prompt holds the reply before it (see fit).
	var reply strings.Builder
	var gen []llama.TokenID
	var pieces []string
	before := "" // the reply before the last shift
	total := 0   // tokens generated in all
	for {
		var st llama.Stats
		opts := []llama.GenerateOption{llama.WithStats(&st), llama.WithStop(s.stops...)}
		if s.cfg.maxTokens > 0 {
			opts = append(opts, llama.WithMaxTokens(s.cfg.maxTokens-total))
		}
		if s.cfg.spec != nil {
			opts = append(opts, llama.WithSpeculation(*s.cfg.spec))
		}
		if s.cfg.sampler != nil {
			opts = append(opts, llama.WithSampler(s.cfg.sampler))
		} else if sopts := slices.Clone(s.cfg.samplerOpts); len(sopts) > 0 || g != nil {
			if g != nil {
				if opt, ok := g.SamplerOption(s.m); ok {
					sopts = append(sopts, opt)
				}
			}
			opts = append(opts, llama.WithSampling(sopts...))
		}
		var genErr error
		var yielded []llama.TokenID
		stream := s.seq.GenerateTokens(ctx, p.tokens, opts...)
		if imgs := messageImages(history); len(imgs) > 0 {
			// Images go through the projector, with the rendered text:
			// the sequence recognises the images it holds already.
			flags := llama.ParseSpecial
			if s.m.AddsBOS() && (s.bos == "" || !strings.HasPrefix(p.text, s.bos)) {
				flags |= llama.AddSpecial
			}
			opts = append(opts, llama.WithImages(s.cfg.projector, imgs...), llama.WithTokenizeFlags(flags))
			stream = s.seq.Generate(ctx, p.text, opts...)
		}
		for tok, err := range stream {
			if err != nil {
				genErr = err
				break
			}
			if tok.ID != llama.NullToken {
				yielded = append(yielded, tok.ID)
				piece, _ := s.m.TokenToPiece(tok.ID, false)
				pieces = append(pieces, piece)
			}
			reply.WriteString(tok.Text)
			split.feed(tok.Text, emit(tok.ID))
			if stopped {
				break
			}
		}
		gen = append(gen, yielded...)
		total += st.GeneratedTokens
		drafted, accepted := stats.DraftTokens+st.DraftTokens, stats.AcceptedTokens+st.AcceptedTokens
		stats.Stats = st
		stats.GeneratedTokens = total
		stats.DraftTokens, stats.AcceptedTokens = drafted, accepted
		if genErr == nil || stopped {
			break
		}
		if !errors.Is(genErr, llama.ErrContextFull) || !s.cfg.policy.shift || len(yielded) == 0 {
			return genErr
		}
		// Shift: drop old turns and continue the reply after them.
		before = reply.String()
		p, history, err = s.fit(history, 1, before, tags, &stats)
		if err != nil {
			return err
		}
		stats.NewTokens = p.newTokens
		gen, pieces = gen[:0], pieces[:0]
	}
	split.flush(emit(llama.NullToken))
	if parser != nil {
		text, c := parser.Flush()
		calls = append(calls, c...)
		kept.WriteString(text)
		if text != "" && !stopped {
			yield(Chunk{Text: text, Token: llama.NullToken}, nil)
		}
	}
	replyMsg := Message{Role: "assistant", Content: reply.String()}
	if len(calls) > 0 {
		if s.cfg.choice.Single {
			calls = calls[:1]
		}
		for i := range calls {
			if calls[i].ID == "" {
				calls[i].ID = newCallID(s.format)
			}
		}
		replyMsg.Content, replyMsg.ToolCalls = kept.String(), calls
	}

	// Commit: the reply joins the history, and its tokens the stream as
	// far as their text is the reply's (a stop string may end mid-token).
	full := reply.String()
	text := full[len(before):]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history = append(history, replyMsg)
	s.text, s.tokens, s.ends = p.text, p.tokens, p.ends
	n := 0
	for i, id := range gen {
		if n+len(pieces[i]) > len(text) || text[n:n+len(pieces[i])] != pieces[i] {
			break
		}
		n += len(pieces[i])
		s.tokens = append(s.tokens, id)
		s.ends = append(s.ends, len(s.text)+n)
	}
	s.text += text[:n]
	s.stats = stats
	return nil
}

// fit renders and tokenizes history, dropping old turns under the shift
// policy until it fits with room for the reply. partial is a reply
// begun before a shift, appended to the rendered prompt; minRoom is the
// room it must leave at least.
func (s *Session) fit(history []Message, minRoom int, partial string, tags ThinkingTags, stats *TurnStats) (prompt, []Message, error) {
	nctx := s.c.SequenceContextSize()
	room := max(minRoom, 1)
	if s.cfg.policy.shift {
		room = max(room, nctx/4)
		if s.cfg.maxTokens > 0 {
			room = max(minRoom, 1, min(s.cfg.maxTokens, nctx/2))
		}
	}
	for {
		p, err := s.buildPrompt(history, tags)
		if err != nil {
			return prompt{}, nil, err
		}
		if partial != "" {
			// Continue the reply: its text follows the generation prompt.
			extra, err := s.tokenize(partial, false)
			if err != nil {
				return prompt{}, nil, err
			}
			p.tokens = append(p.tokens, extra...)
			for range len(extra) - 1 {
				p.ends = append(p.ends, -1)
			}
			if len(extra) > 0 {
				p.ends = append(p.ends, len(p.text)+len(partial))
			}
			p.text += partial
			p.newTokens += len(extra)
		}
		if len(p.tokens)+room <= nctx {
			return p, history, nil
		}
		if s.cfg.policy.shift {
			if h, n := dropTurn(history, s.cfg.policy.keep); n > 0 {
				history = h
				stats.Dropped += n
				continue
			}
		}
		return prompt{}, nil, fmt.Errorf("%w: the conversation needs %d tokens and room for the reply; the context has %d", llama.ErrContextFull, len(p.tokens), nctx)
	}
}

// dropTurn removes the oldest turn after the first keep messages: a user
// message and what follows it up to the next user message. The last
// message (the one being answered) is never dropped.
func dropTurn(history []Message, keep int) ([]Message, int) {
	start := keep
	for start < len(history)-1 && history[start].Role != "user" {
		start++
	}
	if start >= len(history)-1 {
		return history, 0
	}
	end := start + 1
	for end < len(history)-1 && history[end].Role != "user" {
		end++
	}
	if end >= len(history) {
		return history, 0
	}
	return append(slices.Clone(history[:start]), history[end:]...), end - start
}

// newCallID makes the id of a tool call: Mistral's templates want nine
// letters and digits, others take OpenAI's call_ ids.
func newCallID(f ToolFormat) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	if f == ToolFormatMistral {
		const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		id := make([]byte, 9)
		for i := range id {
			id[i] = alnum[int(b[i])%len(alnum)]
		}
		return string(id)
	}
	return "call_" + hex.EncodeToString(b[:])
}

// ToolCalls returns the tool calls of the last reply, if any.
func (s *Session) ToolCalls() []ToolCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.history); n > 0 && s.history[n-1].Role == "assistant" {
		return slices.Clone(s.history[n-1].ToolCalls)
	}
	return nil
}

// ErrToolRounds is returned by Run when the model still calls tools after
// the last round.
var ErrToolRounds = errors.New("chat: the model still calls tools after the last round")

// DefaultToolRounds is the rounds of Run when maxRounds is 0 or less.
const DefaultToolRounds = 8

// Run sends a user message and, as long as the reply calls functions of
// WithFunctions, runs them and sends their results back as tool messages,
// for at most maxRounds replies (DefaultToolRounds if maxRounds <= 0). It
// returns the text of the last reply, without its thinking. A call of an
// unknown function, or whose arguments do not decode, or that fails, is
// answered with the error as its result, so that the model can correct
// itself. The tool choice (WithToolChoice) applies to the first reply;
// the later ones are ToolAuto. onChunk, if not nil, receives each reply's
// chunks as they stream.
func (s *Session) Run(ctx context.Context, message string, maxRounds int, onChunk func(Chunk)) (string, error) {
	if maxRounds <= 0 {
		maxRounds = DefaultToolRounds
	}
	msgs := []Message{{Role: "user", Content: message}}
	g := s.grammar
	for round := 1; ; round++ {
		var text strings.Builder
		for c, err := range s.send(ctx, msgs, g) {
			if err != nil {
				return text.String(), err
			}
			if onChunk != nil {
				onChunk(c)
			}
			if !c.Thinking {
				text.WriteString(c.Text)
			}
		}
		calls := s.ToolCalls()
		if len(calls) == 0 {
			return text.String(), nil
		}
		if round >= maxRounds {
			return text.String(), fmt.Errorf("%w (%d rounds)", ErrToolRounds, maxRounds)
		}
		msgs = msgs[:0]
		for _, c := range calls {
			result, err := s.callFunction(ctx, c)
			if err != nil {
				if ctx.Err() != nil {
					return text.String(), ctx.Err()
				}
				result = "Error: " + err.Error()
			}
			msgs = append(msgs, Message{Role: "tool", Name: c.Function.Name, ToolCallID: c.ID, Content: result})
		}
		g = s.auto
	}
}

// callFunction runs the function a call names.
func (s *Session) callFunction(ctx context.Context, c ToolCall) (string, error) {
	f := s.cfg.functions[c.Function.Name]
	if f == nil {
		return "", fmt.Errorf("%w: there is no function %q", ErrToolCall, c.Function.Name)
	}
	return f.Call(ctx, callArguments(c))
}

// messageImages returns the images of the messages, in order.
func messageImages(history []Message) []*llama.Image {
	var out []*llama.Image
	for _, m := range history {
		out = append(out, m.Images...)
	}
	return out
}
