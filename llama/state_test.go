package llama_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// TestSequenceStateFile: a sequence saved to a file in llama.cpp's format
// continues in another sequence of another context; files that are not
// such states, or are hostile, are refused and the context goes on working.
func TestSequenceStateFile(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	// A sequence state holds every KV stream: the contexts have as many.
	c1 := newContext(t, m, llama.WithSequences(2))
	const text = "Once upon a time there was a dog"
	prompt, _ := m.Tokenize(text, llama.AddSpecial)
	if _, err := c1.Complete(context.Background(), text, llama.WithMaxTokens(1), llama.WithSampling(llama.WithGreedy())); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "seq.bin")
	if err := c1.SaveSequenceStateFile(path, 0, prompt); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	more, _ := m.Tokenize(" named Max", 0)
	next := append(slices.Clone(prompt), more...)
	want, _ := continueText(t, c1, next)

	c2 := newContext(t, m, llama.WithSequences(2))
	got, err := c2.LoadSequenceStateFile(path, 1)
	if err != nil || !slices.Equal(got, prompt) {
		t.Fatalf("LoadSequenceStateFile: %v, %v; want %v", got, err, prompt)
	}
	var out string
	var st llama.Stats
	// Sequence 1, which holds the prompt, is the free one Generate takes.
	for tok, err := range c2.GenerateTokens(context.Background(), next,
		llama.WithMaxTokens(12), llama.WithSampling(llama.WithGreedy()), llama.WithStats(&st)) {
		if err != nil {
			t.Fatal(err)
		}
		out += tok.Text
	}
	if out != want || st.CachedTokens != len(prompt) {
		t.Errorf("continued from the file: %q with %d tokens cached, want %q with %d", out, st.CachedTokens, want, len(prompt))
	}

	bad := func(name, says string, mod func(b []byte) []byte) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "bad.bin")
		if err := os.WriteFile(p, mod(bytes.Clone(orig)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := c2.LoadSequenceStateFile(p, 0); !errors.Is(err, llama.ErrStateMismatch) || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want ErrStateMismatch saying %q", name, err, says)
		}
	}
	state := 12 + 4*len(prompt) // magic, version, token count, tokens
	bad("not a state", "not a sequence state", func(b []byte) []byte { return []byte("hello") })
	bad("wrong magic", "not a sequence state", func(b []byte) []byte { b[0] ^= 1; return b })
	bad("tokens beyond the file", "holds 1048576 tokens", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 1<<20); return b })
	bad("truncated", "could not load", func(b []byte) []byte { return b[:len(b)-7] })
	if llama.BuildInfo().System {
		// The layout of an installed llama.cpp's states is not checked (it
		// may be another version's): a cell count of billions, which
		// random damage can make too, would make it allocate tens of
		// gigabytes.
		return
	}
	// A cell count of billions would make llama.cpp allocate tens of
	// gigabytes before it checks it.
	bad("4 billion cells", "4294967280 cells", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[state+4:], 0xfffffff0); return b }) // stream 0 holds sequence 0

	// Random damage: refused or loaded, never a crash. Then the context
	// still works.
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		b := bytes.Clone(orig)
		for range 1 + r.IntN(3) {
			off := r.IntN(min(len(b), state+64))
			if r.IntN(2) == 0 {
				off = r.IntN(len(b))
			}
			b[off] ^= byte(1 << r.IntN(8))
		}
		p := filepath.Join(t.TempDir(), fmt.Sprintf("damaged%d.bin", i))
		os.WriteFile(p, b, 0o644)
		c2.LoadSequenceStateFile(p, 0)
	}
	// The context still works.
	c2.ClearMemory()
	if again, _ := continueText(t, c2, next); again != want {
		t.Errorf("after the bad files: %q, want %q", again, want)
	}
}
