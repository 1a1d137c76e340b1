package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/llamago/llamago/llama"
)

// The engine runs every generation of the server in one llama.Context,
// from one goroutine that owns it: continuous batching, as llama-server
// does.
//
// The context holds Parallel sequences, one per slot, each of SlotContext
// positions. Each step packs the next token of every generating slot, and
// chunks of the prompts being read, into one batch; decodes it; and samples
// a token for each slot whose logits it computed. A request waits in a
// bounded queue until enough slots are free.
//
// A slot keeps its sequence's cache when its request ends: a new request
// goes to the free slot whose cache shares the longest prefix with its
// prompt, so that a follow-up in a conversation decodes only what is new.
// A request with n > 1 choices decodes its prompt once, in one slot, then
// copies that sequence to n-1 more slots (CopySequence) and samples each
// choice with its own sampler.
//
// The KV cache is split by default: one stream of SlotContext cells per
// sequence (llama.cpp's default for a fixed number of slots). Each token
// then attends over the cells of its own sequence only. With a unified
// cache (Config.UnifiedKV) every token attends over every used cell of the
// cache, the other sequences masked: on stories260K, eight sequences
// decoded together took 4.4 ms a step unified against 1.8 ms split. What a
// unified cache saves is memory and copying for n > 1: CopySequence makes
// the choices share the prompt's cells, where the split cache copies the
// whole stream of the prompt's slot into each other slot. llama.cpp aborts
// on a partial copy between streams, so the engine only ever copies whole
// sequences. Either way each sequence is kept to SlotContext positions
// here, so the cache never fills.
type engine struct {
	c       *llama.Context
	batch   *llama.Batch
	nBatch  int
	nUbatch int
	slotCtx int
	kvSize  int
	slots   []*slot
	pieces  []string // text of each token, control tokens as ""
	eog     []bool
	met     *metrics
	log     *slog.Logger

	mu       sync.Mutex
	queue    []*task // waiting for slots, in arrival order
	maxQueue int
	free     int // slots without a task
	closed   bool
	wake     chan struct{}

	// Owned by the engine goroutine.
	active []*task // holding slots, in admission order
	clock  uint64  // steps, to find the least recently used slot

	cancel context.CancelFunc
	done   chan struct{}
}

// slot is one sequence of the context.
type slot struct {
	id    int
	cache []llama.TokenID // the tokens at positions 0.. of the sequence's cache
	used  uint64          // the step it last decoded in

	task       *task           // nil: free
	choice     int             // index of the choice within the task
	prompt     []llama.TokenID // of the prompt, the tokens still to decode
	pending    llama.TokenID
	hasPending bool // pending was sampled and must be decoded next
	nGen       int
	text       textStream

	// In the batch being decoded.
	nBatch    int // tokens of this slot in the batch
	iBatch    int // index of the token whose logits it samples, or -1
	prompting bool
}

// task is one prompt of a request, with its n choices.
type task struct {
	ctx        context.Context
	prompt     []llama.TokenID
	n          int
	choiceBase int // index of its first choice in the response
	maxTokens  int
	stops      []string
	samplers   []*llama.Sampler // one per choice; the engine closes them
	logprobs   int              // -1: none; else the alternatives per token
	out        *outbox

	slots     []*slot // [0] decodes the prompt
	remaining int     // choices not finished
	generated int
	cached    int
}

func (t *task) closeSamplers() {
	for _, s := range t.samplers {
		s.Close()
	}
}

// event is a piece of a choice's output.
type event struct {
	choice   int
	text     string
	logprobs []tokenLogprob
	finish   string // "stop" or "length" on the last event of a choice
}

// usage counts the tokens of a request.
type usage struct {
	prompt, cached, completion int
}

// outbox carries the events of a request's tasks from the engine to the
// handler. The engine never blocks on it, so a slow client cannot stall
// the other slots: events queue up until the handler takes them.
type outbox struct {
	mu     sync.Mutex
	events []event
	open   int // tasks not finished
	usage  usage
	err    error
	notify chan struct{}
}

func newOutbox(tasks int) *outbox {
	return &outbox{open: tasks, notify: make(chan struct{}, 1)}
}

func (o *outbox) signal() {
	select {
	case o.notify <- struct{}{}:
	default:
	}
}

func (o *outbox) send(ev event) {
	o.mu.Lock()
	o.events = append(o.events, ev)
	o.mu.Unlock()
	o.signal()
}

// finish ends one task of the request.
func (o *outbox) finish(u usage, err error) {
	o.mu.Lock()
	o.open--
	o.usage.prompt += u.prompt
	o.usage.cached += u.cached
	o.usage.completion += u.completion
	if err != nil && o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
	o.signal()
}

// take returns the events so far and whether every task has finished.
func (o *outbox) take() (evs []event, done bool, u usage, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	evs, o.events = o.events, nil
	return evs, o.open <= 0, o.usage, o.err
}

type engineConfig struct {
	parallel, slotCtx, nBatch, nUbatch, queue int
	unified                                   bool
	ctxOpts                                   []llama.ContextOption
}

func newEngine(m *llama.Model, cfg engineConfig, met *metrics, log *slog.Logger) (*engine, error) {
	opts := append([]llama.ContextOption{
		llama.WithContextSize(cfg.parallel * cfg.slotCtx),
		llama.WithSequences(cfg.parallel),
		llama.WithUnifiedKV(cfg.unified),
		llama.WithBatchSize(cfg.nBatch),
		llama.WithUBatchSize(cfg.nUbatch),
	}, cfg.ctxOpts...)
	c, err := m.NewContext(opts...)
	if err != nil {
		return nil, err
	}
	b, err := llama.NewBatch(c.BatchSize(), 1)
	if err != nil {
		c.Close()
		return nil, err
	}
	e := &engine{
		c: c, batch: b,
		nBatch: c.BatchSize(), nUbatch: min(c.UBatchSize(), c.BatchSize()),
		slotCtx: cfg.slotCtx, kvSize: c.ContextSize(),
		met: met, log: log,
		maxQueue: cfg.queue, free: cfg.parallel,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if e.nBatch < cfg.parallel {
		e.close()
		return nil, fmt.Errorf("server: the batch size %d is smaller than the %d parallel sequences", e.nBatch, cfg.parallel)
	}
	for i := range cfg.parallel {
		e.slots = append(e.slots, &slot{id: i, iBatch: -1})
	}
	n := m.VocabSize()
	e.pieces = make([]string, n)
	e.eog = make([]bool, n)
	for t := range llama.TokenID(n) {
		e.pieces[t], _ = m.TokenToPiece(t, false)
		e.eog[t] = m.IsEOG(t)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.run(ctx)
	return e, nil
}

// close stops the engine, failing the requests it holds, and frees the
// context. It is safe to call more than once.
func (e *engine) close() {
	e.mu.Lock()
	was := e.closed
	e.closed = true
	e.mu.Unlock()
	if was {
		return
	}
	if e.cancel != nil {
		e.cancel()
		<-e.done
	}
	e.batch.Close()
	e.c.Close()
}

var errShutdown = shuttingDown()

// submit queues the tasks of one request, all or none. It fails with 503
// when the queue is full or the engine is closed.
func (e *engine) submit(ts ...*task) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errShutdown
	}
	// Free slots take requests at once; beyond them, maxQueue may wait.
	if len(e.queue)+len(ts) > e.maxQueue+e.free {
		return queueFull()
	}
	e.queue = append(e.queue, ts...)
	e.met.queueDepth.Store(int64(len(e.queue)))
	e.wakeup()
	return nil
}

// wakeup makes the engine look at its queue and requests again.
func (e *engine) wakeup() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *engine) run(ctx context.Context) {
	defer close(e.done)
	for {
		e.reap()
		e.admit()
		if ctx.Err() != nil {
			e.abortAll()
			return
		}
		if len(e.active) == 0 || !e.step(ctx) {
			select {
			case <-e.wake:
			case <-ctx.Done():
			}
		}
	}
}

// abortAll fails every request, at shutdown.
func (e *engine) abortAll() {
	for len(e.active) > 0 {
		e.complete(e.active[0], errShutdown)
	}
	e.mu.Lock()
	q := e.queue
	e.queue = nil
	e.met.queueDepth.Store(0)
	e.mu.Unlock()
	for _, t := range q {
		t.closeSamplers()
		t.out.finish(usage{}, errShutdown)
	}
}

// reap ends the requests whose clients went away, freeing their slots. The
// slots keep their caches for later prefix reuse.
func (e *engine) reap() {
	for i := 0; i < len(e.active); {
		t := e.active[i]
		if err := t.ctx.Err(); err != nil {
			e.met.disconnects.Add(1)
			e.complete(t, err) // removes t from e.active
			continue
		}
		i++
	}
}

// admit moves requests from the queue to free slots, first come first
// served, and drops those whose clients went away.
func (e *engine) admit() {
	var admitted, dropped []*task
	e.mu.Lock()
	q := e.queue[:0]
	blocked := false
	for _, t := range e.queue {
		switch {
		case t.ctx.Err() != nil:
			dropped = append(dropped, t)
		case !blocked && e.free >= t.n:
			e.free -= t.n
			admitted = append(admitted, t)
		default:
			blocked = true // keep the order: no overtaking
			q = append(q, t)
		}
	}
	clear(e.queue[len(q):])
	e.queue = q
	e.met.queueDepth.Store(int64(len(q)))
	e.mu.Unlock()
	for _, t := range dropped {
		t.closeSamplers()
		t.out.finish(usage{}, t.ctx.Err())
	}
	for _, t := range admitted {
		e.assign(t)
	}
}

// assign gives an admitted task its slots: for the prompt, the free slot
// whose cache shares the longest prefix with it (the least recently used
// among equals); for the other choices, the least recently used.
func (e *engine) assign(t *task) {
	var free []*slot
	for _, s := range e.slots {
		if s.task == nil {
			free = append(free, s)
		}
	}
	best, bestLen := -1, -1
	for i, s := range free {
		l := commonPrefix(s.cache, t.prompt)
		if l > bestLen || (l == bestLen && s.used < free[best].used) {
			best, bestLen = i, l
		}
	}
	p := free[best]
	free = slices.Delete(free, best, best+1)
	slices.SortFunc(free, func(a, b *slot) int { return cmpUint(a.used, b.used) })

	keep := min(bestLen, len(t.prompt)-1) // the last prompt token is decoded again for its logits
	if keep < len(p.cache) {
		if ok, err := e.c.RemoveTokens(p.id, keep, -1); err != nil || !ok {
			_, _ = e.c.RemoveTokens(p.id, -1, -1)
			keep = 0
		}
		p.cache = p.cache[:keep]
	}
	t.cached = keep
	t.slots = append(t.slots, p)
	t.slots = append(t.slots, free[:t.n-1]...)
	t.remaining = t.n
	for i, s := range t.slots {
		s.task, s.choice = t, i
		s.hasPending, s.nGen = false, 0
		s.text = textStream{stops: t.stops}
	}
	p.prompt = t.prompt[keep:]
	e.active = append(e.active, t)
	e.met.promptTokens.Add(uint64(len(t.prompt)))
	e.met.cachedTokens.Add(uint64(keep))
	e.met.processing.Add(1)
	e.met.slotsBusy.Add(int64(t.n))
	e.updateKV()
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func commonPrefix(a, b []llama.TokenID) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// step decodes one batch and samples what it computed. It reports false
// if there was nothing to decode.
func (e *engine) step(ctx context.Context) bool {
	e.clock++
	b := e.batch
	b.Clear()
	var in []*slot
	n := 0
	// Generating slots first: one token each.
	for _, s := range e.slots {
		s.nBatch, s.iBatch, s.prompting = 0, -1, false
		if s.task == nil || !s.hasPending {
			continue
		}
		if err := b.Add(s.pending, len(s.cache), true, s.id); err != nil {
			e.fail(s.task, err)
			continue
		}
		s.nBatch, s.iBatch = 1, n
		n++
		in = append(in, s)
	}
	// Then prompts, oldest first, at most a micro-batch of them per step
	// so that generating slots keep their pace.
	budget := min(e.nBatch-n, e.nUbatch)
	for _, t := range e.active {
		s := t.slots[0]
		if budget <= 0 {
			break
		}
		if len(s.prompt) == 0 || s.nBatch > 0 {
			continue
		}
		k := min(len(s.prompt), budget)
		for j, tok := range s.prompt[:k] {
			last := j == len(s.prompt)-1
			if err := b.Add(tok, len(s.cache)+j, last, s.id); err != nil {
				panic(err) // capacity and ids are checked above
			}
			if last {
				s.iBatch = n + j
			}
		}
		s.nBatch, s.prompting = k, true
		n += k
		budget -= k
		in = append(in, s)
	}
	if n == 0 {
		return false
	}

	start := time.Now()
	err := e.c.Decode(ctx, b)
	e.met.decodeNanos.Add(uint64(time.Since(start)))
	e.met.decodeCalls.Add(1)
	if err != nil {
		// Drop what finished micro-batches left, to match the slots'
		// records, and fail the requests in the batch. A memory that
		// cannot remove part of a sequence (recurrent, hybrid) has moved
		// on: empty the slot.
		for _, s := range in {
			if ok, err := e.c.RemoveTokens(s.id, len(s.cache), -1); err != nil || !ok {
				_, _ = e.c.RemoveTokens(s.id, -1, -1)
				s.cache = s.cache[:0]
			}
		}
		if ctx.Err() != nil {
			return true // shutting down
		}
		e.log.Error("decode failed", "err", err, "tokens", n)
		for _, s := range in {
			if s.task != nil {
				e.fail(s.task, fmt.Errorf("decode failed: %w", err))
			}
		}
		return true
	}
	for _, s := range in {
		if s.prompting {
			s.cache = append(s.cache, s.prompt[:s.nBatch]...)
			s.prompt = s.prompt[s.nBatch:]
		} else {
			s.cache = append(s.cache, s.pending)
			s.hasPending = false
		}
		s.used = e.clock
	}
	for _, s := range in {
		t := s.task
		if s.iBatch < 0 || t == nil {
			continue
		}
		if !s.prompting {
			e.sample(s, s.iBatch, nil)
			continue
		}
		// The prompt is in: share it with the other choices, then sample
		// every choice from the same logits.
		for _, o := range t.slots[1:] {
			_, _ = e.c.RemoveTokens(o.id, -1, -1)
			if err := e.c.CopySequence(s.id, o.id, -1, -1); err != nil {
				e.fail(t, err)
				break
			}
			o.cache = append(o.cache[:0], s.cache...)
			o.used = e.clock
		}
		var ls *logSoftmax
		for _, o := range slices.Clone(t.slots) {
			if o.task != t {
				break // the task failed or ended
			}
			ls = e.sample(o, s.iBatch, ls)
		}
	}
	e.updateKV()
	return true
}

// sample picks the next token of slot s from the logits at batch index i,
// sends its text, and ends the choice at an end-of-generation token, a
// stop string, max_tokens or the end of the slot's context. ls holds the
// log-softmax of those logits when already computed; sample returns it.
func (e *engine) sample(s *slot, i int, ls *logSoftmax) *logSoftmax {
	t := s.task
	if t.logprobs >= 0 && ls == nil {
		logits, err := e.c.Logits(i)
		if err != nil {
			e.fail(t, err)
			return nil
		}
		v := newLogSoftmax(logits, t.logprobs)
		ls = &v
	}
	tok, err := t.samplers[s.choice].Sample(e.c, i)
	if err != nil {
		e.fail(t, err)
		return ls
	}
	ev := event{choice: t.choiceBase + s.choice}
	if e.eog[tok] {
		ev.text, ev.finish = s.text.flush(), "stop"
		t.out.send(ev)
		e.endChoice(s)
		return ls
	}
	s.nGen++
	t.generated++
	e.met.generated(1)
	var stopped bool
	ev.text, stopped = s.text.push(e.pieces[tok])
	if ls != nil {
		ev.logprobs = []tokenLogprob{ls.of(tok)}
	}
	switch {
	case stopped:
		ev.finish = "stop"
	case s.nGen >= t.maxTokens || len(s.cache) >= e.slotCtx:
		ev.text += s.text.flush()
		ev.finish = "length"
	}
	if ev.text != "" || ev.logprobs != nil || ev.finish != "" {
		t.out.send(ev)
	}
	if ev.finish != "" {
		e.endChoice(s)
		return ls
	}
	s.pending, s.hasPending = tok, true
	return ls
}

// endChoice frees the slot of a finished choice, and ends its task after
// the last one.
func (e *engine) endChoice(s *slot) {
	t := s.task
	e.freeSlot(s)
	t.remaining--
	if t.remaining == 0 {
		e.complete(t, nil)
	}
}

func (e *engine) freeSlot(s *slot) {
	if s.task == nil {
		return
	}
	s.task, s.prompt, s.hasPending = nil, nil, false
	s.text = textStream{}
	e.mu.Lock()
	e.free++
	e.mu.Unlock()
	e.met.slotsBusy.Add(-1)
	e.wakeup() // the queue may go on
}

// fail ends a task with an error.
func (e *engine) fail(t *task, err error) {
	if !errors.As(err, new(*apiError)) {
		err = internalError(err)
	}
	e.complete(t, err)
}

// complete ends a task: frees its slots, closes its samplers and reports
// to its outbox.
func (e *engine) complete(t *task, err error) {
	i := slices.Index(e.active, t)
	if i < 0 {
		return
	}
	e.active = slices.Delete(e.active, i, i+1)
	for _, s := range t.slots {
		if s.task == t {
			e.freeSlot(s)
		}
	}
	t.closeSamplers()
	e.met.processing.Add(-1)
	t.out.finish(usage{prompt: len(t.prompt), cached: t.cached, completion: t.generated}, err)
}

func (e *engine) updateKV() {
	var n int
	for _, s := range e.slots {
		n += len(s.cache)
	}
	e.met.kvTokens.Store(int64(n))
}
