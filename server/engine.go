package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/llamago/llamago/llama"
)

// The engine runs the server's generations on llama's scheduler: one
// llama.Context of Parallel sequences (slots), in which every choice of
// every admitted request is a Context.GenerateTokens of its own. The
// scheduler decodes them together, the next token of each generating
// sequence and chunks of the prompts being read in one batch (continuous
// batching), and gives each generation the free sequence whose cache
// shares the longest prefix with its prompt, so that a follow-up in a
// conversation decodes only what is new.
//
// What is the server's is kept here: requests wait in a bounded queue
// until enough sequences are free for all their choices, first come first
// served, and the metrics. A request with n > 1 choices starts its first
// choice alone; the others start once it has read the prompt, and begin
// from its cache where that is worth the copy (see llama's scheduler).
//
// The KV cache is split by default: one stream of SlotContext cells per
// sequence (llama.cpp's default for a fixed number of slots). Each token
// then attends over the cells of its own sequence only. With a unified
// cache (Config.UnifiedKV) every token attends over every used cell of the
// cache, the other sequences masked: on stories260K, eight sequences
// decoded together took 4.4 ms a step unified against 1.8 ms split. What a
// unified cache saves is memory and copying for n > 1: the choices share
// the prompt's cells, where the split cache copies the whole stream of the
// prompt's sequence. Either way each generation is kept to SlotContext
// positions here.
type engine struct {
	c       *llama.Context
	spec    *llama.Speculation // nil: the context's default
	slotCtx int
	kvSize  int
	met     *metrics
	log     *slog.Logger

	mu       sync.Mutex
	queue    []*task // waiting for slots, in arrival order
	maxQueue int
	free     int // slots without a choice
	closed   bool
	running  sync.WaitGroup // admitted tasks
}

// task is one prompt of a request, with its n choices.
type task struct {
	ctx        context.Context
	prompt     []llama.TokenID // with media, the text's tokens (markers as text)
	media      *mediaPrompt
	proj       *llama.Projector
	n          int
	choiceBase int // index of its first choice in the response
	maxTokens  int
	stops      []string
	samplers   []*llama.Sampler // one per choice; the engine closes them
	logprobs   int              // -1: none; else the alternatives per token
	out        *outbox

	mu        sync.Mutex
	generated int
	cached    int
	positions int // with media: the prompt's positions, images included
	drafted   int
	accepted  int
	err       error
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

// tokenLogprob is a generated token's log-probability, with the most
// likely alternatives.
type tokenLogprob struct {
	ID      llama.TokenID
	Logprob float64
	Top     []llama.TokenLogprob // most likely first
	none    bool                 // the first token of an echoed prompt: no logprob
}

// usage counts the tokens of a request.
type usage struct {
	prompt, cached, completion int
	drafted, accepted          int // speculative decoding's tokens
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
	o.usage.drafted += u.drafted
	o.usage.accepted += u.accepted
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
	draft                                     *llama.Model       // for the generations' context only
	spec                                      *llama.Speculation // nil: the context's default
}

func newEngine(m *llama.Model, cfg engineConfig, met *metrics, log *slog.Logger) (*engine, error) {
	opts := append([]llama.ContextOption{
		llama.WithContextSize(cfg.parallel * cfg.slotCtx),
		llama.WithSequences(cfg.parallel),
		llama.WithUnifiedKV(cfg.unified),
		llama.WithBatchSize(cfg.nBatch),
		llama.WithUBatchSize(cfg.nUbatch),
	}, cfg.ctxOpts...)
	if cfg.draft != nil {
		opts = append(opts, llama.WithDraftModel(cfg.draft))
	}
	c, err := m.NewContext(opts...)
	if err != nil {
		return nil, err
	}
	if c.BatchSize() < cfg.parallel {
		c.Close()
		return nil, fmt.Errorf("server: the batch size %d is smaller than the %d parallel sequences", c.BatchSize(), cfg.parallel)
	}
	return &engine{
		c: c, slotCtx: cfg.slotCtx, kvSize: c.ContextSize(), spec: cfg.spec,
		met: met, log: log,
		maxQueue: cfg.queue, free: cfg.parallel,
	}, nil
}

// close fails the requests that wait, ends those that run (their
// generations end with llama.ErrClosed) and frees the context. It is safe
// to call more than once.
func (e *engine) close() {
	e.mu.Lock()
	was := e.closed
	e.closed = true
	q := e.queue
	e.queue = nil
	e.met.queueDepth.Store(0)
	e.mu.Unlock()
	if was {
		return
	}
	for _, t := range q {
		t.closeSamplers()
		t.out.finish(usage{}, errShutdown)
	}
	e.c.Close()
	e.running.Wait()
}

var errShutdown = shuttingDown()

// submit queues the tasks of one request, all or none. It fails with 503
// when the queue is full or the engine is closed.
func (e *engine) submit(ts ...*task) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errShutdown
	}
	// Free slots take requests at once; beyond them, maxQueue may wait.
	if len(e.queue)+len(ts) > e.maxQueue+e.free {
		e.mu.Unlock()
		return queueFull()
	}
	e.queue = append(e.queue, ts...)
	e.met.queueDepth.Store(int64(len(e.queue)))
	e.mu.Unlock()
	e.admit()
	return nil
}

// admit starts the queued requests that free slots can take, first come
// first served, and drops those whose clients went away.
func (e *engine) admit() {
	var admitted, dropped []*task
	e.mu.Lock()
	q := e.queue[:0]
	blocked := false
	for _, t := range e.queue {
		switch {
		case t.ctx.Err() != nil:
			dropped = append(dropped, t)
		case !blocked && !e.closed && e.free >= t.n:
			e.free -= t.n
			e.running.Add(1)
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
		e.met.promptTokens.Add(uint64(len(t.prompt)))
		e.met.processing.Add(1)
		e.met.slotsBusy.Add(int64(t.n))
		go e.run(t)
	}
}

// run generates the choices of an admitted task, and frees its slots.
func (e *engine) run(t *task) {
	defer e.running.Done()
	ctx, cancel := context.WithCancel(t.ctx)
	defer cancel()
	first := make(chan struct{}) // closed when choice 0 has read the prompt
	var once sync.Once
	read := func() { once.Do(func() { close(first) }) }
	var wg sync.WaitGroup
	for i := range t.n {
		wg.Go(func() {
			if i == 0 {
				defer read()
			} else {
				<-first
			}
			if err := e.choice(ctx, t, i, read); err != nil {
				cancel() // a failed choice fails the request
			}
			e.met.slotsBusy.Add(-1)
		})
	}
	wg.Wait()
	t.closeSamplers()
	e.met.processing.Add(-1)
	e.met.cachedTokens.Add(uint64(t.cached))
	e.mu.Lock()
	e.free += t.n
	e.mu.Unlock()
	if t.err != nil && errors.Is(t.err, context.Canceled) && t.ctx.Err() != nil {
		e.met.disconnects.Add(1)
	}
	prompt := len(t.prompt)
	if t.positions > 0 {
		prompt = t.positions // the images' positions included
	}
	t.out.finish(usage{prompt: prompt, cached: t.cached, completion: t.generated, drafted: t.drafted, accepted: t.accepted}, t.err)
	e.admit()
}

// choice generates choice i of t, sending its text as it comes. read is
// called once the prompt is read.
func (e *engine) choice(ctx context.Context, t *task, i int, read func()) error {
	var st llama.Stats
	opts := []llama.GenerateOption{
		// A generation ends where its slot's context does.
		llama.WithMaxTokens(min(t.maxTokens, e.slotCtx-len(t.prompt))),
		llama.WithStop(t.stops...),
		llama.WithSampler(t.samplers[i]),
		llama.WithStats(&st),
	}
	if t.logprobs >= 0 {
		opts = append(opts, llama.WithLogprobs(t.logprobs))
	}
	if e.spec != nil {
		opts = append(opts, llama.WithSpeculation(*e.spec))
	}
	n := 0
	var err error
	stream := e.c.GenerateTokens(ctx, t.prompt, opts...)
	if m := t.media; m != nil {
		// The images take positions of their own: the slot's context,
		// not WithMaxTokens, ends such a generation.
		opts[0] = llama.WithMaxTokens(t.maxTokens)
		opts = append(opts, llama.WithImages(t.proj, m.images...), llama.WithTokenizeFlags(m.flags))
		stream = e.c.Generate(ctx, m.text, opts...)
	}
	for tok, gerr := range stream {
		read()
		if gerr != nil {
			err = gerr
			break
		}
		ev := event{choice: t.choiceBase + i, text: tok.Text}
		if tok.ID != llama.NullToken {
			n++
			e.met.generated(1)
			if t.logprobs >= 0 {
				ev.logprobs = []tokenLogprob{{ID: tok.ID, Logprob: tok.Logprob, Top: tok.TopLogprobs}}
			}
		}
		if ev.text != "" || ev.logprobs != nil {
			t.out.send(ev)
		}
	}
	finish := ""
	switch st.StopReason {
	case llama.StopEOG, llama.StopString:
		finish = "stop"
	case llama.StopMaxTokens, llama.StopContextFull:
		finish, err = "length", nil
	}
	if err == nil && finish != "" {
		t.out.send(event{choice: t.choiceBase + i, finish: finish})
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.generated += n
	t.drafted += st.DraftTokens
	t.accepted += st.AcceptedTokens
	if i == 0 {
		t.cached = st.CachedTokens
		if t.media != nil {
			t.positions = st.PromptTokens
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, llama.ErrClosed):
		err = errShutdown
	case t.media != nil && n == 0 && errors.Is(err, llama.ErrContextFull):
		err = badRequestCode("messages", "context_length_exceeded", "The messages and their images do not fit the context of %d positions.", e.slotCtx)
	case t.media != nil && (errors.Is(err, llama.ErrInvalidImage) || errors.Is(err, llama.ErrInvalidArgument)):
		err = badRequest("messages", "%s", strings.TrimPrefix(err.Error(), "llama: "))
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// The client went away, or another choice failed.
	case !errors.As(err, new(*apiError)):
		e.log.Error("generation failed", "err", err)
		err = internalError(err)
	}
	if err != nil && (t.err == nil || errors.Is(t.err, context.Canceled)) {
		t.err = err
	}
	return err
}

// refresh updates the metrics the scheduler and the cache hold.
func (e *engine) refresh() {
	bs := e.c.BatchStats()
	e.met.decodeNanos.Store(uint64(bs.DecodeTime))
	e.met.decodeCalls.Store(bs.Batches)
	var n int64
	for id := range e.c.Sequences() {
		if lo, hi, err := e.c.PositionRange(id); err == nil && hi >= lo && lo >= 0 {
			n += int64(hi - lo + 1)
		}
	}
	e.met.kvTokens.Store(n)
}
