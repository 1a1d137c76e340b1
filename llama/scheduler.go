package llama

/*
#include "llama.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/llamago/llamago/internal/clock"
)

// sched runs the generations of a Context's sequences, batching them into
// shared decodes: continuous batching. Each step packs the next token of
// every generating sequence and chunks of the prompts being read into one
// batch, decodes it, and samples a token for each sequence whose logits it
// computed.
//
// There is no goroutine of its own: a goroutine that waits for the next
// token of its generation runs the step itself when no other one does (it
// "drives"), for every generation at once, then goes back to its caller
// with its token while the others take theirs. A single generation thus
// decodes in its caller's goroutine, as a plain loop would, and several
// share each decode without a hand-off to a scheduler goroutine.
//
// A generation whose caller has not taken its last tokens yet still has
// its next one decoded in the steps others drive, up to lookahead tokens
// ahead, so that a caller busy with a token does not make the others wait
// or decode alone.
type sched struct {
	c *Context

	mu      sync.Mutex
	gens    []*gen        // running, in arrival order
	slots   []seqSlot     // by sequence id
	freed   chan struct{} // closed and replaced when a sequence is released
	stepEnd *sync.Cond    // broadcast at the end of each step
	driving bool          // a goroutine is running a step
	closed  bool
	clock   uint64 // steps, for least recently used
	rr      int    // rotates the order of generating sequences, for fairness
	widest  int    // the most sequences one step decoded (for tests)
	stats   BatchStats

	// The step in progress: its members are inStep; running while the
	// decode runs, live counts its members not cancelled, aborted says the
	// step set llama.cpp's abort flag.
	batch   *Batch
	members []*gen
	running bool
	live    int
	aborted bool
}

// BatchStats counts the batches in which a Context's generations were
// decoded.
type BatchStats struct {
	Batches    uint64        // decodes
	Tokens     uint64        // tokens in them
	DecodeTime time.Duration // time spent in them
}

// BatchStats returns the counts of the context's generations so far.
func (c *Context) BatchStats() BatchStats {
	c.sched.mu.Lock()
	defer c.sched.mu.Unlock()
	return c.sched.stats
}

// lookahead is how many tokens a generation's caller may leave untaken
// while the steps others drive decode its next one.
const lookahead = 1

// copyMin is how many more prompt tokens another sequence must hold than
// a generation's own before its cache is copied, with a KV stream per
// sequence: the copy moves the whole stream.
const copyMin = 32

// seqSlot is one sequence of the context.
type seqSlot struct {
	owner *Sequence // the Sequence that holds it, if any
	gen   *gen      // the generation running in it, if any
	used  uint64    // the step it last decoded in
}

func (s *sched) init(c *Context) {
	s.c = c
	s.slots = make([]seqSlot, c.nSeqMax)
	s.freed = make(chan struct{})
	s.stepEnd = sync.NewCond(&s.mu)
}

// gen is one generation: Generate's state, shared by its caller and the
// drivers of the steps it takes part in.
type gen struct {
	s      *sched
	seq    int
	seqs   [1]int // seq, as Batch.set takes it
	ctx    context.Context
	cfg    *generateConfig
	smp    *Sampler
	own    bool       // smp was built for this generation
	spec   *specState // how it speculates; nil if it does not
	prompt []TokenID
	start  clock.Time
	first  clock.Time
	notify chan struct{} // wakes the caller

	// Under s.mu.
	admitted   bool
	todo       []TokenID // prompt tokens still to decode
	pending    TokenID   // sampled, to decode next
	hasPending bool
	events     []Token // produced, not yet taken: events[head:]
	head       int
	finished   bool  // no more events will come; err ends them
	err        error // after the events
	cancelled  bool  // ctx is done: ends at once with ctx.Err()
	closing    bool  // the Sequence or Context closes: ends with ErrClosed
	gone       bool  // the caller left: sample no more
	waiting    bool  // the caller waits on notify
	inStep     bool
	prompting  bool // in the step: prompt tokens, not pending
	nBatch     int  // in the step: tokens in the batch
	iBatch     int  // in the step: index of the token to sample from, or -1
	stats      Stats
	text       textStream
	yielded    int // tokens the caller took
}

func (g *gen) signal() {
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

// begin checks a generation, builds its sampler and gives it a sequence:
// seq's, or with seq nil a free one of the context, waiting for one until
// ctx is done. On error the stats carry the reason.
func (s *sched) begin(ctx context.Context, seq *Sequence, prompt []TokenID, cfg *generateConfig) (*gen, error) {
	c := s.c
	g := &gen{s: s, ctx: ctx, cfg: cfg, prompt: prompt, start: clock.Now(), iBatch: -1}
	g.stats.PromptTokens = len(prompt)
	checked := prompt
	if m := cfg.media; m != nil {
		// The images were decoded into the sequence already, and their
		// positions hold placeholders, not tokens.
		g.start = m.start
		g.stats.Images, g.stats.ImageEncode = len(m.images), m.encode
		checked = prompt[m.end:]
	}
	fail := func(reason StopReason, err error) (*gen, error) {
		if g.own {
			g.smp.Close()
		}
		g.stats.StopReason = reason
		if cfg.stats != nil {
			*cfg.stats = g.stats
		}
		return nil, err
	}
	if len(prompt) == 0 {
		return fail(StopError, invalidArg("empty prompt"))
	}
	for _, t := range checked {
		if err := c.m.checkToken(t); err != nil {
			return fail(StopError, err)
		}
	}
	if cfg.maxTokens < -1 || cfg.maxTokens == 0 {
		return fail(StopError, invalidArg("max tokens %d", cfg.maxTokens))
	}
	if cfg.topLogprobs < 0 || cfg.topLogprobs > maxTopLogprobs {
		return fail(StopError, invalidArg("%d top logprobs, want 0..%d", cfg.topLogprobs, maxTopLogprobs))
	}
	if err := ctx.Err(); err != nil {
		return fail(StopCancelled, err)
	}
	g.text.stops = cfg.stops
	spec, err := c.specConfig(cfg)
	if err != nil {
		return fail(StopError, err)
	}
	g.spec = spec
	g.smp = cfg.sampler
	if g.smp == nil {
		// A penalty window of -1 is the sequence's context.
		opts := append([]SamplerOption{WithSamplerContextSize(c.nCtxSeq)}, cfg.samplerOpts...)
		smp, err := c.m.NewSampler(opts...)
		if err != nil {
			return fail(StopError, err)
		}
		g.smp, g.own = smp, true
	}
	c.m.tokenCache() // before the locks: it takes the model's

	for {
		if err := c.lock(); err != nil {
			return fail(StopError, err)
		}
		if n := int(C.llama_n_ctx_seq(c.c)); len(prompt) >= n {
			c.mu.Unlock()
			return fail(StopContextFull, fmt.Errorf("%w: prompt of %d tokens, sequence context of %d", ErrContextFull, len(prompt), n))
		}
		if s.batch == nil {
			b, err := NewBatch(c.nBatch, 1)
			if err != nil {
				c.mu.Unlock()
				return fail(StopError, err)
			}
			s.batch = b
		}
		s.mu.Lock()
		id, err := s.acquire(seq, prompt)
		if err == nil && id >= 0 {
			g.seq, g.seqs[0] = id, id
			g.notify = make(chan struct{}, 1)
			s.slots[id].gen = g
			s.gens = append(s.gens, g)
			s.mu.Unlock()
			c.mu.Unlock()
			return g, nil
		}
		freed := s.freed
		s.mu.Unlock()
		c.mu.Unlock()
		if err != nil {
			return fail(StopError, err)
		}
		// Every sequence is taken: wait for one.
		select {
		case <-freed:
		case <-ctx.Done():
			return fail(StopCancelled, ctx.Err())
		}
	}
}

// acquire returns seq's id, or with seq nil the free sequence whose cache
// shares the longest prefix with prompt, or -1 if none is free. A prefix
// of less than half the prompt does not count: a cache that shares only
// BOS or the start of a system prompt is worth more to the prompt it
// holds. Among equals it takes the one with the least cache beyond the
// prefix (whose cache is least likely to serve another prompt better),
// then the least recently used. The caller holds both locks.
func (s *sched) acquire(seq *Sequence, prompt []TokenID) (int, error) {
	if s.closed {
		return -1, ErrClosed
	}
	if seq != nil {
		switch {
		case seq.closed:
			return -1, ErrClosed
		case s.slots[seq.id].gen != nil:
			return -1, ErrBusy
		}
		return seq.id, nil
	}
	best, bestLen, bestRest := -1, -1, 0
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.owner != nil || sl.gen != nil {
			continue
		}
		l, rest := 0, 0
		if h := &s.c.hist[i]; h.valid {
			if l = commonPrefix(h.tokens, prompt); 2*l < len(prompt) {
				l = 0
			}
			rest = len(h.tokens) - l
		}
		if l > bestLen || l == bestLen && (rest < bestRest || rest == bestRest && sl.used < s.slots[best].used) {
			best, bestLen, bestRest = i, l, rest
		}
	}
	return best, nil
}

func commonPrefix(a, b []TokenID) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// end is the caller's last word: it waits until no step holds g, gives
// the sequence back, closes the sampler g built and reports the stats.
func (s *sched) end(g *gen, broke bool) {
	s.mu.Lock()
	g.gone = true
	for g.inStep {
		s.wait(g)
	}
	if broke {
		g.stats.StopReason = StopBreak
		g.stats.GeneratedTokens = g.yielded
	}
	if i := slices.Index(s.gens, g); i >= 0 {
		s.gens = slices.Delete(s.gens, i, i+1)
	}
	sl := &s.slots[g.seq]
	sl.gen = nil
	if sl.owner == nil {
		s.release()
	}
	stats := g.stats
	s.mu.Unlock()
	if g.own {
		g.smp.Close()
	}
	if g.cfg.stats != nil {
		*g.cfg.stats = stats
	}
}

// release wakes the generations that wait for a free sequence; the caller
// holds s.mu.
func (s *sched) release() {
	close(s.freed)
	s.freed = make(chan struct{})
}

// wait blocks the caller of g until it is signalled; the caller holds
// s.mu, which wait releases meanwhile.
func (s *sched) wait(g *gen) {
	g.waiting = true
	s.mu.Unlock()
	<-g.notify
	s.mu.Lock()
	g.waiting = false
}

// cancel ends g, whose ctx is done, at once: it leaves the next step, and
// the decode in progress is aborted if g was its last live member. It runs
// in context.AfterFunc's goroutine.
func (s *sched) cancel(g *gen) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancelLocked(g)
}

func (s *sched) cancelLocked(g *gen) {
	if g.finished || g.gone || g.cancelled {
		return
	}
	g.cancelled = true
	s.leaveStep(g)
	g.signal()
}

// done reports whether g's ctx is done, and cancels g if so: AfterFunc's
// goroutine may not have run yet. The caller holds s.mu.
func (s *sched) done(g *gen) bool {
	if !g.cancelled && g.ctx.Err() != nil {
		s.cancelLocked(g)
	}
	return g.cancelled
}

// leaveStep aborts the decode in progress if g, which no longer wants its
// result, was its last live member; the caller holds s.mu.
func (s *sched) leaveStep(g *gen) {
	if g.inStep && s.running {
		s.live--
		if s.live == 0 {
			s.c.setAbort(1)
			s.aborted = true
		}
	}
}

// shutdown ends every generation with ErrClosed, when the context closes;
// the caller holds c.mu.
func (s *sched) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, g := range s.gens {
		g.closing = true
		g.signal()
	}
	s.release()
	if s.batch != nil {
		s.batch.Close()
	}
}

// next returns g's next token; with ok false the generation has ended
// without an error. It runs steps while no one else does and g has none.
func (s *sched) next(g *gen) (tok Token, err error, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.done(g) || ((g.closing || s.closed) && !g.finished):
			if g.inStep {
				s.wait(g) // until the step has settled the sequence
				continue
			}
			g.finished = true
			if g.cancelled {
				g.stats.StopReason = StopCancelled
				return Token{}, g.ctx.Err(), true
			}
			g.stats.StopReason = StopError
			return Token{}, ErrClosed, true
		case g.head < len(g.events):
			tok = g.events[g.head]
			g.head++
			if g.head == len(g.events) {
				g.events, g.head = g.events[:0], 0
			}
			if tok.ID != NullToken {
				g.yielded++
			}
			return tok, nil, true
		case g.finished:
			return Token{}, g.err, g.err != nil
		case !s.driving:
			s.driving = true
			s.mu.Unlock()
			s.step()
			s.mu.Lock()
		default:
			s.wait(g)
		}
	}
}

// step decodes one batch for every generation that has something to
// decode, and samples what it computed. The caller set s.driving.
func (s *sched) step() {
	c := s.c
	if err := c.lock(); err != nil {
		s.mu.Lock()
		s.closed = true
		s.stepDone()
		s.mu.Unlock()
		return
	}
	defer c.mu.Unlock()
	s.mu.Lock()
	s.clock++
	for _, g := range s.gens {
		if !g.admitted && !g.cancelled && !g.closing && !g.gone {
			s.admit(g)
		}
	}
	s.choose()
	jobs := s.draft()
	s.mu.Unlock()
	if len(jobs) > 0 {
		// Without s.mu: the members are inStep, so their callers wait for
		// the step, and cancelling one waits for nothing.
		c.draftWithModel(jobs)
	}
	s.mu.Lock()
	s.drafted(jobs)
	n := s.layout(true)
	s.running = n > 0
	s.mu.Unlock()
	if n == 0 {
		s.mu.Lock()
		s.stepDone()
		s.mu.Unlock()
		return
	}

	start := clock.Now()
	err := c.decode(context.Background(), s.batch, false)
	if errors.Is(err, ErrContextFull) && s.hasDrafts() {
		// The drafts took the cells the cache had left (a unified cache,
		// nearly full): the step again without them, as it would have
		// been without speculation.
		s.mu.Lock()
		for _, g := range s.members {
			c.dropTail(g.seq)
		}
		n = s.layout(false)
		s.mu.Unlock()
		err = c.decode(context.Background(), s.batch, false)
	}
	took := clock.Since(start)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = false
	s.stats.Batches++
	s.stats.Tokens += uint64(n)
	s.stats.DecodeTime += took
	if s.aborted {
		c.setAbort(0)
		s.aborted = false
	}
	if err != nil {
		s.failed(err)
	} else {
		s.decoded()
	}
	for _, g := range s.members {
		g.inStep = false
		g.signal()
	}
	clear(s.members)
	s.members = s.members[:0]
	s.stepDone()
}

// stepDone ends a step: the next waiting caller may drive. The caller
// holds s.mu.
func (s *sched) stepDone() {
	s.driving = false
	s.stepEnd.Broadcast()
	for _, g := range s.gens {
		if g.waiting {
			g.signal()
		}
	}
}

// admit prepares g's sequence for its prompt: the cached prefix the
// prompt shares is kept (or copied from another sequence that holds more
// of it), the rest removed. The caller holds both locks.
func (s *sched) admit(g *gen) {
	c, seq, prompt := s.c, g.seq, g.prompt
	h := &c.hist[seq]
	if !h.valid {
		C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), -1, -1)
		h.tokens, h.valid = h.tokens[:0], true
	}
	p := commonPrefix(h.tokens, prompt)
	if p == len(prompt) {
		p-- // the last prompt token must be decoded again for its logits
	}
	if p < len(h.tokens) {
		if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), C.llama_pos(p), -1) {
			C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), -1, -1)
			p = 0
		}
		h.tokens = h.tokens[:p]
	}
	if src, n := s.prefixSource(seq, prompt, p); src >= 0 {
		p = s.copyPrefix(src, seq, n)
	}
	g.admitted = true
	g.stats.CachedTokens = p
	if m := g.cfg.media; m != nil {
		// What evalMedia decoded just now does not count as cached.
		g.stats.CachedTokens = max(0, p-(m.end-m.cached))
	}
	g.todo = prompt[p:]
}

// prefixSource returns another sequence whose cache holds n > p tokens of
// prompt, enough more to be worth copying, or -1. Only a plain KV cache
// can drop the tail of a copy. The caller holds both locks.
func (s *sched) prefixSource(seq int, prompt []TokenID, p int) (src, n int) {
	c := s.c
	if c.m.info.memory != memoryKV || len(s.slots) < 2 {
		return -1, 0
	}
	src, n = -1, p
	for i := range s.slots {
		if h := &c.hist[i]; i != seq && h.valid {
			if l := min(commonPrefix(h.tokens, prompt), len(prompt)-1); l > n {
				src, n = i, l
			}
		}
	}
	if src >= 0 && !c.unifiedKV && n-p < copyMin {
		return -1, 0
	}
	return src, n
}

// copyPrefix makes dst's cache hold src's first n tokens and returns how
// many it holds. A unified cache shares the cells; otherwise llama.cpp
// copies the whole stream, whose tail is then removed. The caller holds
// both locks.
func (s *sched) copyPrefix(src, dst, n int) int {
	c := s.c
	h := &c.hist[dst]
	C.llama_memory_seq_rm(c.mem, C.llama_seq_id(dst), -1, -1)
	if c.unifiedKV {
		C.llama_memory_seq_cp(c.mem, C.llama_seq_id(src), C.llama_seq_id(dst), 0, C.llama_pos(n))
	} else {
		C.llama_memory_seq_cp(c.mem, C.llama_seq_id(src), C.llama_seq_id(dst), -1, -1)
		if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(dst), C.llama_pos(n), -1) {
			C.llama_memory_seq_rm(c.mem, C.llama_seq_id(dst), -1, -1)
			h.tokens = h.tokens[:0]
			return 0
		}
	}
	h.tokens = append(h.tokens[:0], c.hist[src].tokens[:n]...)
	return n
}

// choose picks the step's members: the pending token of each generating
// sequence whose caller is not too far behind, then prompt chunks, oldest
// first; with generating sequences in the batch, at most a micro-batch of
// prompt so that they keep their pace. Room left in the batch goes to the
// drafts of speculating sequences. The caller holds both locks.
func (s *sched) choose() {
	c, b := s.c, s.batch
	room := b.cap
	add := func(g *gen, k int, prompting bool) {
		g.inStep, g.prompting, g.nBatch = true, prompting, k
		s.members = append(s.members, g)
		room -= k
	}
	if len(s.gens) > 0 {
		s.rr = (s.rr + 1) % len(s.gens)
	}
	for j := range s.gens {
		if room == 0 {
			break
		}
		g := s.gens[(s.rr+j)%len(s.gens)]
		if g.hasPending && g.active() && len(g.events)-g.head <= lookahead && !s.done(g) {
			add(g, 1, false)
		}
	}
	budget := room
	if len(s.members) > 0 {
		budget = min(budget, c.nUbatch)
	}
	for _, g := range s.gens {
		if budget == 0 {
			break
		}
		if len(g.todo) > 0 && g.admitted && g.active() && !s.done(g) {
			k := min(len(g.todo), budget)
			add(g, k, true)
			budget -= k
		}
	}
	for _, g := range s.members {
		if g.spec != nil && !g.prompting {
			g.spec.room = min(s.draftLimit(g), room)
			g.spec.draft = g.spec.draft[:0]
			room -= g.spec.room
		}
	}
	slices.SortFunc(s.members, func(a, b *gen) int { return a.seq - b.seq })
}

// draft drafts for the speculating members: by prompt lookup here, and
// with the draft model in the jobs it returns. The caller holds both
// locks.
func (s *sched) draft() []*draftJob {
	c := s.c
	var jobs []*draftJob
	for _, g := range s.members {
		sp := g.spec
		if sp == nil || g.prompting || sp.room == 0 {
			continue
		}
		sp.toks = append(append(sp.toks[:0], c.hist[g.seq].tokens...), g.pending)
		if sp.NGram > 0 {
			d := lookupDraft(sp.toks, sp.NGram, sp.room)
			// Only real tokens: a history may hold ids that are not
			// (placeholders), which llama.cpp would abort on.
			if i := slices.IndexFunc(d, func(t TokenID) bool { return !c.m.validToken(t) }); i >= 0 {
				d = d[:i]
			}
			sp.draft = append(sp.draft[:0], d...)
			continue
		}
		if c.draft != nil {
			jobs = append(jobs, &draftJob{g: g, seq: g.seq, toks: sp.toks, k: sp.room, pMin: sp.PMin})
		}
	}
	return jobs
}

// drafted takes the draft model's drafts, and drops drafts shorter than
// DraftMin. The caller holds both locks.
func (s *sched) drafted(jobs []*draftJob) {
	for _, j := range jobs {
		j.g.spec.draft = append(j.g.spec.draft[:0], j.out...)
	}
	for _, g := range s.members {
		if sp := g.spec; sp != nil && len(sp.draft) < sp.DraftMin {
			sp.draft = sp.draft[:0]
		}
	}
}

// hasDrafts reports whether the step's batch holds drafted tokens; the
// caller holds c.mu.
func (s *sched) hasDrafts() bool {
	for _, g := range s.members {
		if !g.prompting && g.nBatch > 1 {
			return true
		}
	}
	return false
}

// layout writes the members' tokens into the step's batch, with their
// drafts unless drafts is false, and returns the batch's size. The caller
// holds both locks.
//
// The tokens go into the batch in the order of their sequence ids: with a
// KV stream per sequence, llama.cpp puts into one micro-batch only
// sequences of consecutive ids in increasing order, and decodes the
// others in micro-batches of their own.
func (s *sched) layout(drafts bool) int {
	c, b := s.c, s.batch
	n := 0
	s.live = 0
	for _, g := range s.members {
		if g.active() {
			s.live++
		}
		pos := len(c.hist[g.seq].tokens)
		if !g.prompting {
			b.set(n, g.pending, pos, true, g.seqs[:])
			g.iBatch, g.nBatch = n, 1
			n++
			if g.spec == nil {
				continue
			}
			if !drafts {
				g.spec.draft = g.spec.draft[:0]
			}
			for j, t := range g.spec.draft {
				b.set(n, t, pos+1+j, true, g.seqs[:])
				n++
			}
			g.nBatch += len(g.spec.draft)
			continue
		}
		for j, t := range g.todo[:g.nBatch] {
			b.set(n+j, t, pos+j, j == len(g.todo)-1, g.seqs[:])
		}
		g.iBatch = -1
		if g.nBatch == len(g.todo) {
			g.iBatch = n + g.nBatch - 1
		}
		n += g.nBatch
	}
	b.c.n_tokens = C.int32_t(n)
	s.widest = max(s.widest, len(s.members))
	return n
}

// active reports whether g still wants steps.
func (g *gen) active() bool {
	return !g.finished && !g.cancelled && !g.closing && !g.gone
}

// decoded records what the step decoded and samples each member whose
// logits it computed. The caller holds both locks.
func (s *sched) decoded() {
	c := s.c
	now := clock.Now()
	for _, g := range s.members {
		h := &c.hist[g.seq]
		if g.prompting {
			h.tokens = append(h.tokens, g.todo[:g.nBatch]...)
			g.todo = g.todo[g.nBatch:]
		} else {
			h.tokens = append(h.tokens, g.pending)
			g.hasPending = false
		}
		s.slots[g.seq].used = s.clock
		if g.iBatch < 0 || !g.active() {
			if !g.prompting && g.nBatch > 1 {
				c.dropTail(g.seq) // its drafts
			}
			continue
		}
		if g.prompting {
			g.stats.PromptEval = now.Sub(g.start)
		}
		if !g.prompting && g.spec != nil {
			s.verify(g)
			continue
		}
		s.sample(g, g.iBatch)
	}
}

// verify samples g's tokens from the logits of its pending token and its
// drafts in turn, as many as agree with the drafts and one more, and
// removes the cells of the drafts it did not keep. The caller holds both
// locks.
func (s *sched) verify(g *gen) {
	c := s.c
	h := &c.hist[g.seq]
	draft := g.spec.draft[:g.nBatch-1]
	accepted := 0
	for j := 0; ; j++ {
		s.sample(g, g.iBatch+j)
		if j == len(draft) || !g.hasPending || g.pending != draft[j] {
			break
		}
		// Its cell holds the token sampled: keep it.
		h.tokens = append(h.tokens, draft[j])
		g.hasPending = false
		accepted++
	}
	g.stats.DraftTokens += len(draft)
	g.stats.AcceptedTokens += accepted
	if len(draft) > 0 {
		c.dropTail(g.seq)
		if !h.valid && g.active() {
			s.finish(g, StopError, errors.New("llama: the cache could not drop rejected drafts"))
		}
	}
}

// failed handles a failed decode: each member's sequence drops what
// finished micro-batches left, and the members end with the error. The
// caller holds both locks.
func (s *sched) failed(err error) {
	c := s.c
	closed := errors.Is(err, ErrClosed)
	for _, g := range s.members {
		h := &c.hist[g.seq]
		// A memory that cannot remove part of a sequence (recurrent,
		// hybrid) has moved on: h no longer says what it holds.
		if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(g.seq), C.llama_pos(len(h.tokens)), -1) {
			h.valid = false
		}
		if !g.active() {
			continue // a cancelled or closed one ends by itself
		}
		switch {
		case closed:
			g.closing = true
		case errors.Is(err, ErrContextFull):
			s.finish(g, StopContextFull, err)
		default:
			s.finish(g, StopError, err)
		}
	}
}

// finish ends g with reason, and err after its events; the caller holds
// s.mu.
func (s *sched) finish(g *gen, reason StopReason, err error) {
	g.finished, g.err = true, err
	if g.stats.StopReason == StopNone {
		g.stats.StopReason = reason
	}
}

// sample picks g's next token from the logits at batch index i, and turns
// it into an event: it ends g at an end-of-generation token, a stop
// string, WithMaxTokens or the end of the sequence's context. The caller
// holds both locks.
func (s *sched) sample(g *gen, i int) {
	c := s.c
	g.smp.mu.Lock()
	var tok TokenID
	err := ErrClosed
	if !g.smp.closed {
		tok, err = g.smp.sample(c, i)
	}
	g.smp.mu.Unlock()
	if err != nil {
		s.finish(g, StopError, err)
		return
	}
	now := clock.Now()
	if g.stats.GeneratedTokens == 0 {
		g.first = now
		g.stats.TimeToFirst = now.Sub(g.start)
	}
	g.stats.Generation = now.Sub(g.first)
	if c.m.isEOG(tok) {
		if rest := g.text.flush(); rest != "" {
			g.events = append(g.events, Token{ID: NullToken, Text: rest, Index: g.stats.GeneratedTokens, Elapsed: now.Sub(g.start)})
		}
		s.finish(g, StopEOG, nil)
		return
	}
	g.stats.GeneratedTokens++
	n := g.stats.GeneratedTokens
	last, full := false, false
	switch {
	case g.cfg.maxTokens > 0 && n >= g.cfg.maxTokens:
		last = true
		g.stats.StopReason = StopMaxTokens
	case len(c.hist[g.seq].tokens)+1 >= int(C.llama_n_ctx_seq(c.c)):
		last, full = true, true
		g.stats.StopReason = StopContextFull
	}
	t := Token{ID: tok, Index: n - 1, Elapsed: now.Sub(g.start)}
	if g.cfg.logprobs {
		c.logprobs(&t, i, g.cfg.topLogprobs) // the sampler read a copy of the logits
	}
	var stop int
	t.Text, stop = g.text.push(c.m.piece(tok), last)
	if stop >= 0 {
		g.stats.StopReason, g.stats.StopString = StopString, g.text.stops[stop]
		if t.Text != "" {
			g.events = append(g.events, t)
		}
		s.finish(g, StopString, nil)
		return
	}
	g.events = append(g.events, t)
	switch {
	case full:
		s.finish(g, StopContextFull, fmt.Errorf("%w: sequence %d reached %d positions", ErrContextFull, g.seq, len(c.hist[g.seq].tokens)+1))
	case last:
		s.finish(g, StopMaxTokens, nil)
	default:
		g.pending, g.hasPending = tok, true
	}
}
