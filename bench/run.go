package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llamago/llamago/internal/clock"
	"github.com/llamago/llamago/llama"
)

// Test is one test with one combination of the context's parameters: pp,
// tg or pp+tg with llama-bench's method, or an end-to-end generation.
type Test struct {
	NPrompt, NGen int
	// E2E generates NGen tokens with sampling after a random NPrompt-token
	// prompt through Sequence.Generate.
	E2E bool
	// Parallel is the sequences decoded at once (default 1): pp and tg
	// decode the prompt of each, then a token of each in every batch; e2e
	// runs that many generations, each in a Sequence of its own from a
	// goroutine of its own, which the context's scheduler batches.
	Parallel int
	// Images, encoded by Projector, start each e2e prompt (its random
	// tokens then follow as text), which times their encoding too.
	Projector *llama.Projector
	Images    []*llama.Image

	Batch, UBatch int // n_batch and n_ubatch
	Threads       int // generation and batch threads
	TypeK, TypeV  llama.CacheType
	FlashAttn     llama.FlashAttention

	// E2E: Sampling is the sampler's options (default llama's defaults,
	// with a seed per repetition). Spec, if not nil, speculates (see
	// llama.WithSpeculation), with Draft as the context's draft model.
	Sampling []llama.SamplerOption
	Spec     *llama.Speculation
	Draft    *llama.Model
}

// RunOptions say how Run repeats a test.
type RunOptions struct {
	Reps     int  // timed repetitions
	Native   bool // pp and tg: also run llama-bench's loop in C, alternating
	NoWarmup bool // skip the warm-up run
	// Status, if not nil, hears what is being run.
	Status func(format string, args ...any)
}

// Run runs t on m: a warm-up run, then opts.Reps timed repetitions with
// the KV cache cleared before each, and adds their samples to r (set r's
// parameters and call r.Finish yourself). pp and tg decode random tokens
// and sample nothing in the timed loop, as llama-bench; with opts.Native
// the same test also runs in C (Context.NativeBench), alternating with
// the Go loop by repetition, and for tg every few tokens (see
// InterleaveTG).
func Run(ctx context.Context, m *llama.Model, t Test, opts RunOptions, r *Result) error {
	status := opts.Status
	if status == nil {
		status = func(string, ...any) {}
	}
	par := max(1, t.Parallel)
	nCtx := t.NPrompt + t.NGen
	if t.E2E {
		nCtx++ // Generate decodes the last sampled token only if it can
		for _, im := range t.Images {
			_, cells, err := t.Projector.ImagePositions(im)
			if err != nil {
				return err
			}
			nCtx += cells + 2 // and the markers' line break
		}
	}
	copts := []llama.ContextOption{
		llama.WithContextSize(nCtx * par),
		llama.WithSequences(par),
		llama.WithBatchSize(t.Batch),
		llama.WithUBatchSize(t.UBatch),
		llama.WithThreads(t.Threads),
		llama.WithBatchThreads(t.Threads),
		llama.WithFlashAttention(t.FlashAttn),
		llama.WithCacheTypes(t.TypeK, t.TypeV),
	}
	if t.E2E && t.Spec != nil && t.Draft != nil {
		copts = append(copts, llama.WithDraftModel(t.Draft))
	}
	lctx, err := m.NewContext(copts...)
	if err != nil {
		return err
	}
	defer lctx.Close()
	if t.E2E {
		return runE2E(ctx, lctx, t, opts, r, status)
	}

	if opts.Native && par > 1 {
		return fmt.Errorf("bench: the native loop decodes one sequence, not %d", par)
	}
	loop, err := NewLoop(lctx)
	if err != nil {
		return err
	}
	defer loop.Close()
	loop.seqs = par
	type side struct {
		name    string
		run     func(nPrompt, nGen int) (time.Duration, error)
		samples *[]uint64
	}
	sides := []side{{"go", loop.Run, &r.SamplesNS}}
	if opts.Native {
		sides = append(sides, side{"native", func(p, g int) (time.Duration, error) {
			return lctx.NativeBench(p, g, lctx.BatchSize())
		}, &r.NativeSamplesNS})
	}
	if !opts.NoWarmup {
		// As llama-bench: the whole prompt, and one generated token.
		for _, s := range sides {
			status("warm-up (%s)", s.name)
			if err := lctx.ClearMemory(); err != nil {
				return err
			}
			if t.NPrompt > 0 {
				if _, err := s.run(t.NPrompt, 0); err != nil {
					return err
				}
			}
			if t.NGen > 0 {
				if _, err := s.run(0, 1); err != nil {
					return err
				}
			}
		}
	}
	interleave := len(sides) == 2 && t.NPrompt == 0 && t.NGen > 1
	for i := range opts.Reps {
		if interleave {
			if err := ctx.Err(); err != nil {
				return err
			}
			status("go and native %d/%d", i+1, opts.Reps)
			if err := lctx.ClearMemory(); err != nil {
				return err
			}
			d, err := InterleaveTG(lctx, [2]func(int, int) (time.Duration, error){sides[0].run, sides[1].run}, t.NGen, i%2)
			if err == nil {
				for j, s := range sides {
					*s.samples = append(*s.samples, uint64(d[j]))
				}
				continue
			}
			if !errors.Is(err, errNoPartialRemove) {
				return err
			}
			interleave = false // a recurrent model: whole repetitions
		}
		// Alternate which side goes first, so that neither always runs
		// on a machine warmed (or heated) by the other.
		order := sides
		if i%2 == 1 && len(sides) == 2 {
			order = []side{sides[1], sides[0]}
		}
		for _, s := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			status("%s %d/%d", s.name, i+1, opts.Reps)
			if err := lctx.ClearMemory(); err != nil {
				return err
			}
			d, err := s.run(t.NPrompt, t.NGen)
			if err != nil {
				return err
			}
			*s.samples = append(*s.samples, uint64(d))
		}
	}
	return nil
}

// interleaveChunk is how many tokens each side of an interleaved tg
// repetition decodes at a time.
const interleaveChunk = 8

// errNoPartialRemove: the model's memory cannot remove a range of
// positions (a recurrent model), so tg cannot be interleaved.
var errNoPartialRemove = errors.New("the memory cannot remove part of a sequence")

// InterleaveTG times one tg repetition of nGen tokens for both loops,
// interleaved: one loop decodes positions [p, p+k), those positions are
// removed from the cache, the other loop decodes the same positions, and
// the next chunk starts with the other loop (the first chunk with
// run[first]). Each loop decodes positions 0..nGen-1 over the same cache,
// as in a repetition of its own, and the two are timed a few milliseconds
// apart instead of a whole repetition apart: on a shared machine, whose
// speed drifts by several percent from one second to the next, that makes
// their ratio far more precise. It returns each loop's total time.
func InterleaveTG(lctx *llama.Context, run [2]func(nPrompt, nGen int) (time.Duration, error), nGen, first int) ([2]time.Duration, error) {
	var total [2]time.Duration
	for p, i := 0, first; p < nGen; p, i = p+interleaveChunk, i+1 {
		k := min(interleaveChunk, nGen-p)
		for j := range 2 {
			side := (i + j) % 2
			d, err := run[side](0, k)
			if err != nil {
				return total, err
			}
			total[side] += d
			if j == 0 {
				ok, err := lctx.RemoveTokens(0, p, -1)
				if err != nil {
					return total, err
				}
				if !ok {
					return total, errNoPartialRemove
				}
			}
		}
	}
	return total, nil
}

// Loop is llama-bench's timed loop written with the binding's public API:
// a Batch filled with Add, Context.Decode and Context.Synchronize. It
// decodes in sequence 0 of its context (and with Test.Parallel, in as many
// sequences at once).
type Loop struct {
	c      *llama.Context
	b      *llama.Batch
	nBatch int
	addBOS bool
	bos    llama.TokenID
	nVocab uint64
	rng    uint64
	seqs   int   // sequences decoded at once
	pos    []int // their next positions, during Run
}

// NewLoop makes the loop of c; Close it after use.
func NewLoop(c *llama.Context) (*Loop, error) {
	m := c.Model()
	b, err := llama.NewBatch(c.BatchSize(), 1)
	if err != nil {
		return nil, err
	}
	return &Loop{
		c: c, b: b, nBatch: c.BatchSize(), addBOS: m.AddsBOS(), bos: m.BOS(),
		nVocab: uint64(m.VocabSize()), rng: rand.Uint64() | 1, seqs: 1,
	}, nil
}

// Close frees the loop's batch.
func (l *Loop) Close() { l.b.Close() }

// Context is the loop's context.
func (l *Loop) Context() *llama.Context { return l.c }

// token draws a random token (xorshift64, as the C loop).
func (l *Loop) token() llama.TokenID {
	x := l.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	l.rng = x
	return llama.TokenID(x % l.nVocab)
}

// Run is one repetition: nPrompt tokens in batches of the context's batch
// size (logits of the last of each), then nGen tokens one at a time,
// continuing sequence 0 from its end; the time includes synchronizing.
// With several sequences, each gets a prompt, then a token of each goes
// into every batch (all with logits, as generations need them).
func (l *Loop) Run(nPrompt, nGen int) (time.Duration, error) {
	if l.seqs > 1 {
		return l.runSeqs(nPrompt, nGen)
	}
	// The goroutine is not locked to its thread: Context.Decode passes it
	// through the Go scheduler every few milliseconds (see its yield), which
	// on a locked thread would cost a thread handoff each time.
	_, hi, err := l.c.PositionRange(0)
	if err != nil {
		return 0, err
	}
	pos := hi + 1
	bg := context.Background()
	start := clock.Now()
	if nPrompt > 0 {
		for done := 0; done < nPrompt; {
			n := min(nPrompt-done, l.nBatch)
			l.b.Clear()
			for i := range n {
				t := l.token()
				if done == 0 && i == 0 && l.addBOS {
					t = l.bos
				}
				if err := l.b.Add(t, pos, i == n-1); err != nil {
					return 0, err
				}
				pos++
			}
			if err := l.c.Decode(bg, l.b); err != nil {
				return 0, err
			}
			done += n
		}
		if err := l.c.Synchronize(); err != nil {
			return 0, err
		}
	}
	if nGen > 0 {
		t := l.token()
		if l.addBOS {
			t = l.bos
		}
		for range nGen {
			if err := l.step(t, pos); err != nil {
				return 0, err
			}
			pos++
			t = l.token()
		}
	}
	return clock.Since(start), nil
}

// runSeqs is Run over l.seqs sequences, their tokens in the order of
// their ids (as llama.cpp wants them to share a micro-batch).
func (l *Loop) runSeqs(nPrompt, nGen int) (time.Duration, error) {
	l.pos = l.pos[:0]
	for s := range l.seqs {
		_, hi, err := l.c.PositionRange(s)
		if err != nil {
			return 0, err
		}
		l.pos = append(l.pos, hi+1)
	}
	bg := context.Background()
	flush := func() error {
		if l.b.Len() == 0 {
			return nil
		}
		err := l.c.Decode(bg, l.b)
		l.b.Clear()
		return err
	}
	start := clock.Now()
	l.b.Clear()
	for s := range l.seqs {
		for i := range nPrompt {
			if l.b.Len() == l.nBatch {
				if err := flush(); err != nil {
					return 0, err
				}
			}
			t := l.token()
			if i == 0 && l.addBOS {
				t = l.bos
			}
			if err := l.b.Add(t, l.pos[s], i == nPrompt-1, s); err != nil {
				return 0, err
			}
			l.pos[s]++
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	for range nGen {
		for s := range l.seqs {
			if err := l.b.Add(l.token(), l.pos[s], true, s); err != nil {
				return 0, err
			}
			l.pos[s]++
		}
		if err := flush(); err != nil {
			return 0, err
		}
	}
	if err := l.c.Synchronize(); err != nil {
		return 0, err
	}
	return clock.Since(start), nil
}

// Step decodes a random token at the end of sequence 0 and waits for the
// result: the per-token hot path of tg, which must not allocate.
func (l *Loop) Step() error {
	_, hi, err := l.c.PositionRange(0)
	if err != nil {
		return err
	}
	return l.step(l.token(), hi+1)
}

func (l *Loop) step(t llama.TokenID, pos int) error {
	l.b.Clear()
	if err := l.b.Add(t, pos, true); err != nil {
		return err
	}
	if err := l.c.Decode(context.Background(), l.b); err != nil {
		return err
	}
	return l.c.Synchronize()
}

// runE2E times generations with sampling through Sequence.Generate, each
// after a random prompt of t.NPrompt tokens, t.Parallel at once, in
// sequences emptied before each repetition: the time of each repetition,
// the time to first token of each generation, and the gap before each
// later token.
func runE2E(ctx context.Context, lctx *llama.Context, t Test, opts RunOptions, r *Result, status func(string, ...any)) error {
	m := lctx.Model()
	par := max(1, t.Parallel)
	rng := rand.New(rand.NewPCG(rand.Uint64(), 0))
	prompts := make([][]llama.TokenID, par)
	for i := range prompts {
		prompts[i] = make([]llama.TokenID, t.NPrompt)
		for j := range prompts[i] {
			prompts[i][j] = llama.TokenID(rng.IntN(m.VocabSize()))
		}
		if m.AddsBOS() && t.NPrompt > 0 {
			prompts[i][0] = m.BOS()
		}
	}
	// With images, the prompt is text: the markers, then the random
	// tokens' text.
	var texts []string
	if len(t.Images) > 0 {
		for _, p := range prompts {
			s, err := m.Detokenize(p, true, false)
			if err != nil {
				return err
			}
			texts = append(texts, strings.Repeat(llama.DefaultMediaMarker, len(t.Images))+"\n"+s)
		}
	}
	type result struct {
		ttft  time.Duration
		itl   []uint64
		stats llama.Stats
		err   error
	}
	results := make([]result, par)
	gen := func(q *llama.Sequence, i int, seed uint32) {
		res := &results[i]
		res.itl = res.itl[:0]
		n := 0
		var last time.Duration
		gopts := []llama.GenerateOption{
			llama.WithMaxTokens(t.NGen), llama.WithStats(&res.stats),
			llama.WithSampling(append(slices.Clip(t.Sampling), llama.WithSeed(seed), llama.WithIgnoreEOS())...),
		}
		if t.Spec != nil {
			gopts = append(gopts, llama.WithSpeculation(*t.Spec))
		}
		stream := q.GenerateTokens(ctx, prompts[i], gopts...)
		if texts != nil {
			stream = q.Generate(ctx, texts[i], append(gopts, llama.WithImages(t.Projector, t.Images...))...)
		}
		for tok, err := range stream {
			if err != nil {
				res.err = err
				return
			}
			if tok.ID == llama.NullToken {
				continue
			}
			if n == 0 {
				res.ttft = tok.Elapsed
			} else {
				res.itl = append(res.itl, uint64(tok.Elapsed-last))
			}
			last = tok.Elapsed
			n++
		}
		if n != t.NGen {
			res.err = fmt.Errorf("generated %d tokens of %d", n, t.NGen)
		}
	}
	rep := func(seed uint32) (time.Duration, error) {
		seqs := make([]*llama.Sequence, par)
		for i := range seqs {
			q, err := lctx.NewSequence() // empty
			if err != nil {
				return 0, err
			}
			defer q.Close()
			seqs[i] = q
		}
		start := clock.Now()
		var wg sync.WaitGroup
		for i, q := range seqs {
			wg.Go(func() { gen(q, i, seed+uint32(i)) })
		}
		wg.Wait()
		total := clock.Since(start)
		for _, res := range results {
			if res.err != nil {
				return 0, res.err
			}
		}
		return total, nil
	}
	if !opts.NoWarmup {
		status("warm-up")
		if _, err := rep(0); err != nil {
			return err
		}
	}
	for i := range opts.Reps {
		if err := ctx.Err(); err != nil {
			return err
		}
		status("e2e %d/%d", i+1, opts.Reps)
		total, err := rep(uint32(1 + i*par))
		if err != nil {
			return err
		}
		r.SamplesNS = append(r.SamplesNS, uint64(total))
		for _, res := range results {
			r.TTFTSamplesNS = append(r.TTFTSamplesNS, uint64(res.ttft))
			r.AddITL(res.itl...)
			if len(t.Images) > 0 {
				r.ImageEncodeSamplesNS = append(r.ImageEncodeSamplesNS, uint64(res.stats.ImageEncode))
			}
			r.DraftTokens += res.stats.DraftTokens
			r.AcceptedTokens += res.stats.AcceptedTokens
		}
	}
	return nil
}
