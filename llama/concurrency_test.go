package llama_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llamago/llamago/llama"
)

// saneError reports whether err is one the package documents.
func saneError(err error) bool {
	var de *llama.DecodeError
	for _, e := range []error{llama.ErrClosed, llama.ErrContextFull, llama.ErrInvalidToken, llama.ErrInvalidArgument,
		llama.ErrNoLogits, llama.ErrBatchFull, context.Canceled} {
		if errors.Is(err, e) {
			return true
		}
	}
	return errors.As(err, &de)
}

// TestConcurrentContexts: one Model, four Contexts generating at once, and
// tokenization on the Model meanwhile.
func TestConcurrentContexts(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	want := mustGenerate(t, newContext(t, m), storiesPrompt, greedy(60)...)
	wantIDs, _ := m.Tokenize(longStoriesPrompt, llama.AddSpecial)

	const n = 4
	ctxs := make([]*llama.Context, n)
	for i := range ctxs {
		ctxs[i] = newContext(t, m)
	}
	var gen sync.WaitGroup
	texts := make([]string, n)
	errs := make([]error, n)
	for i, c := range ctxs {
		gen.Go(func() {
			for range 3 {
				var b []byte
				for tok, err := range c.Generate(context.Background(), storiesPrompt, greedy(60)...) {
					if err != nil {
						errs[i] = err
						return
					}
					b = append(b, tok.Text...)
				}
				if texts[i] != "" && texts[i] != string(b) {
					errs[i] = fmt.Errorf("runs differ: %q, %q", texts[i], b)
					return
				}
				texts[i] = string(b)
			}
		})
	}
	done := make(chan struct{})
	var tok sync.WaitGroup
	tokErrs := make(chan error, 2)
	for range 2 {
		tok.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				ids, err := m.Tokenize(longStoriesPrompt, llama.AddSpecial)
				if err != nil || !slices.Equal(ids, wantIDs) {
					tokErrs <- fmt.Errorf("Tokenize during generation: %v %v", ids, err)
					return
				}
				if s, err := m.Detokenize(ids, true, false); err != nil || s != " "+longStoriesPrompt {
					tokErrs <- fmt.Errorf("Detokenize during generation: %q %v", s, err)
					return
				}
				if p, err := m.TokenToPiece(403, false); err != nil || p != " Once" || !m.IsEOG(2) {
					tokErrs <- fmt.Errorf("TokenToPiece during generation: %q %v", p, err)
					return
				}
				if a, ok := m.Metadata("general.architecture"); !ok || a != "llama" {
					tokErrs <- fmt.Errorf("Metadata during generation: %q", a)
					return
				}
			}
		})
	}
	gen.Wait()
	close(done)
	tok.Wait()
	close(tokErrs)
	for err := range tokErrs {
		t.Error(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("context %d: %v", i, errs[i])
		} else if texts[i] != want.text {
			t.Errorf("context %d: %q, want %q", i, texts[i], want.text)
		}
	}
}

// TestSameContextMisuse: two goroutines using one Context at once get
// muddled output, but no crash, no data race and only documented errors;
// the context works normally afterwards.
func TestSameContextMisuse(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	want := mustGenerate(t, newContext(t, m), storiesPrompt, greedy(40)...)
	s, err := m.NewSampler(llama.WithGreedy())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 2 {
		// Generate, with its own sampler and with a shared one.
		wg.Go(func() {
			for i := range 5 {
				opts := greedy(30)
				if i%2 == 1 {
					opts = append(opts, llama.WithSampler(s))
				}
				for _, err := range c.Generate(context.Background(), storiesPrompt, opts...) {
					if err != nil {
						errs <- err
					}
				}
			}
		})
		// Decode and Sample by hand in the same sequence, and the shared
		// batch from both goroutines.
		wg.Go(func() {
			b, _ := llama.NewBatch(4, 1)
			defer b.Close()
			for i := range 20 {
				b.Clear()
				b.Add(1, i%3, false)
				b.Add(403, i%3+1, true)
				if err := c.Decode(context.Background(), b); err != nil {
					errs <- err
				}
				if _, err := s.Sample(c, -1); err != nil {
					errs <- err
				}
				if _, err := c.Logits(-1); err != nil {
					errs <- err
				}
				if g == 0 {
					c.RemoveTokens(0, 2, -1)
				} else {
					c.ClearMemory()
				}
			}
		})
	}
	shared, _ := llama.NewBatch(8, 1)
	defer shared.Close()
	for range 2 {
		wg.Go(func() {
			for i := range 50 {
				if err := shared.Add(1, i, true); err != nil && !errors.Is(err, llama.ErrBatchFull) {
					errs <- err
				}
				if i%5 == 0 {
					shared.Clear()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		n++
		if !saneError(err) {
			t.Errorf("unexpected error: %v", err)
		}
	}
	t.Logf("%d (sane) errors from the misuse", n)

	if err := c.ClearMemory(); err != nil {
		t.Fatal(err)
	}
	if r := mustGenerate(t, c, storiesPrompt, greedy(40)...); r.text != want.text {
		t.Errorf("after the misuse: %q, want %q", r.text, want.text)
	}
}

// TestCloseDuringGeneration closes the Model while a generation runs in
// another goroutine: the generation completes or ends with ErrClosed.
// Each round uses a fresh model, so Close may also meet the first use of
// its piece cache.
func TestCloseDuringGeneration(t *testing.T) {
	for round := range 12 {
		name := "stories260K.gguf"
		if round%2 == 1 {
			name = "llama-2-tiny-random.gguf"
		}
		m, err := llama.Load(context.Background(), modelPath(t, name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan struct{})
		result := make(chan error, 1)
		go func() {
			var last error
			n := 0
			for _, err := range c.Generate(context.Background(), "Once upon a time", llama.WithMaxTokens(200),
				llama.WithSampling(llama.WithSeed(uint32(round)))) {
				if n++; n == 1 {
					close(started)
				}
				if err != nil {
					last = err
				}
			}
			if n == 0 {
				close(started)
			}
			result <- last
		}()
		switch round % 3 {
		case 0: // at once
		case 1:
			<-started
		case 2:
			time.Sleep(time.Duration(round) * 100 * time.Microsecond)
		}
		// Tokenize and Close race as well.
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 20 {
				if _, err := m.Tokenize("Once upon a time", llama.AddSpecial); err != nil && !errors.Is(err, llama.ErrClosed) {
					t.Errorf("Tokenize during Close: %v", err)
				}
			}
		})
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		select {
		case err := <-result:
			if err != nil && !errors.Is(err, llama.ErrClosed) {
				t.Errorf("round %d: generation ended with %v, want nil or ErrClosed", round, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: generation did not end after Close", round)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Context.Close after Model.Close: %v", err)
		}
	}
}

// TestConcurrentContextLifecycle creates, uses and closes contexts and
// samplers in several goroutines on one model while it also generates.
func TestConcurrentContextLifecycle(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for range 5 {
				c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
				if err != nil {
					t.Errorf("NewContext: %v", err)
					return
				}
				res, err := c.Complete(context.Background(), storiesPrompt, greedy(10)...)
				if err != nil || res.Text != storiesPrefix[:len(res.Text)] {
					t.Errorf("Complete: %q %v", res.Text, err)
				}
				c.Close()
				c.Close()
			}
		})
	}
	wg.Wait()
}

// TestCloseContextDuringCancellableGeneration closes a Context from another
// goroutine while a generation with a cancellable context runs in it, and
// cancels that context afterwards: the generation ends with ErrClosed (or
// completes), without a data race on the abort flag, a write to freed
// memory or a nil dereference in the goroutine that watches the context.
func TestCloseContextDuringCancellableGeneration(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	for round := range 20 {
		c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		started := make(chan struct{})
		result := make(chan error, 1)
		go func() {
			var last error
			n := 0
			for _, err := range c.Generate(ctx, storiesPrompt, greedy(100)...) {
				if n++; n == 1 {
					close(started)
				}
				if err != nil {
					last = err
				}
			}
			if n == 0 {
				close(started)
			}
			result <- last
		}()
		switch round % 3 {
		case 1:
			<-started
		case 2:
			time.Sleep(time.Duration(round) * 50 * time.Microsecond)
		}
		c.Close()
		cancel()
		select {
		case err := <-result:
			if err != nil && !errors.Is(err, llama.ErrClosed) && !errors.Is(err, context.Canceled) {
				t.Errorf("round %d: generation ended with %v, want nil, ErrClosed or context.Canceled", round, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: generation did not end after Close", round)
		}
	}
}
