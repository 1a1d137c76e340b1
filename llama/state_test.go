package llama_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/llamago/llamago/llama"
)

// continueText generates greedily after prompt in c and returns the text and
// stats.
func continueText(t *testing.T, c *llama.Context, prompt []llama.TokenID) (string, llama.Stats) {
	t.Helper()
	var st llama.Stats
	var text string
	for tok, err := range c.GenerateTokens(context.Background(), prompt,
		llama.WithMaxTokens(12), llama.WithSampling(llama.WithGreedy()), llama.WithStats(&st)) {
		if err != nil {
			t.Fatal(err)
		}
		text += tok.Text
	}
	return text, st
}

func TestSequenceStateRoundTrip(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c1 := newContext(t, m)
	prompt, err := m.Tokenize("Once upon a time there was a dog", llama.AddSpecial)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Complete(context.Background(), "Once upon a time there was a dog", llama.WithMaxTokens(1), llama.WithSampling(llama.WithGreedy())); err != nil {
		t.Fatal(err)
	}
	cached, ok := c1.SequenceTokens(0)
	if !ok || !slices.Equal(cached, prompt) {
		t.Fatalf("SequenceTokens = %v, %v; want the prompt %v", cached, ok, prompt)
	}
	data, err := c1.SaveSequenceState(0)
	if err != nil {
		t.Fatal(err)
	}

	// A longer prompt continues the cached one.
	more, _ := m.Tokenize(" named Max", 0)
	next := append(slices.Clone(prompt), more...)
	want, st1 := continueText(t, c1, next)
	if st1.CachedTokens != len(prompt) {
		t.Fatalf("original context cached %d tokens, want %d", st1.CachedTokens, len(prompt))
	}

	c2 := newContext(t, m)
	if err := c2.LoadSequenceState(0, data); err != nil {
		t.Fatal(err)
	}
	if got, ok := c2.SequenceTokens(0); !ok || !slices.Equal(got, prompt) {
		t.Fatalf("restored SequenceTokens = %v, %v", got, ok)
	}
	got, st2 := continueText(t, c2, next)
	if st2.CachedTokens != len(prompt) {
		t.Errorf("restored context cached %d tokens, want %d", st2.CachedTokens, len(prompt))
	}
	if got != want {
		t.Errorf("restored continuation %q, want %q", got, want)
	}

	// Another model, corrupt bytes and truncation are refused.
	other := loadModel(t, "llama-2-tiny-random.gguf")
	oc := newContext(t, other)
	if err := oc.LoadSequenceState(0, data); !errors.Is(err, llama.ErrStateMismatch) {
		t.Errorf("load into another model: %v, want ErrStateMismatch", err)
	}
	bad := slices.Clone(data)
	bad[len(bad)-1] ^= 0xff
	for name, d := range map[string][]byte{"flipped": bad, "truncated": data[:len(data)/2], "empty": nil, "header only": data[:20]} {
		if err := c2.LoadSequenceState(0, d); !errors.Is(err, llama.ErrStateMismatch) {
			t.Errorf("%s: %v, want ErrStateMismatch", name, err)
		}
	}
	if err := c2.LoadSequenceState(99, data); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("bad sequence: %v", err)
	}
}

func TestWholeStateAndFile(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c1 := newContext(t, m)
	prompt, _ := m.Tokenize("Once upon a time", llama.AddSpecial)
	want, _ := continueText(t, c1, prompt)
	data, err := c1.SaveState()
	if err != nil {
		t.Fatal(err)
	}
	c2 := newContext(t, m)
	if err := c2.LoadState(data); err != nil {
		t.Fatal(err)
	}
	lo, hi, err := c2.PositionRange(0)
	if err != nil || lo != 0 || hi < len(prompt)-1 {
		t.Fatalf("restored positions [%d, %d], %v", lo, hi, err)
	}

	path := filepath.Join(t.TempDir(), "session.bin")
	if err := c1.SaveStateFile(path, prompt); err != nil {
		t.Fatal(err)
	}
	c3 := newContext(t, m)
	c3.ClearMemory()
	// Only the prompt's tokens are saved with the file; drop the rest of c1's cache first.
	got, err := c3.LoadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, prompt) {
		t.Fatalf("LoadStateFile tokens %v, want %v", got, prompt)
	}
	if _, err := c3.LoadStateFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing state file loaded")
	}
	// A fresh context restored from the whole state continues as the original did.
	c4 := newContext(t, m)
	if err := c4.LoadState(data); err != nil {
		t.Fatal(err)
	}
	again, _ := continueText(t, c4, prompt)
	if again != want {
		t.Errorf("after LoadState: %q, want %q", again, want)
	}
}
