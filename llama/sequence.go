package llama

/*
#include "llama.h"
*/
import "C"

import (
	"context"
	"errors"
	"iter"
)

var (
	// ErrNoSequence is returned by NewSequence when every sequence of the
	// context is taken (see WithSequences).
	ErrNoSequence = errors.New("llama: no free sequence in the context")

	// ErrBusy is returned by a Sequence's Generate, and by Clear, while
	// another generation runs in the sequence.
	ErrBusy = errors.New("llama: sequence is busy with another generation")
)

// Sequence is one sequence of a Context, held by one owner: its KV cells,
// the tokens they hold, and one generation at a time. The next generation
// decodes only the part of its prompt after the longest prefix the
// sequence already holds.
//
// Generations in different sequences of a Context, from different
// goroutines, are decoded together in shared batches (see Context).
// Cancelling a generation's context.Context drops its sequence from the
// next batch; the other sequences go on. Close the sequence when done: its
// cells are freed for the next owner.
type Sequence struct {
	c      *Context
	id     int
	closed bool // under c.sched.mu
}

// NewSequence takes a free sequence of the context for the caller, empty.
// It returns ErrNoSequence when every sequence (see WithSequences) is held
// by another Sequence or busy with a Context.Generate.
func (c *Context) NewSequence() (*Sequence, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	s := &c.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	best := -1
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.owner != nil || sl.gen != nil {
			continue
		}
		if best < 0 || sl.used < s.slots[best].used {
			best = i
		}
	}
	if best < 0 {
		return nil, ErrNoSequence
	}
	q := &Sequence{c: c, id: best}
	s.slots[best].owner = q
	c.clearSeq(best)
	return q, nil
}

// clearSeq empties a sequence's cache; the caller holds c.mu.
func (c *Context) clearSeq(seq int) {
	C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), -1, -1)
	c.hist[seq] = history{tokens: c.hist[seq].tokens[:0], valid: true}
}

// ID is the sequence's id in the context, as Batch, Context.RemoveTokens
// and the state functions take it.
func (q *Sequence) ID() int { return q.id }

// Context is the context the sequence belongs to.
func (q *Sequence) Context() *Context { return q.c }

// Generate tokenizes prompt and streams the tokens the model generates
// after it in this sequence: see Context.Generate. A second generation in
// the same sequence while one runs fails with ErrBusy.
func (q *Sequence) Generate(ctx context.Context, prompt string, opts ...GenerateOption) iter.Seq2[Token, error] {
	return q.c.generateText(ctx, q, prompt, opts)
}

// GenerateTokens is Generate with a tokenized prompt.
func (q *Sequence) GenerateTokens(ctx context.Context, prompt []TokenID, opts ...GenerateOption) iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		q.c.generate(ctx, q, prompt, newGenerateConfig(opts), yield)
	}
}

// Complete runs Generate to the end and returns the text and statistics:
// see Context.Complete.
func (q *Sequence) Complete(ctx context.Context, prompt string, opts ...GenerateOption) (Completion, error) {
	return complete(q.Generate, ctx, prompt, opts)
}

// Tokens returns the tokens the sequence's cache holds, at positions
// 0..len-1; ok is false when that is not known (after a Decode of the
// caller's own into the sequence, say).
func (q *Sequence) Tokens() (tokens []TokenID, ok bool) {
	return q.c.SequenceTokens(q.id)
}

// Clear empties the sequence's cache.
func (q *Sequence) Clear() error {
	c := q.c
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	s := &c.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case q.closed:
		return ErrClosed
	case s.slots[q.id].gen != nil:
		return ErrBusy
	}
	c.clearSeq(q.id)
	return nil
}

// Close ends the generation running in the sequence, if any, with
// ErrClosed, empties the sequence's cache and gives the sequence back to
// the context. It is safe to call more than once.
func (q *Sequence) Close() error {
	c := q.c
	s := &c.sched
	s.mu.Lock()
	if q.closed {
		s.mu.Unlock()
		return nil
	}
	q.closed = true
	if g := s.slots[q.id].gen; g != nil && !g.gone {
		// Its caller sees ErrClosed at its next token; Close waits only
		// for the step in progress, so that it may be called from the
		// caller's loop.
		g.closing = true
		s.leaveStep(g)
		g.signal()
		for g.inStep {
			s.stepEnd.Wait()
		}
	}
	s.mu.Unlock()
	if c.lock() != nil {
		return nil // the context is closed, and its cache freed
	}
	defer c.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	c.clearSeq(q.id)
	sl := &s.slots[q.id]
	sl.owner = nil
	if sl.gen == nil {
		s.release() // else when the generation's caller leaves
	}
	return nil
}
