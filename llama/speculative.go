package llama

/*
#include "llama.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"
)

// Speculative decoding: a generation drafts a few tokens cheaply, from a
// small draft model or from n-grams of its own text (prompt lookup), and
// the model checks them all in one batch, with logits for each. The
// sequence's sampler picks a token at each drafted position in turn, as it
// would have without speculation; the drafts it agrees with are kept, and
// the cells of the others are removed from the cache. The scheduler does
// this inside its shared batches: a speculating sequence puts its last
// token and its drafts into the step's batch, next to the other sequences'
// tokens and prompts.

// ErrDraftMismatch is returned by NewContext for a draft model (see
// WithDraftModel) whose vocabulary does not match the model's; the error
// names the difference.
var ErrDraftMismatch = errors.New("llama: draft model does not match the model")

// MaxDraft is the most tokens Speculation.DraftMax may ask to draft.
const MaxDraft = 128

// maxNGram is the largest Speculation.NGram.
const maxNGram = 64

// Speculation configures speculative decoding (see WithSpeculation); its
// fields are llama.cpp's options of the same meaning.
type Speculation struct {
	// DraftMax is the most tokens drafted per step (--draft-max); 0 turns
	// speculation off. At most MaxDraft.
	DraftMax int
	// DraftMin is the fewest drafted tokens worth checking (--draft-min):
	// a shorter draft is dropped.
	DraftMin int
	// PMin ends a draft model's draft at a token whose probability under
	// the draft model is below it (--draft-p-min): drafting is greedy, and
	// an unsure draft wastes the model's work.
	PMin float32
	// NGram, when positive, drafts by prompt lookup instead of with the
	// context's draft model (--spec-ngram): the tokens that followed the
	// latest earlier occurrence of the sequence's last NGram tokens, in
	// the prompt or the text generated so far. At most 64.
	NGram int
}

// DefaultSpeculation is llama.cpp's defaults: up to 16 drafted tokens,
// no minimum, and a draft token's probability at least 0.75.
func DefaultSpeculation() Speculation {
	return Speculation{DraftMax: 16, PMin: 0.75}
}

// Validate reports a field out of range, as a generation given sp would.
func (sp Speculation) Validate() error { return sp.check() }

func (sp Speculation) check() error {
	switch {
	case sp.DraftMax < 0 || sp.DraftMax > MaxDraft:
		return invalidArg("draft max %d, want 0..%d", sp.DraftMax, MaxDraft)
	case sp.DraftMin < 0 || sp.DraftMin > sp.DraftMax && sp.DraftMax > 0:
		return invalidArg("draft min %d, want 0..%d (draft max)", sp.DraftMin, sp.DraftMax)
	case !(sp.PMin >= 0 && sp.PMin <= 1):
		return invalidArg("draft p-min %v, want 0..1", sp.PMin)
	case sp.NGram < 0 || sp.NGram > maxNGram:
		return invalidArg("n-gram size %d, want 0..%d", sp.NGram, maxNGram)
	}
	return nil
}

// WithSpeculation sets how a generation speculates. By default a
// generation in a context with a draft model (WithDraftModel) drafts with
// it, with DefaultSpeculation, and others do not speculate. DraftMax 0
// turns speculation off; NGram > 0 drafts by prompt lookup, which needs
// no draft model. With the context's draft model and NGram 0, a context
// without a draft model refuses the generation.
//
// The output is what the generation gives without speculation: the
// sequence's sampler is called once for each token it emits, on the
// model's logits after the same tokens, in the same order, so it has the
// same distribution, and with greedy sampling (or a fixed seed) the same
// tokens. (Greedy output differs only where the two best tokens are
// nearly tied: llama.cpp computes the logits of one token and of several
// with differently rounded kernels, as in any shared batch.) Stop
// strings, WithMaxTokens and the end of the context end it at the same
// token; Stats counts the drafted and accepted tokens.
func WithSpeculation(sp Speculation) GenerateOption {
	return func(c *generateConfig) { c.spec = &sp }
}

// WithDraftModel gives the context a draft model for speculative decoding
// (see WithSpeculation): a small model with the same vocabulary, which
// drafts greedily the tokens the model is likely to generate. The context
// makes a context of its own on it, with the same sequences, positions
// and batch sizes, that follows each sequence's tokens; it is closed with
// the context. The context's generations speculate with it by default.
//
// NewContext refuses a draft model whose vocabulary does not match the
// model's (ErrDraftMismatch), as llama.cpp does: the same vocabulary type,
// BOS and EOS tokens and whether they are added, sizes within 128 tokens
// of each other, and the same text for every token from id 5 on. It also
// refuses a draft, or a model, whose cache cannot drop the rejected
// tokens (a recurrent or hybrid model), and an embeddings context.
func WithDraftModel(draft *Model) ContextOption {
	return func(c *contextConfig) {
		if draft == nil {
			c.fail(invalidArg("nil draft model"))
			return
		}
		c.draft = draft
	}
}

// DraftModel returns the context's draft model, or nil (see
// WithDraftModel).
func (c *Context) DraftModel() *Model {
	if c.draft == nil {
		return nil
	}
	return c.draft.m
}

// canSpeculate says why a model cannot take part in speculation, or "".
func (m *Model) canSpeculate() string {
	switch m.info.memory {
	case memoryKV, memorySWA:
		return ""
	case memoryRecurrent:
		return "recurrent"
	default:
		return "hybrid"
	}
}

// checkDraftVocab compares the vocabularies of the model and the draft as
// llama.cpp's common_speculative_are_compatible does, naming the first
// difference. The caller holds neither model's lock.
func checkDraftVocab(m, d *Model) error {
	mismatch := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrDraftMismatch, fmt.Sprintf(format, args...))
	}
	if m.info.vocabType != d.info.vocabType {
		return mismatch("vocabulary type %v, the model's is %v", d.info.vocabType, m.info.vocabType)
	}
	if a, b := d.AddsBOS(), m.AddsBOS(); a != b {
		return mismatch("adds BOS: %v, the model: %v", a, b)
	}
	if a, b := d.AddsEOS(), m.AddsEOS(); a != b {
		return mismatch("adds EOS: %v, the model: %v", a, b)
	}
	if a, b := d.BOS(), m.BOS(); a != b {
		return mismatch("BOS token %d, the model's is %d", a, b)
	}
	if a, b := d.EOS(), m.EOS(); a != b {
		return mismatch("EOS token %d, the model's is %d", a, b)
	}
	const maxDiff = 128
	nm, nd := int(m.info.nVocab), int(d.info.nVocab)
	if nm-nd > maxDiff || nd-nm > maxDiff {
		return mismatch("%d tokens in its vocabulary, the model has %d (at most %d apart)", nd, nm, maxDiff)
	}
	if m == d {
		return nil
	}
	if err := m.rlock(); err != nil {
		return err
	}
	defer m.mu.RUnlock()
	if err := d.rlock(); err != nil {
		return err
	}
	defer d.mu.RUnlock()
	for i := 5; i < min(nm, nd); i++ {
		tm := C.GoString(C.llama_vocab_get_text(m.vocab, C.llama_token(i)))
		td := C.GoString(C.llama_vocab_get_text(d.vocab, C.llama_token(i)))
		if tm != td {
			return mismatch("token %d is %q, the model's is %q", i, td, tm)
		}
	}
	return nil
}

// newDraftContext makes the draft model's context for c, whose
// parameters were p; the caller holds c's model's lock, not the draft's.
func (c *Context) newDraftContext(d *Model, p *C.struct_llama_context_params) error {
	if c.embeddings {
		return invalidArg("a draft model in an embeddings context")
	}
	if why := c.m.canSpeculate(); why != "" {
		return invalidArg("speculative decoding needs a cache that can drop tokens; the model's is %s", why)
	}
	if why := d.canSpeculate(); why != "" {
		return invalidArg("speculative decoding needs a cache that can drop tokens; the draft model's is %s", why)
	}
	if d.vocabOnly {
		return invalidArg("draft model %s was loaded vocab-only", d.path)
	}
	if err := checkDraftVocab(c.m, d); err != nil {
		return err
	}
	dc, err := d.NewContext(
		WithContextSize(c.nCtx), WithSequences(c.nSeqMax), WithUnifiedKV(c.unifiedKV),
		WithBatchSize(c.nBatch), WithUBatchSize(c.nUbatch),
		WithThreads(int(p.n_threads)), WithBatchThreads(int(p.n_threads_batch)),
	)
	if err != nil {
		return fmt.Errorf("draft model: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draft = dc
	c.shareThreads()
	return nil
}

// shareThreads makes the draft context compute with c's threadpools and
// thread counts. Two pools taking turns on the same cores, one spinning
// while the other works, made speculation many times slower on two cores;
// the two contexts never compute at once (the draft runs under c.mu), so
// one set of workers serves both. The draft's own pools are kept, idle,
// until it closes: its CPU backend points at them until its next graph.
// The caller holds c.mu.
func (c *Context) shareThreads() {
	dc := c.draft
	if dc == nil || c.tp == nil || dc.lock() != nil {
		return
	}
	defer dc.mu.Unlock()
	C.llama_attach_threadpool(dc.c, c.tp, c.tpBatch)
	C.llama_set_n_threads(dc.c, C.llama_n_threads(c.c), C.llama_n_threads_batch(c.c))
	if dc.tp != nil {
		dc.retired = append(dc.retired, [2]*C.struct_ggml_threadpool{dc.tp, dc.tpBatch})
	}
	dc.tp, dc.tpBatch, dc.tpSize = nil, nil, [2]int{} // c's, freed with c
}

// specState is a speculating generation's: how it drafts, and the draft of
// the step it is in.
type specState struct {
	Speculation
	draft []TokenID // checked in the step: after pending
	room  int       // the most drafted tokens the step's batch has room for
	toks  []TokenID // the sequence's tokens up to pending, to draft from
}

// specConfig resolves a generation's speculation: nil when it does not
// speculate. The caller holds neither lock.
func (c *Context) specConfig(cfg *generateConfig) (*specState, error) {
	sp := cfg.spec
	if sp == nil {
		if c.draft == nil {
			return nil, nil
		}
		d := DefaultSpeculation()
		sp = &d
	}
	if err := sp.check(); err != nil {
		return nil, err
	}
	if sp.DraftMax == 0 {
		return nil, nil
	}
	if sp.NGram == 0 && c.draft == nil {
		return nil, invalidArg("speculation with a draft model, and the context has none (see WithDraftModel)")
	}
	if why := c.m.canSpeculate(); why != "" {
		return nil, invalidArg("speculative decoding needs a cache that can drop tokens; the model's is %s", why)
	}
	return &specState{Speculation: *sp}, nil
}

// draftLimit is how many tokens g may draft this step: no more than it may
// still generate after its pending token, nor than fit the sequence's
// context. The caller holds both locks.
func (s *sched) draftLimit(g *gen) int {
	k := g.spec.DraftMax
	if m := g.cfg.maxTokens; m > 0 {
		k = min(k, m-g.stats.GeneratedTokens-1)
	}
	// The token sampled after the k-th draft must still fit, as sample
	// checks: positions up to n_ctx_seq-2 are decoded.
	k = min(k, s.c.nCtxSeq-len(s.c.hist[g.seq].tokens)-2)
	return max(k, 0)
}

// lookupDraft drafts by prompt lookup: the tokens that followed the latest
// earlier occurrence of the last n tokens of toks, at most k of them.
func lookupDraft(toks []TokenID, n, k int) []TokenID {
	if len(toks) <= n || k <= 0 {
		return nil
	}
	tail := toks[len(toks)-n:]
	for i := len(toks) - n - 1; i >= 0; i-- {
		match := true
		for j := range n {
			if toks[i+j] != tail[j] {
				match = false
				break
			}
		}
		if match {
			return toks[i+n : min(i+n+k, len(toks))]
		}
	}
	return nil
}

// draftJob is one generation's drafting with the draft model in a step.
type draftJob struct {
	g      *gen
	seq    int
	toks   []TokenID // the generation's tokens, up to its pending one
	todo   []TokenID // to decode into the draft's sequence: the last has logits
	k      int       // the most tokens to draft
	pMin   float32
	next   TokenID // the token of this round
	out    []TokenID
	done   bool
	iBatch int
}

// draftWithModel drafts for jobs with the draft context, all sequences in
// shared batches: first each sequence's cache is brought up to the
// generation's tokens, then each round decodes one token of every
// sequence still drafting. The caller holds c.mu (not s.mu); the draft
// context's lock is taken here. A failure leaves the jobs without drafts.
func (c *Context) draftWithModel(jobs []*draftJob) {
	dc := c.draft
	if dc.lock() != nil {
		return
	}
	defer dc.mu.Unlock()
	if dc.sched.batch == nil {
		b, err := NewBatch(dc.nBatch, 1)
		if err != nil {
			return
		}
		dc.sched.batch = b // freed with the draft context
	}
	b := dc.sched.batch
	seqs := make([][1]int, len(jobs))
	for i, j := range jobs {
		seqs[i][0] = j.seq
	}
	// Catch up: everything but each sequence's last token, in chunks.
	n := 0
	flush := func() bool {
		if n == 0 {
			return true
		}
		b.c.n_tokens = C.int32_t(n)
		n = 0
		if err := dc.decode(context.Background(), b, false); err != nil {
			// The histories ran ahead of the cache: the next sync
			// empties these sequences.
			for _, j := range jobs {
				dc.hist[j.seq].valid = false
				j.done = true
			}
			return false
		}
		return true
	}
	for i, j := range jobs {
		j.todo = dc.syncDraft(j.seq, j.toks)
		if slices.ContainsFunc(j.todo, func(t TokenID) bool { return !dc.m.validToken(t) }) {
			// A token beyond the draft's vocabulary (which may be
			// smaller) would abort llama.cpp: no draft.
			j.done = true
			continue
		}
		h := &dc.hist[j.seq]
		for _, t := range j.todo[:len(j.todo)-1] {
			if n == b.cap && !flush() {
				return
			}
			b.set(n, t, len(h.tokens), false, seqs[i][:])
			h.tokens = append(h.tokens, t)
			n++
		}
		j.next = j.todo[len(j.todo)-1]
	}
	if !flush() {
		return
	}
	nv := int(dc.m.info.nVocab)
	for {
		n = 0
		for i, j := range jobs {
			if j.done {
				continue
			}
			h := &dc.hist[j.seq]
			b.set(n, j.next, len(h.tokens), true, seqs[i][:])
			h.tokens = append(h.tokens, j.next)
			j.iBatch = n
			n++
		}
		if n == 0 || !flush() {
			return
		}
		for _, j := range jobs {
			if j.done {
				continue
			}
			p := C.llama_get_logits_ith(dc.c, C.int32_t(j.iBatch))
			if p == nil {
				j.done = true
				continue
			}
			t, prob := topToken(unsafe.Slice((*float32)(unsafe.Pointer(p)), nv))
			if prob < j.pMin || !c.m.validToken(t) {
				j.done = true
				continue
			}
			j.out = append(j.out, t)
			j.next = t
			if len(j.out) >= j.k {
				j.done = true
			}
		}
	}
}

// dropTail removes from seq's cache what its history does not hold (a
// failed decode's leftovers); the caller holds c.mu.
func (c *Context) dropTail(seq int) {
	h := &c.hist[seq]
	if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), C.llama_pos(len(h.tokens)), -1) {
		h.valid = false
	}
}

// syncDraft prepares the draft's cache of seq for toks, the generation's
// tokens up to its pending one: the common prefix is kept, and todo is
// what remains to decode (at least the last token, for its logits). The
// caller holds both contexts' locks.
func (dc *Context) syncDraft(seq int, toks []TokenID) (todo []TokenID) {
	h := &dc.hist[seq]
	if !h.valid {
		C.llama_memory_seq_rm(dc.mem, C.llama_seq_id(seq), -1, -1)
		h.tokens, h.valid = h.tokens[:0], true
	}
	p := commonPrefix(h.tokens, toks)
	if p == len(toks) {
		p--
	}
	if p < len(h.tokens) {
		if !C.llama_memory_seq_rm(dc.mem, C.llama_seq_id(seq), C.llama_pos(p), -1) {
			C.llama_memory_seq_rm(dc.mem, C.llama_seq_id(seq), -1, -1)
			p = 0
		}
		h.tokens = h.tokens[:p]
	}
	return toks[p:]
}

// topToken returns the most likely token of logits and its probability.
func topToken(logits []float32) (TokenID, float32) {
	best := 0
	for i, l := range logits {
		if l > logits[best] {
			best = i
		}
	}
	top := float64(logits[best])
	if math.IsInf(top, 0) || math.IsNaN(top) {
		return TokenID(best), 0
	}
	sum := 0.0
	for _, l := range logits {
		sum += math.Exp(float64(l) - top)
	}
	return TokenID(best), float32(1 / sum)
}
