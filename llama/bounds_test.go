package llama_test

import (
	"errors"
	"testing"

	"github.com/llamago/llamago/llama"
)

// TestPenaltyWindows: penalty windows beyond MaxSamplerWindow are refused
// before llama.cpp allocates them (it truncated those above 2³¹ to 32
// bits), and a window of -1 means the context, not "off".
func TestPenaltyWindows(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	for name, o := range map[string]llama.SamplerOption{
		"repeat window":      llama.WithPenalties(llama.MaxSamplerWindow+1, 1.1, 0, 0),
		"repeat window 2^32": llama.WithPenalties(1<<32+10, 1.1, 0, 0),
		"DRY window":         llama.WithDRY(0.8, 1.75, 2, 1<<32+10, nil),
		"context size":       llama.WithSamplerContextSize(1 << 32),
		"negative context":   llama.WithSamplerContextSize(-5),
	} {
		if s, err := m.NewSampler(o); !errors.Is(err, llama.ErrInvalidArgument) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s: NewSampler = %v, want ErrInvalidArgument", name, err)
		}
	}

	c := newContext(t, m)
	gen := func(lastN int) string {
		return mustGenerate(t, c, storiesPrompt, llama.WithMaxTokens(100),
			llama.WithSampling(llama.WithGreedy(), llama.WithPenalties(lastN, 3, 0, 0))).text
	}
	off, whole, ctx := gen(0), gen(c.SequenceContextSize()), gen(-1)
	if whole == off {
		t.Fatalf("a repeat penalty over the context changed nothing: %q", off)
	}
	if ctx != whole {
		t.Errorf("window -1 gives\n%q\nwant the context's window's\n%q", ctx, whole)
	}
}
