package server

import (
	"math"
	"slices"

	"github.com/llamago/llamago/llama"
)

// maxTopLogprobs is the most alternatives a request may ask for per token,
// as OpenAI's top_logprobs.
const maxTopLogprobs = 20

// tokenLogprob is the log-probability of a generated token under the
// model's distribution (the raw logits, before sampling changes them),
// with the most likely alternatives.
type tokenLogprob struct {
	ID      llama.TokenID
	Logprob float64
	Top     []altLogprob // most likely first
}

type altLogprob struct {
	ID      llama.TokenID
	Logprob float64
}

// logSoftmax summarises logits for logprobs: the log of the normalising sum
// (log-sum-exp), and the k tokens with the highest logits.
type logSoftmax struct {
	logits []float32
	lse    float64
	top    []altLogprob
}

// newLogSoftmax computes the log-sum-exp of logits and its top k entries.
// logits is not copied: use the result before the next decode.
func newLogSoftmax(logits []float32, k int) logSoftmax {
	mx := float32(math.Inf(-1))
	for _, l := range logits {
		if l > mx {
			mx = l
		}
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l - mx))
	}
	ls := logSoftmax{logits: logits, lse: float64(mx) + math.Log(sum)}
	if k <= 0 {
		return ls
	}
	// Keep the k best in a small sorted slice: k is at most 20.
	top := make([]altLogprob, 0, k+1)
	for i, l := range logits {
		if len(top) == k && float64(l) <= top[k-1].Logprob {
			continue
		}
		j, _ := slices.BinarySearchFunc(top, float64(l), func(a altLogprob, v float64) int {
			switch {
			case a.Logprob > v:
				return -1
			case a.Logprob < v:
				return 1
			}
			return -1 // equal logits keep the lower id first
		})
		top = slices.Insert(top, j, altLogprob{ID: llama.TokenID(i), Logprob: float64(l)})
		if len(top) > k {
			top = top[:k]
		}
	}
	for i := range top {
		top[i].Logprob -= ls.lse
	}
	ls.top = top
	return ls
}

// of returns the logprob of token t with the top alternatives.
func (ls logSoftmax) of(t llama.TokenID) tokenLogprob {
	lp := math.Inf(-1)
	if int(t) >= 0 && int(t) < len(ls.logits) {
		lp = float64(ls.logits[t]) - ls.lse
	}
	return tokenLogprob{ID: t, Logprob: lp, Top: ls.top}
}
