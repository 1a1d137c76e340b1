package server

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/llamago/llamago/llama"
)

// scoreBatch is the tokens the scorer decodes at once: each needs logits
// over the whole vocabulary, so the batch stays small.
const scoreBatch = 64

// scorer computes the log-probabilities of prompt tokens, for text
// completions with echo and logprobs, as OpenAI returns them (the first
// token has none). It uses a context of its own, made on first use, of
// one sequence of SlotContext positions; requests take turns, and
// generation goes on meanwhile in the engine's context.
type scorer struct {
	mu   sync.Mutex
	m    *llama.Model
	size int
	opts []llama.ContextOption
	c    *llama.Context
	b    *llama.Batch
	err  error
}

func newScorer(m *llama.Model, size int, opts []llama.ContextOption) *scorer {
	return &scorer{m: m, size: size, opts: opts}
}

func (sc *scorer) init() error {
	if sc.c != nil || sc.err != nil {
		return sc.err
	}
	opts := append(slices.Clone(sc.opts),
		llama.WithContextSize(sc.size), llama.WithBatchSize(scoreBatch), llama.WithUBatchSize(scoreBatch), llama.WithSequences(1))
	c, err := sc.m.NewContext(opts...)
	if err != nil {
		sc.err = fmt.Errorf("could not make the scoring context: %w", err)
		return sc.err
	}
	b, err := llama.NewBatch(scoreBatch, 1)
	if err != nil {
		c.Close()
		sc.err = err
		return err
	}
	sc.c, sc.b = c, b
	return nil
}

// score returns the log-probability of each token of toks after the ones
// before it, with the top most likely alternatives; the first token's is
// marked none.
func (sc *scorer) score(ctx context.Context, toks []llama.TokenID, top int) ([]tokenLogprob, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if err := sc.init(); err != nil {
		return nil, internalError(err)
	}
	if err := sc.c.ClearMemory(); err != nil {
		return nil, err
	}
	out := make([]tokenLogprob, len(toks))
	out[0] = tokenLogprob{ID: toks[0], none: true}
	// The last token's logits predict nothing asked for.
	for start := 0; start < len(toks)-1; start += scoreBatch {
		end := min(start+scoreBatch, len(toks)-1)
		sc.b.Clear()
		for p := start; p < end; p++ {
			if err := sc.b.Add(toks[p], p, true, 0); err != nil {
				return nil, err
			}
		}
		if err := sc.c.Decode(ctx, sc.b); err != nil {
			return nil, err
		}
		for p := start; p < end; p++ {
			logits, err := sc.c.Logits(p - start)
			if err != nil {
				return nil, err
			}
			next := toks[p+1]
			lse, alts := logSoftmax(logits, top)
			out[p+1] = tokenLogprob{ID: next, Logprob: float64(logits[next]) - lse, Top: alts}
		}
	}
	return out, nil
}

// logSoftmax returns log-sum-exp of logits and the k most likely tokens
// with their log-probabilities, most likely first.
func logSoftmax(logits []float32, k int) (float64, []llama.TokenLogprob) {
	mx := float32(math.Inf(-1))
	for _, l := range logits {
		mx = max(mx, l)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l - mx))
	}
	lse := float64(mx) + math.Log(sum)
	if k <= 0 {
		return lse, nil
	}
	var top []llama.TokenLogprob
	for i, l := range logits {
		if len(top) == k && float64(l) <= top[k-1].Logprob {
			continue
		}
		j, _ := slices.BinarySearchFunc(top, float64(l), func(a llama.TokenLogprob, v float64) int {
			if a.Logprob < v {
				return 1
			}
			return -1
		})
		top = slices.Insert(top, j, llama.TokenLogprob{ID: llama.TokenID(i), Logprob: float64(l)})
		if len(top) > k {
			top = top[:k]
		}
	}
	for i := range top {
		top[i].Logprob -= lse
	}
	return lse, top
}

func (sc *scorer) close() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.c != nil {
		sc.b.Close()
		sc.c.Close()
		sc.c, sc.b = nil, nil
	}
	sc.err = errShutdown
}
