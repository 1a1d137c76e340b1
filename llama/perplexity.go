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
	"math"
	"time"
	"unsafe"
)

// ErrShortText is returned by Perplexity for a text of fewer than two
// windows of tokens, the least llama-perplexity accepts.
var ErrShortText = errors.New("llama: text too short for the perplexity window")

// PerplexityChunk is the result of Perplexity after one chunk (window) of
// the text: the running estimate over the chunks so far, as
// llama-perplexity prints it after each.
type PerplexityChunk struct {
	Chunk  int // 1 for the first chunk
	Chunks int // the chunks that will be evaluated
	// Tokens is the number of tokens scored so far: window-1-window/2 a
	// chunk.
	Tokens int
	// PPL is exp of the mean negative log-likelihood of the scored tokens
	// so far, and Uncertainty its standard error (PPL times the standard
	// error of the mean log-likelihood), as llama-perplexity's final
	// "PPL = x +/- y".
	PPL, Uncertainty float64
	// NLL and NLL2 are the sums of the negative log-likelihoods of the
	// scored tokens and of their squares, from which PPL and Uncertainty
	// are computed.
	NLL, NLL2 float64
	// Elapsed is the time spent decoding this chunk (shared with the
	// chunks decoded in the same batches).
	Elapsed time.Duration
}

// ScoredToken is a token Perplexity scored: the logits that predict it,
// for WithScoredLogits.
type ScoredToken struct {
	Chunk int     // 0 for the first chunk
	Pos   int     // the index of the predicted token in Perplexity's tokens
	Next  TokenID // the predicted token, tokens[Pos]
	// Logits are the model's logits before Next, one per vocabulary entry:
	// a view that is valid only during the call.
	Logits []float32
	NLL    float64 // -log p(Next) under Logits
}

type perplexityConfig struct {
	window, chunks int
	scored         func(ScoredToken) error
}

// PerplexityOption configures Perplexity.
type PerplexityOption func(*perplexityConfig)

// WithWindow sets the tokens of each chunk, llama-perplexity's -c
// (default: the context's size divided by its sequences).
func WithWindow(n int) PerplexityOption {
	return func(c *perplexityConfig) { c.window = n }
}

// WithChunks evaluates at most n chunks, llama-perplexity's --chunks
// (default, or n <= 0: all the whole windows of the text).
func WithChunks(n int) PerplexityOption {
	return func(c *perplexityConfig) { c.chunks = n }
}

// WithScoredLogits calls f for each scored token, in order, with the
// logits that predict it: what a KL-divergence comparison needs. An error
// from f stops Perplexity with that error.
func WithScoredLogits(f func(ScoredToken) error) PerplexityOption {
	return func(c *perplexityConfig) { c.scored = f }
}

// PerplexityTokens tokenizes text for Perplexity as llama-perplexity does:
// the whole text at once, BOS added if the model adds it, control-token
// text left as plain text.
func (m *Model) PerplexityTokens(text string) ([]TokenID, error) {
	return m.Tokenize(text, AddSpecial)
}

// Perplexity computes the perplexity of the model over tokens with
// llama-perplexity's method, yielding the running estimate after each
// chunk; the last one yielded is the result. tokens is split into chunks
// of window tokens (WithWindow); each chunk is decoded from an empty
// cache, its first token replaced by BOS when the vocabulary adds BOS, in
// batches of the context's batch size, and only the second half of each
// window is scored: the logits at positions window/2 … window-2 predict
// the tokens that follow them, so every scored token has at least half a
// window of context. When the batch holds several windows (batch size ≥
// 2×window) and the context has the sequences, as many chunks are decoded
// together in sequences of their own, as llama-perplexity does.
//
// Perplexity uses the whole context: it clears the KV cache of every
// sequence before each chunk, so it must not run beside generations in
// the same context. It returns ErrShortText for fewer than 2×window
// tokens, ctx.Err() when ctx is done, and Decode's errors. The sequence
// is single-use; breaking out of the loop stops it.
func (c *Context) Perplexity(ctx context.Context, tokens []TokenID, opts ...PerplexityOption) iter.Seq2[PerplexityChunk, error] {
	return func(yield func(PerplexityChunk, error) bool) {
		if err := c.perplexity(ctx, tokens, opts, yield); err != nil {
			yield(PerplexityChunk{}, err)
		}
	}
}

func (c *Context) perplexity(ctx context.Context, tokens []TokenID, opts []PerplexityOption,
	yield func(PerplexityChunk, error) bool) error {
	if err := c.lock(); err != nil {
		return err
	}
	nCtx, nCtxSeq, nSeq, nBatch, embeddings := c.nCtx, c.nCtxSeq, c.nSeqMax, c.nBatch, c.embeddings
	c.mu.Unlock()
	if embeddings {
		return invalidArg("perplexity needs a context without embeddings")
	}
	cfg := perplexityConfig{window: nCtx / nSeq}
	for _, o := range opts {
		o(&cfg)
	}
	window := cfg.window
	if window < 4 {
		return invalidArg("perplexity window of %d tokens, want at least 4", window)
	}
	if window > nCtxSeq {
		return fmt.Errorf("%w: a window of %d tokens does not fit the context's %d positions per sequence", ErrContextFull, window, nCtxSeq)
	}
	if len(tokens) < 2*window {
		return fmt.Errorf("%w: %d tokens, a window of %d needs at least %d", ErrShortText, len(tokens), window, 2*window)
	}
	for i, t := range tokens {
		if !c.m.validToken(t) {
			return fmt.Errorf("%w: id %d at index %d, vocabulary has %d tokens", ErrInvalidToken, t, i, c.m.info.nVocab)
		}
	}
	chunks := len(tokens) / window
	if cfg.chunks > 0 {
		chunks = min(chunks, cfg.chunks)
	}
	// Windows decoded together: as many as the batch holds whole, when
	// the context has the sequences (llama-perplexity sizes its context
	// for them); otherwise one window in several batches.
	par := 1
	if nBatch >= 2*window {
		par = max(1, min(nBatch/window, nSeq, nCtx/window))
	}
	perBatch := min(nBatch, window) // positions of a window per decode
	addBOS, bos := c.m.AddsBOS(), c.m.BOS()
	first := window / 2

	b, err := NewBatch(par*perBatch, 1)
	if err != nil {
		return err
	}
	defer b.Close()
	nVocab := c.m.VocabSize()
	logits := make([]float32, nVocab)
	var res PerplexityChunk
	res.Chunks = chunks
	done := make([]PerplexityChunk, par) // the running sums after each window of a step
	for i := 0; i < chunks; i += par {
		start := time.Now()
		n := min(par, chunks-i)
		if err := c.ClearMemory(); err != nil {
			return err
		}
		for j := 0; j < window; j += perBatch {
			size := min(perBatch, window-j)
			b.Clear()
			for s := range n {
				base := (i + s) * window
				for k := range size {
					pos := j + k
					t := tokens[base+pos]
					if pos == 0 && addBOS {
						t = bos
					}
					out := pos >= first && pos < window-1
					if err := b.Add(t, pos, out, s); err != nil {
						return err
					}
				}
			}
			if err := c.Decode(ctx, b); err != nil {
				return err
			}
			for s := range n {
				base := (i + s) * window
				for k := range size {
					pos := j + k
					if pos < first || pos >= window-1 {
						continue
					}
					if err := c.copyLogits(logits, s*size+k); err != nil {
						return err
					}
					next := base + pos + 1
					nll := negLogLikelihood(logits, tokens[next])
					res.NLL += nll
					res.NLL2 += nll * nll
					res.Tokens++
					if cfg.scored != nil {
						if err := cfg.scored(ScoredToken{Chunk: i + s, Pos: next, Next: tokens[next], Logits: logits, NLL: nll}); err != nil {
							return err
						}
					}
				}
				// Several windows in a step are decoded in one batch
				// (perBatch is the whole window), so the sums after
				// window s are the running estimate after chunk i+s.
				done[s] = res
			}
		}
		elapsed := time.Since(start)
		for s := range n {
			r := done[s]
			r.Chunk = i + s + 1
			r.Elapsed = elapsed
			r.PPL, r.Uncertainty = PerplexityOf(r.NLL, r.NLL2, r.Tokens)
			if !yield(r, nil) {
				return nil
			}
		}
	}
	return nil
}

// PerplexityOf returns exp(nll/count) and its standard error from the sum
// of count negative log-likelihoods and of their squares, as
// llama-perplexity computes them.
func PerplexityOf(nll, nll2 float64, count int) (ppl, uncertainty float64) {
	if count == 0 {
		return math.NaN(), math.NaN()
	}
	mean := nll / float64(count)
	ppl = math.Exp(mean)
	v := nll2/float64(count) - mean*mean
	if v <= 0 || count < 2 {
		return ppl, 0
	}
	return ppl, ppl * math.Sqrt(v/float64(count-1))
}

// negLogLikelihood is -log softmax(logits)[t]: the log-sum-exp over the
// vocabulary, shifted by the largest logit, minus t's logit.
func negLogLikelihood(logits []float32, t TokenID) float64 {
	mx := logits[0]
	for _, l := range logits[1:] {
		mx = max(mx, l)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l - mx))
	}
	return float64(mx-logits[t]) + math.Log(sum)
}

// copyLogits copies the logits of batch index i of the last Decode into
// dst, which holds one float per vocabulary entry.
func (c *Context) copyLogits(dst []float32, i int) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if i < 0 || i >= len(c.outputs) || !c.outputs[i] {
		return fmt.Errorf("%w: index %d", ErrNoLogits, i)
	}
	p := C.llama_get_logits_ith(c.c, C.int32_t(i))
	if p == nil {
		return fmt.Errorf("%w: index %d", ErrNoLogits, i)
	}
	copy(dst, unsafe.Slice((*float32)(unsafe.Pointer(p)), c.m.info.nVocab))
	return nil
}
