package llama

/*
#include "llama.h"
*/
import "C"

import (
	"math"
	"slices"
	"unsafe"
)

// TokenLogprob is a token with its log-probability.
type TokenLogprob struct {
	ID      TokenID
	Logprob float64
}

// WithLogprobs makes each generated Token carry the log-probability of its
// token under the model's distribution (the logits before the sampler
// changes them), and the top most likely tokens with theirs (0 for none).
func WithLogprobs(top int) GenerateOption {
	return func(c *generateConfig) { c.logprobs, c.topLogprobs = true, top }
}

// maxTopLogprobs bounds WithLogprobs' alternatives per token.
const maxTopLogprobs = 1000

// logprobs fills t's log-probabilities from the logits at batch index i;
// the caller holds c.mu.
func (c *Context) logprobs(t *Token, i, top int) {
	p := C.llama_get_logits_ith(c.c, C.int32_t(i))
	if p == nil {
		return
	}
	logits := unsafe.Slice((*float32)(unsafe.Pointer(p)), c.m.info.nVocab)
	lse, alts := logSoftmax(logits, top)
	t.Logprob = float64(logits[t.ID]) - lse
	t.TopLogprobs = alts
}

// logSoftmax returns the log of the normalising sum of logits
// (log-sum-exp) and the k tokens with the highest logits, most likely
// first, with their log-probabilities.
func logSoftmax(logits []float32, k int) (lse float64, top []TokenLogprob) {
	mx := float32(math.Inf(-1))
	for _, l := range logits {
		mx = max(mx, l)
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l - mx))
	}
	lse = float64(mx) + math.Log(sum)
	if k <= 0 {
		return lse, nil
	}
	// Keep the k best in a small sorted slice.
	top = make([]TokenLogprob, 0, k+1)
	for i, l := range logits {
		if len(top) == k && float64(l) <= top[k-1].Logprob {
			continue
		}
		j, _ := slices.BinarySearchFunc(top, float64(l), func(a TokenLogprob, v float64) int {
			if a.Logprob < v {
				return 1
			}
			return -1 // equal logits keep the lower id first
		})
		top = slices.Insert(top, j, TokenLogprob{ID: TokenID(i), Logprob: float64(l)})
		if len(top) > k {
			top = top[:k]
		}
	}
	for i := range top {
		top[i].Logprob -= lse
	}
	return lse, top
}
