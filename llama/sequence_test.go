package llama_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// seqJob is one generation of the batching tests.
type seqJob struct {
	prompt string
	opts   []llama.GenerateOption
	delay  time.Duration // before it starts, so that it joins the others mid-way
}

// seqJobs are prompts of different lengths with different stop conditions.
func seqJobs() []seqJob {
	return []seqJob{
		{prompt: storiesPrompt, opts: greedy(60)},
		{prompt: longStoriesPrompt, opts: greedy(45)},
		{prompt: "The little dog", opts: append(greedy(80), llama.WithStop("."))},
		{prompt: "Lily and Tom went to the park. They saw a big", opts: greedy(30), delay: 20 * time.Millisecond},
		{prompt: "One day", opts: append(greedy(70), llama.WithStop("happy", "sad")), delay: 5 * time.Millisecond},
	}
}

// runAlone generates each job by itself in a fresh Sequence of c.
func runAlone(t *testing.T, c *llama.Context, jobs []seqJob) []run {
	t.Helper()
	out := make([]run, len(jobs))
	for i, j := range jobs {
		q, err := c.NewSequence()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = collect(t, q.Generate(context.Background(), j.prompt, append(slices.Clip(j.opts), llama.WithStats(&out[i].stats))...), &out[i])
		if out[i].err != nil {
			t.Fatalf("alone %d: %v", i, out[i].err)
		}
		q.Close()
	}
	return out
}

// runTogether generates the jobs at once, each in a Sequence of c from a
// goroutine of its own.
func runTogether(t *testing.T, c *llama.Context, jobs []seqJob) []run {
	t.Helper()
	out := make([]run, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		q, err := c.NewSequence()
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		wg.Go(func() {
			time.Sleep(j.delay)
			var r run
			out[i] = collect(t, q.Generate(context.Background(), j.prompt, append(slices.Clip(j.opts), llama.WithStats(&r.stats))...), &r)
		})
	}
	wg.Wait()
	return out
}

// nearTie is the gap between the two best logits under which batching may
// pick the other one. llama.cpp's CPU matrix products compute a lone
// token (a generating sequence decoded alone) with ggml's dot products and
// several tokens at once with llamafile's sgemm, which sum in another
// order: on stories260K the logits of a token decoded next to another
// sequence's differ from its logits decoded alone by up to 3e-3.
const nearTie = 0.02

// logitGaps replays a generation made alone in a fresh context made with
// opts: its prompt in one batch, then its tokens one at a time, as
// Generate decodes them, and returns the gap between the two best logits
// before each token.
func logitGaps(t *testing.T, m *llama.Model, opts []llama.ContextOption, prompt string, ids []llama.TokenID) []float32 {
	t.Helper()
	c := newContext(t, m, opts...)
	toks, err := m.Tokenize(prompt, llama.AddSpecial|llama.ParseSpecial)
	if err != nil {
		t.Fatal(err)
	}
	b, err := llama.NewBatch(c.BatchSize(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var gaps []float32
	for i := range ids {
		b.Clear()
		if i == 0 {
			for j, tk := range toks {
				b.Add(tk, j, j == len(toks)-1)
			}
		} else {
			b.Add(ids[i-1], len(toks)+i-1, true)
		}
		if err := c.Decode(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		l, err := c.Logits(-1)
		if err != nil {
			t.Fatal(err)
		}
		first, second := float32(-1e30), float32(-1e30)
		for _, v := range l {
			if v > first {
				first, second = v, first
			} else if v > second {
				second = v
			}
		}
		gaps = append(gaps, first-second)
	}
	return gaps
}

// checkSameAsAlone compares a generation made together with others with
// the same generation made alone: their tokens must be the same, or
// differ first where the alone logits were a near tie.
func checkSameAsAlone(t *testing.T, m *llama.Model, opts []llama.ContextOption, name, prompt string, alone, together run) (same bool) {
	t.Helper()
	if together.err != nil {
		t.Errorf("%s together: %v", name, together.err)
		return false
	}
	k := 0
	for k < len(alone.ids) && k < len(together.ids) && alone.ids[k] == together.ids[k] {
		k++
	}
	if k == len(alone.ids) && k == len(together.ids) {
		if alone.text != together.text || alone.stats.StopReason != together.stats.StopReason {
			t.Errorf("%s together: %q (%v), alone: %q (%v)", name, together.text, together.stats.StopReason, alone.text, alone.stats.StopReason)
		}
		return true
	}
	if k == len(alone.ids) {
		t.Errorf("%s together goes on after the end alone (%v): %q, alone %q", name, alone.stats.StopReason, together.text, alone.text)
		return false
	}
	gaps := logitGaps(t, m, opts, prompt, alone.ids)
	if gaps[k] >= nearTie {
		t.Errorf("%s together differs from alone at token %d, where the best logit led by %g: %q, alone %q", name, k, gaps[k], together.text, alone.text)
		return false
	}
	t.Logf("%s together differs from alone at token %d, a near tie (the best logit led by %g)", name, k, gaps[k])
	return false
}

// TestBatchedEqualsAlone: sequences generated together, batched into
// shared decodes, give each the greedy output it gives alone, whatever
// their prompt lengths, stop conditions and start times; but for a token
// whose two best logits are closer than batching's rounding differences,
// after which the two may go separate ways (see nearTie).
func TestBatchedEqualsAlone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model func(t *testing.T) *llama.Model
	}{
		{"stories260K", func(t *testing.T) *llama.Model { return loadModel(t, "stories260K.gguf") }},
		{"synthetic tiny", func(t *testing.T) *llama.Model { return testllama.Synth(t, "tiny") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.model(t)
			jobs := seqJobs()
			opts := []llama.ContextOption{llama.WithSequences(len(jobs))}
			alone := runAlone(t, newContext(t, m, opts...), jobs)
			c := newContext(t, m, opts...)
			together := runTogether(t, c, jobs)
			same := 0
			for i, j := range jobs {
				if checkSameAsAlone(t, m, opts, fmt.Sprintf("job %d", i), j.prompt, alone[i], together[i]) {
					same++
				}
			}
			t.Logf("%d of %d jobs gave the same tokens together as alone", same, len(jobs))
			if n := llama.WidestStep(c); n < 3 {
				t.Errorf("at most %d sequences were decoded together", n)
			}
			t.Logf("widest step: %d sequences; stop reasons %v %v %v %v %v", llama.WidestStep(c), together[0].stats.StopReason,
				together[1].stats.StopReason, together[2].stats.StopReason, together[3].stats.StopReason, together[4].stats.StopReason)
		})
	}
}

// TestPooledGenerate: Context.Generate from several goroutines takes a free
// sequence each, batched like Sequences; later, each prompt finds the
// sequence whose cache holds it.
func TestPooledGenerate(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	jobs := seqJobs()[:4]
	opts := []llama.ContextOption{llama.WithSequences(4)}
	alone := runAlone(t, newContext(t, m, opts...), jobs)
	c := newContext(t, m, opts...)
	got := make([]run, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { got[i] = generate(t, c, context.Background(), j.prompt, j.opts...) })
	}
	wg.Wait()
	for i, j := range jobs {
		checkSameAsAlone(t, m, opts, fmt.Sprintf("job %d", i), j.prompt, alone[i], got[i])
		// A sequence freed by an earlier job may share BOS.
		if got[i].stats.CachedTokens > 1 {
			t.Errorf("job %d: %d tokens cached", i, got[i].stats.CachedTokens)
		}
	}
	if n := llama.WidestStep(c); n < 2 {
		t.Errorf("at most %d sequences were decoded together", n)
	}
	// One at a time, each prompt goes to the sequence that holds it, even
	// the first, which two sequences hold (it begins the second prompt).
	for i, j := range jobs {
		r := generate(t, c, context.Background(), j.prompt, j.opts...)
		checkSameAsAlone(t, m, opts, fmt.Sprintf("again, job %d", i), j.prompt, alone[i], r)
		if r.stats.CachedTokens != r.stats.PromptTokens-1 {
			t.Errorf("again, job %d: %d of %d prompt tokens cached", i, r.stats.CachedTokens, r.stats.PromptTokens)
		}
	}
}

// TestCancelOneSequence: cancelling one generation ends it at once and
// leaves the others' tokens alone.
func TestCancelOneSequence(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	jobs := seqJobs()[:3]
	opts := []llama.ContextOption{llama.WithSequences(3)}
	alone := runAlone(t, newContext(t, m, opts...), jobs)
	c := newContext(t, m, llama.WithSequences(3))
	got := make([]run, len(jobs))
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i, j := range jobs {
		q, err := c.NewSequence()
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		wg.Go(func() {
			gctx := context.Background()
			if i == 1 {
				gctx = ctx
			}
			n := 0
			var r run
			opts := append(slices.Clip(j.opts), llama.WithStats(&r.stats))
			for tok, err := range q.Generate(gctx, j.prompt, opts...) {
				if err != nil {
					r.err = err
					continue
				}
				if tok.ID != llama.NullToken {
					r.ids = append(r.ids, tok.ID)
				}
				r.text += tok.Text
				if n++; i == 1 && n == 5 {
					cancel()
				}
			}
			got[i] = r
		})
	}
	wg.Wait()
	for i := range jobs {
		if i == 1 {
			if !errors.Is(got[i].err, context.Canceled) || len(got[i].ids) != 5 || got[i].stats.StopReason != llama.StopCancelled {
				t.Errorf("cancelled job: %d tokens, %v, %v", len(got[i].ids), got[i].err, got[i].stats.StopReason)
			}
			continue
		}
		checkSameAsAlone(t, m, opts, fmt.Sprintf("job %d", i), jobs[i].prompt, alone[i], got[i])
	}
}

// TestSequenceMisuse: a second generation in a busy sequence, Close from
// inside the generating loop, and Close of the Context during generations.
func TestSequenceMisuse(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithSequences(2))
	q, err := c.NewSequence()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var errs []error
	for _, err := range q.Generate(context.Background(), storiesPrompt, greedy(50)...) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n++; n == 3 {
			r := collect(t, q.Generate(context.Background(), storiesPrompt, greedy(5)...), &run{})
			if !errors.Is(r.err, llama.ErrBusy) {
				t.Errorf("Generate in a busy sequence: %v, want ErrBusy", r.err)
			}
			if err := q.Clear(); !errors.Is(err, llama.ErrBusy) {
				t.Errorf("Clear of a busy sequence: %v, want ErrBusy", err)
			}
			if err := q.Close(); err != nil { // from inside the loop: no deadlock
				t.Fatal(err)
			}
		}
	}
	if n != 3 || len(errs) != 1 || !errors.Is(errs[0], llama.ErrClosed) {
		t.Errorf("closed during its generation: %d tokens, errors %v; want 3 and ErrClosed", n, errs)
	}
	if _, hi, _ := c.PositionRange(q.ID()); hi != -1 {
		t.Errorf("the closed sequence holds positions up to %d", hi)
	}

	// Close of the Context ends every generation with ErrClosed.
	var wg sync.WaitGroup
	started := make(chan struct{}, 2)
	results := make(chan error, 2)
	for range 2 {
		q, err := c.NewSequence()
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			var last error
			first := true
			for _, err := range q.Generate(context.Background(), storiesPrompt, llama.WithMaxTokens(400)) {
				if first {
					started <- struct{}{}
					first = false
				}
				last = err
			}
			results <- last
		})
	}
	<-started
	<-started
	c.Close()
	wg.Wait()
	close(results)
	for err := range results {
		if !errors.Is(err, llama.ErrClosed) {
			t.Errorf("generation during Close ended with %v, want ErrClosed", err)
		}
	}
	if _, err := c.NewSequence(); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("NewSequence after Close: %v", err)
	}
}

// TestSequencesStress: many goroutines take sequences, generate, cancel,
// break and close at once (run it with -race). Every generation ends with
// a documented outcome, and once every Sequence is closed the cache is
// empty. Then the Context closes under generations still running.
func TestSequencesStress(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	const nSeq = 4
	c := newContext(t, m, llama.WithSequences(nSeq), llama.WithContextSize(1024))
	prompts := []string{storiesPrompt, longStoriesPrompt, "The little dog", "One day"}
	var wg sync.WaitGroup
	work := func(w int, rounds int) {
		rng := rand.New(rand.NewPCG(uint64(w), 1))
		for range rounds {
			q, err := c.NewSequence()
			if errors.Is(err, llama.ErrNoSequence) {
				time.Sleep(time.Millisecond)
				continue
			}
			if errors.Is(err, llama.ErrClosed) {
				return
			}
			if err != nil {
				t.Errorf("NewSequence: %v", err)
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(30))*time.Millisecond)
			brk := rng.IntN(40)
			n := 0
			for _, err := range q.Generate(ctx, prompts[rng.IntN(len(prompts))], llama.WithMaxTokens(1+rng.IntN(40)),
				llama.WithSampling(llama.WithSeed(uint32(w)))) {
				if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, llama.ErrClosed) {
					t.Errorf("worker %d: %v", w, err)
				}
				if n++; n == brk {
					break
				}
			}
			cancel()
			if rng.IntN(3) == 0 {
				// Another round in the same sequence reuses its cache.
				for _, err := range q.Generate(context.Background(), prompts[0], greedy(5)...) {
					if err != nil && !errors.Is(err, llama.ErrClosed) {
						t.Errorf("worker %d, again: %v", w, err)
					}
				}
			}
			q.Close()
		}
	}
	for w := range 8 {
		wg.Go(func() { work(w, 12) })
	}
	wg.Wait()
	for id := range nSeq {
		if lo, hi, err := c.PositionRange(id); err != nil || lo != -1 || hi != -1 {
			t.Errorf("after every Sequence closed, sequence %d holds positions %d..%d (%v)", id, lo, hi, err)
		}
	}
	t.Logf("widest step: %d sequences", llama.WidestStep(c))

	// The Context closes under running generations.
	for w := range 6 {
		wg.Go(func() { work(100+w, 1000) })
	}
	time.Sleep(100 * time.Millisecond)
	c.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("generations did not end after Close")
	}
}

func ExampleContext_NewSequence() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"))
	if err != nil {
		panic(err)
	}
	defer m.Close()
	// A context of four sequences: four conversations at once.
	c, err := m.NewContext(llama.WithSequences(4), llama.WithContextSize(1024))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	prompts := []string{"Once upon a time", "The little dog", "One day, Lily", "Tom had a red ball"}
	replies := make([]string, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() {
			q, err := c.NewSequence()
			if err != nil {
				panic(err)
			}
			defer q.Close()
			// The four generations are decoded together, a token of each
			// per batch.
			r, err := q.Complete(context.Background(), p, llama.WithMaxTokens(12), llama.WithSampling(llama.WithGreedy()))
			if err != nil {
				panic(err)
			}
			replies[i] = p + r.Text
		})
	}
	wg.Wait()
	for _, r := range replies {
		fmt.Println(r)
	}
	// Output:
	// Once upon a time, there was a little girl named Lily. She
	// The little dog was a little girl named Lily. She loved
	// One day, Lily and Ben were playing in the park
	// Tom had a red ball. He liked to play with his toys.
}
