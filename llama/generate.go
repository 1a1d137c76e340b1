package llama

/*
#include "llama.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/llamago/llamago/internal/clock"
)

// Token is one step of a generation.
type Token struct {
	// ID is the sampled token, or NullToken for a final step that only
	// releases text held back (see Generate).
	ID TokenID
	// Text is the text released at this step. It may be empty while bytes
	// are held back, and may hold text of earlier tokens: Text never ends
	// inside a UTF-8 character, nor inside a possible stop string.
	Text string
	// Index counts generated tokens from 0.
	Index int
	// Elapsed is the time since Generate started; for the first token it
	// is the time to first token.
	Elapsed time.Duration
}

// StopReason says why a generation ended.
type StopReason int

// Reasons a generation ends.
const (
	StopNone        StopReason = iota // still running, or not started
	StopEOG                           // the model produced an end-of-generation token
	StopMaxTokens                     // WithMaxTokens was reached
	StopString                        // a stop string was produced
	StopContextFull                   // the sequence's context is full (the error is ErrContextFull)
	StopCancelled                     // the context.Context was done (the error is its Err)
	StopBreak                         // the caller stopped the iteration
	StopError                         // another error
)

func (r StopReason) String() string {
	return [...]string{"none", "eog", "max_tokens", "stop_string", "context_full", "cancelled", "break", "error"}[r]
}

// Stats describes a finished generation.
type Stats struct {
	PromptTokens    int           // tokens in the prompt
	CachedTokens    int           // prompt tokens reused from the KV cache
	GeneratedTokens int           // tokens sampled
	PromptEval      time.Duration // decoding the prompt (the uncached part)
	TimeToFirst     time.Duration // from the start to the first sampled token
	Generation      time.Duration // from the first token to the last
	StopReason      StopReason
	StopString      string // the stop string that matched, with StopString
}

// TokensPerSecond is the generation speed after the first token.
func (s Stats) TokensPerSecond() float64 {
	if s.GeneratedTokens < 2 || s.Generation <= 0 {
		return 0
	}
	return float64(s.GeneratedTokens-1) / s.Generation.Seconds()
}

// PromptTokensPerSecond is the prompt processing speed.
func (s Stats) PromptTokensPerSecond() float64 {
	n := s.PromptTokens - s.CachedTokens
	if n <= 0 || s.PromptEval <= 0 {
		return 0
	}
	return float64(n) / s.PromptEval.Seconds()
}

type generateConfig struct {
	maxTokens   int
	stops       []string
	sampler     *Sampler
	samplerOpts []SamplerOption
	seq         int
	flags       SpecialTokens
	stats       *Stats
}

// GenerateOption configures Generate and Complete.
type GenerateOption func(*generateConfig)

// WithMaxTokens stops after n generated tokens; -1 (the default) means no
// limit but the context.
func WithMaxTokens(n int) GenerateOption { return func(c *generateConfig) { c.maxTokens = n } }

// WithStop ends the generation when the output contains one of the
// strings. The stop string is not emitted, even when split across tokens.
func WithStop(stops ...string) GenerateOption {
	return func(c *generateConfig) {
		for _, s := range stops {
			if s != "" {
				c.stops = append(c.stops, s)
			}
		}
	}
}

// WithSampler samples with s, which the caller owns. Without it Generate
// builds one from WithSampling's options.
func WithSampler(s *Sampler) GenerateOption { return func(c *generateConfig) { c.sampler = s } }

// WithSampling sets the options of the sampler Generate builds (by default
// DefaultSamplerConfig).
func WithSampling(opts ...SamplerOption) GenerateOption {
	return func(c *generateConfig) { c.samplerOpts = append(c.samplerOpts, opts...) }
}

// WithSequence generates in sequence seq of the context (default 0).
func WithSequence(seq int) GenerateOption { return func(c *generateConfig) { c.seq = seq } }

// WithTokenizeFlags sets how Generate tokenizes a text prompt (default
// AddSpecial|ParseSpecial).
func WithTokenizeFlags(f SpecialTokens) GenerateOption {
	return func(c *generateConfig) { c.flags = f }
}

// WithStats fills *s when the generation ends.
func WithStats(s *Stats) GenerateOption { return func(c *generateConfig) { c.stats = s } }

// Generate tokenizes prompt and streams the tokens the model generates
// after it, in sequence 0 of the context (see WithSequence).
//
// The sequence's KV cache is reused: only the part of the prompt after its
// longest common prefix with the cached tokens is decoded, in chunks of the
// batch size. A prompt that does not fit the context yields ErrContextFull
// before anything is decoded.
//
// Iteration ends at an end-of-generation token, WithMaxTokens, a stop
// string, a full context (with the error ErrContextFull), ctx being done
// (with ctx.Err(); a decode in progress is aborted), or the caller's break.
// Text held back at the end is released in a last Token whose ID is
// NullToken. The iterator is single-use.
func (c *Context) Generate(ctx context.Context, prompt string, opts ...GenerateOption) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		cfg := newGenerateConfig(opts)
		tokens, err := c.m.Tokenize(prompt, cfg.flags)
		if err != nil {
			yield(Token{}, err)
			return
		}
		c.generate(ctx, tokens, cfg, yield)
	}
}

// GenerateTokens is Generate with a tokenized prompt.
func (c *Context) GenerateTokens(ctx context.Context, prompt []TokenID, opts ...GenerateOption) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		c.generate(ctx, prompt, newGenerateConfig(opts), yield)
	}
}

func newGenerateConfig(opts []GenerateOption) *generateConfig {
	cfg := &generateConfig{maxTokens: -1, flags: AddSpecial | ParseSpecial}
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

// Completion is the result of Complete.
type Completion struct {
	Text   string
	Tokens []TokenID
	Stats
}

// Complete runs Generate to the end and returns the text and statistics.
// A full context is not an error here: the text so far is returned with
// StopReason StopContextFull.
func (c *Context) Complete(ctx context.Context, prompt string, opts ...GenerateOption) (Completion, error) {
	var res Completion
	var b strings.Builder
	opts = append(opts, WithStats(&res.Stats))
	for tok, err := range c.Generate(ctx, prompt, opts...) {
		if err != nil {
			if errors.Is(err, ErrContextFull) && len(res.Tokens) > 0 {
				break
			}
			return res, err
		}
		b.WriteString(tok.Text)
		if tok.ID != NullToken {
			res.Tokens = append(res.Tokens, tok.ID)
		}
	}
	res.Text = b.String()
	return res, nil
}

// generation is the state of one Generate call.
type generation struct {
	ctx   context.Context
	seqs  [1]int // the sequence, as Batch.set takes it
	c     *Context
	cfg   *generateConfig
	s     *Sampler
	start clock.Time
	stats Stats
	text  textStream
}

func (c *Context) generate(ctx context.Context, prompt []TokenID, cfg *generateConfig, yield func(Token, error) bool) {
	g := &generation{ctx: ctx, seqs: [1]int{cfg.seq}, c: c, cfg: cfg, start: clock.Now()}
	defer func() {
		if cfg.stats != nil {
			*cfg.stats = g.stats
		}
	}()
	fail := func(reason StopReason, err error) {
		g.stats.StopReason = reason
		yield(Token{}, err)
	}
	if err := g.setup(prompt); err != nil {
		if g.s != nil && g.s != cfg.sampler {
			g.s.Close() // setup may fail after building the sampler
		}
		reason := StopError
		if errors.Is(err, ErrContextFull) {
			reason = StopContextFull
		}
		fail(reason, err)
		return
	}
	if g.s != cfg.sampler {
		defer g.s.Close()
	}
	if ctx.Done() != nil {
		if err := ctx.Err(); err != nil {
			fail(StopCancelled, err)
			return
		}
		defer c.watch(ctx)()
	}

	if err := g.evalPrompt(prompt); err != nil {
		g.failDecode(ctx, err, fail)
		return
	}
	g.stats.PromptEval = clock.Since(g.start)

	var first clock.Time
	for {
		if err := ctx.Err(); err != nil {
			fail(StopCancelled, err)
			return
		}
		tok, last, err := g.next()
		if err != nil {
			g.failDecode(ctx, err, fail)
			return
		}
		now := clock.Now()
		if g.stats.GeneratedTokens == 0 {
			first = now
			g.stats.TimeToFirst = now.Sub(g.start)
		}
		g.stats.Generation = now.Sub(first)
		if c.m.isEOG(tok) {
			g.stats.StopReason = StopEOG
			if rest := g.text.flush(); rest != "" {
				yield(Token{ID: NullToken, Text: rest, Index: g.stats.GeneratedTokens, Elapsed: now.Sub(g.start)}, nil)
			}
			return
		}
		g.stats.GeneratedTokens++
		t := Token{ID: tok, Index: g.stats.GeneratedTokens - 1, Elapsed: now.Sub(g.start)}
		var stopped bool
		t.Text, stopped = g.release(tok, last)
		if stopped {
			g.stats.StopReason = StopString
			if t.Text != "" {
				yield(t, nil)
			}
			return
		}
		if !yield(t, nil) {
			g.stats.StopReason = StopBreak
			return
		}
		if last {
			if g.stats.StopReason == StopContextFull {
				yield(Token{}, fmt.Errorf("%w: sequence %d reached %d positions", ErrContextFull, cfg.seq, len(c.hist[cfg.seq].tokens)+1))
			}
			return
		}
		if err := g.decodeOne(tok); err != nil {
			g.failDecode(ctx, err, fail)
			return
		}
	}
}

// setup checks the request and prepares the sampler and batch.
func (g *generation) setup(prompt []TokenID) error {
	c, cfg := g.c, g.cfg
	if len(prompt) == 0 {
		return invalidArg("empty prompt")
	}
	for _, t := range prompt {
		if err := c.m.checkToken(t); err != nil {
			return err
		}
	}
	if cfg.maxTokens < -1 {
		return invalidArg("max tokens %d", cfg.maxTokens)
	}
	if cfg.maxTokens == 0 {
		return invalidArg("max tokens 0")
	}
	g.text.stops = cfg.stops
	g.stats.PromptTokens = len(prompt)
	g.s = cfg.sampler
	if g.s == nil {
		opts := cfg.samplerOpts
		s, err := c.m.NewSampler(opts...)
		if err != nil {
			return err
		}
		g.s = s
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(cfg.seq, false); err != nil {
		return err
	}
	if n := int(C.llama_n_ctx_seq(c.c)); len(prompt) >= n {
		return fmt.Errorf("%w: prompt of %d tokens, sequence context of %d", ErrContextFull, len(prompt), n)
	}
	if c.genBuf == nil {
		b, err := NewBatch(c.nBatch, 1)
		if err != nil {
			return err
		}
		c.genBuf = b
	}
	return nil
}

// evalPrompt decodes the part of the prompt not already cached.
func (g *generation) evalPrompt(prompt []TokenID) error {
	c, seq := g.c, g.cfg.seq
	if err := c.lock(); err != nil {
		return err
	}
	h := &c.hist[seq]
	if !h.valid {
		C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), -1, -1)
		h.tokens, h.valid = h.tokens[:0], true
	}
	p := 0
	for p < len(h.tokens) && p < len(prompt) && h.tokens[p] == prompt[p] {
		p++
	}
	if p == len(prompt) {
		p-- // the last prompt token must be decoded again for its logits
	}
	if p < len(h.tokens) {
		if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), C.llama_pos(p), -1) {
			C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), -1, -1)
			p = 0
		}
		h.tokens = h.tokens[:p]
	}
	c.mu.Unlock()
	g.stats.CachedTokens = p

	for i := p; i < len(prompt); i += c.nBatch {
		chunk := prompt[i:min(i+c.nBatch, len(prompt))]
		if err := g.decode(chunk, i+len(chunk) == len(prompt)); err != nil {
			return err
		}
	}
	return nil
}

// decode appends tokens to the sequence, asking for the last one's logits
// if wantLogits.
func (g *generation) decode(tokens []TokenID, wantLogits bool) error {
	c, seq := g.c, g.cfg.seq
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	h := &c.hist[seq]
	b := c.genBuf
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, t := range tokens {
		b.set(i, t, len(h.tokens)+i, wantLogits && i == len(tokens)-1, g.seqs[:])
	}
	b.c.n_tokens = C.int32_t(len(tokens))
	if err := c.decode(g.ctx, b, false); err != nil {
		// Drop whatever finished micro-batches left, to match h. A memory
		// that cannot remove part of a sequence (recurrent, hybrid) has
		// moved on: h no longer says what it holds.
		if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), C.llama_pos(len(h.tokens)), -1) {
			h.valid = false
		}
		return err
	}
	h.tokens = append(h.tokens, tokens...)
	return nil
}

func (g *generation) decodeOne(t TokenID) error {
	one := [1]TokenID{t}
	return g.decode(one[:], true)
}

// next samples the next token. last reports that it is the final one:
// WithMaxTokens is reached or the sequence has no room to decode it.
func (g *generation) next() (t TokenID, last bool, err error) {
	c, s := g.c, g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return NullToken, false, ErrClosed
	}
	if err := c.lock(); err != nil {
		return NullToken, false, err
	}
	defer c.mu.Unlock()
	t, err = s.sample(c, -1)
	if err != nil {
		return NullToken, false, err
	}
	n := g.stats.GeneratedTokens + 1
	if g.cfg.maxTokens > 0 && n >= g.cfg.maxTokens {
		g.stats.StopReason = StopMaxTokens
		return t, true, nil
	}
	if len(c.hist[g.cfg.seq].tokens)+1 >= int(C.llama_n_ctx_seq(c.c)) {
		g.stats.StopReason = StopContextFull
		return t, true, nil
	}
	return t, false, nil
}

// release runs t's text through the text stream: see textStream.push.
func (g *generation) release(t TokenID, flush bool) (text string, stopped bool) {
	text, stop := g.text.push(g.c.m.piece(t), flush)
	if stop >= 0 {
		g.stats.StopString = g.text.stops[stop]
	}
	return text, stop >= 0
}

// failDecode reports a failure during decoding with the right reason.
func (g *generation) failDecode(ctx context.Context, err error, fail func(StopReason, error)) {
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		fail(StopCancelled, err)
	case errors.Is(err, ErrContextFull):
		fail(StopContextFull, err)
	default:
		fail(StopError, err)
	}
}
