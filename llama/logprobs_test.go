package llama

import (
	"math"
	"testing"
)

func TestLogSoftmax(t *testing.T) {
	logits := []float32{1, 3, 2, 3, -1}
	lse, top := logSoftmax(logits, 3)
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - lse)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("probabilities sum to %v", sum)
	}
	if len(top) != 3 || top[0].ID != 1 || top[1].ID != 3 || top[2].ID != 2 || top[0].Logprob != top[1].Logprob {
		t.Errorf("top = %+v", top)
	}
	if lp := float64(logits[2]) - lse; math.Abs(lp-top[2].Logprob) > 1e-12 {
		t.Errorf("logprob of 2 = %v, in top %v", lp, top[2].Logprob)
	}
	if _, got := logSoftmax(logits, 0); got != nil {
		t.Errorf("k = 0: %v", got)
	}
}
