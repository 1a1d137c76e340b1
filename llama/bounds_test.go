package llama_test

import (
	"errors"
	"strings"
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

// TestContextMemory: a context that cannot fit in the memory available is
// refused at once with the estimate, before llama.cpp allocates its KV
// cache (-c 10000000 on stories260K took 6.7 GB for 22 s, then failed on
// its compute buffers).
func TestContextMemory(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	defer llama.SetMemoryAvailable(256 << 20)()
	c, err := m.NewContext(llama.WithContextSize(10_000_000))
	if err == nil {
		c.Close()
		t.Fatal("a context of 10000000 positions was made in 256 MiB")
	}
	// KV: 10000128 positions × 5 layers × 4 KV heads × 8 values × 2 bytes
	// × K and V = 6.0 GiB; the mask, 6 bytes × 512 × 10000128 = 28.6 GiB.
	if !errors.Is(err, llama.ErrOutOfMemory) || !strings.Contains(err.Error(), "10000128 positions needs about 34.") ||
		!strings.Contains(err.Error(), "KV cache 6.0 GiB") || !strings.Contains(err.Error(), "256.0 MiB is available") {
		t.Errorf("NewContext: %v", err)
	}
	c, err = m.NewContext(llama.WithContextSize(2048), llama.WithThreads(1))
	if err != nil {
		t.Fatalf("a context of 2048 positions in 256 MiB: %v", err)
	}
	c.Close()
}
