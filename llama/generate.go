package llama

import (
	"context"
	"errors"
	"iter"
	"strings"
	"time"
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
	// Logprob is the log-probability of ID under the model's distribution
	// (the logits before the sampler changes them), and TopLogprobs the
	// most likely tokens with theirs, most likely first: with
	// WithLogprobs.
	Logprob     float64
	TopLogprobs []TokenLogprob
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
	StopString      string        // the stop string that matched, with StopString
	Images          int           // images in the prompt (WithImages)
	ImageEncode     time.Duration // running the projector on the images not cached
	// DraftTokens counts the tokens drafted for speculative decoding (see
	// WithSpeculation), and AcceptedTokens those of them the model
	// agreed with: generated tokens that cost no step of their own.
	DraftTokens    int
	AcceptedTokens int
}

// AcceptanceRate is the share of drafted tokens the model accepted, 0
// without speculation.
func (s Stats) AcceptanceRate() float64 {
	if s.DraftTokens == 0 {
		return 0
	}
	return float64(s.AcceptedTokens) / float64(s.DraftTokens)
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
	flags       SpecialTokens
	stats       *Stats
	logprobs    bool
	topLogprobs int
	media       *mediaConfig // WithImages
	spec        *Speculation // WithSpeculation
}

// GenerateOption configures Generate and Complete, which refuse an invalid
// one with the generation's error.
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

// WithTokenizeFlags sets how Generate tokenizes a text prompt (default
// AddSpecial|ParseSpecial).
func WithTokenizeFlags(f SpecialTokens) GenerateOption {
	return func(c *generateConfig) { c.flags = f }
}

// WithStats fills *s when the generation ends.
func WithStats(s *Stats) GenerateOption { return func(c *generateConfig) { c.stats = s } }

// Generate tokenizes prompt and streams the tokens the model generates
// after it, in a sequence of the context that no Sequence holds: of the
// free ones, the one whose cache shares the longest prefix with the
// prompt. With every sequence taken it waits for one until ctx is done.
// Generations from several goroutines run at once, one per sequence (see
// WithSequences), decoded together in shared batches.
//
// The sequence's KV cache is reused: only the part of the prompt after its
// longest common prefix with the cached tokens is decoded, in chunks of the
// batch size. A prompt that does not fit the sequence's context yields
// ErrContextFull before anything is decoded.
//
// Iteration ends at an end-of-generation token, WithMaxTokens, a stop
// string, a full context (with the error ErrContextFull), ctx being done
// (with ctx.Err(); a decode in progress is aborted unless it serves other
// sequences too), Close (with ErrClosed), or the caller's break. Text held
// back at the end is released in a last Token whose ID is NullToken. The
// iterator is single-use.
func (c *Context) Generate(ctx context.Context, prompt string, opts ...GenerateOption) iter.Seq2[Token, error] {
	return c.generateText(ctx, nil, prompt, opts)
}

// GenerateTokens is Generate with a tokenized prompt.
func (c *Context) GenerateTokens(ctx context.Context, prompt []TokenID, opts ...GenerateOption) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		c.generate(ctx, nil, prompt, newGenerateConfig(opts), yield)
	}
}

func (c *Context) generateText(ctx context.Context, seq *Sequence, prompt string, opts []GenerateOption) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		cfg := newGenerateConfig(opts)
		if cfg.media != nil {
			c.generateMedia(ctx, seq, prompt, cfg, yield)
			return
		}
		tokens, err := c.m.Tokenize(prompt, cfg.flags)
		if err != nil {
			if cfg.stats != nil {
				*cfg.stats = Stats{StopReason: StopError}
			}
			yield(Token{}, err)
			return
		}
		c.generate(ctx, seq, tokens, cfg, yield)
	}
}

func newGenerateConfig(opts []GenerateOption) *generateConfig {
	cfg := &generateConfig{maxTokens: -1, flags: AddSpecial | ParseSpecial}
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

// generate runs one generation in seq, or in a free sequence with seq nil.
func (c *Context) generate(ctx context.Context, seq *Sequence, prompt []TokenID, cfg *generateConfig, yield func(Token, error) bool) {
	if cfg.media != nil && !cfg.media.evaluated {
		if cfg.stats != nil {
			*cfg.stats = Stats{StopReason: StopError}
		}
		yield(Token{}, invalidArg("WithImages needs a text prompt, not tokens"))
		return
	}
	s := &c.sched
	g, err := s.begin(ctx, seq, prompt, cfg)
	if err != nil {
		yield(Token{}, err)
		return
	}
	broke := false
	defer func() { s.end(g, broke) }()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { s.cancel(g) })
		defer stop()
	}
	for {
		tok, err, ok := s.next(g)
		switch {
		case !ok:
			return
		case err != nil:
			yield(Token{}, err)
			return
		case !yield(tok, nil):
			broke = true
			return
		}
	}
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
	return complete(c.Generate, ctx, prompt, opts)
}

func complete(generate func(context.Context, string, ...GenerateOption) iter.Seq2[Token, error],
	ctx context.Context, prompt string, opts []GenerateOption) (Completion, error) {
	var res Completion
	var b strings.Builder
	opts = append(opts[:len(opts):len(opts)], WithStats(&res.Stats))
	for tok, err := range generate(ctx, prompt, opts...) {
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
