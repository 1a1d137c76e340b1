package llama

/*
#include "llama.h"
*/
import "C"

import (
	"sync"
	"unsafe"
)

// Batch is a reusable set of tokens to decode: each with a position, the
// sequences it belongs to, and whether its logits are wanted. Its memory is
// allocated in C once; Add and Clear do not allocate.
//
// A Batch may be used by one goroutine at a time; concurrent use is
// serialised, never a crash.
type Batch struct {
	mu      sync.Mutex
	c       C.struct_llama_batch
	cap     int
	nSeqMax int
	closed  bool
}

// NewBatch allocates a batch of up to capacity tokens, each belonging to at
// most seqsPerToken sequences (1 unless sequences share tokens).
func NewBatch(capacity, seqsPerToken int) (*Batch, error) {
	if capacity < 1 || capacity > 1<<24 {
		return nil, invalidArg("batch capacity %d", capacity)
	}
	if seqsPerToken < 1 || seqsPerToken > MaxSequences() {
		return nil, invalidArg("%d sequences per token, want 1..%d", seqsPerToken, MaxSequences())
	}
	initBackend()
	return &Batch{
		c:       C.llama_batch_init(C.int32_t(capacity), 0, C.int32_t(seqsPerToken)),
		cap:     capacity,
		nSeqMax: seqsPerToken,
	}, nil
}

// Cap is the most tokens the batch holds.
func (b *Batch) Cap() int { return b.cap }

// Len is the number of tokens added since the last Clear.
func (b *Batch) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return int(b.c.n_tokens)
}

// Add appends token t at position pos of the given sequences (sequence 0 if
// none are given). logits asks for the token's logits (or embedding) to be
// kept after Decode.
func (b *Batch) Add(t TokenID, pos int, logits bool, seqs ...int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	n := int(b.c.n_tokens)
	if n >= b.cap {
		return ErrBatchFull
	}
	if len(seqs) > b.nSeqMax {
		return invalidArg("token in %d sequences, batch allows %d", len(seqs), b.nSeqMax)
	}
	if pos < 0 || pos > 1<<31-1 {
		return invalidArg("position %d", pos)
	}
	for _, s := range seqs {
		if s < 0 || s >= MaxSequences() {
			return invalidArg("sequence id %d", s)
		}
	}
	b.set(n, t, pos, logits, seqs)
	b.c.n_tokens++
	return nil
}

func (b *Batch) set(i int, t TokenID, pos int, logits bool, seqs []int) {
	unsafe.Slice(b.c.token, b.cap)[i] = C.llama_token(t)
	unsafe.Slice(b.c.pos, b.cap)[i] = C.llama_pos(pos)
	ids := unsafe.Slice(unsafe.Slice(b.c.seq_id, b.cap)[i], b.nSeqMax)
	if len(seqs) == 0 {
		ids[0] = 0
		unsafe.Slice(b.c.n_seq_id, b.cap)[i] = 1
	} else {
		for j, s := range seqs {
			ids[j] = C.llama_seq_id(s)
		}
		unsafe.Slice(b.c.n_seq_id, b.cap)[i] = C.int32_t(len(seqs))
	}
	var l C.int8_t
	if logits {
		l = 1
	}
	unsafe.Slice(b.c.logits, b.cap)[i] = l
}

// SetLogits changes whether the logits of the i-th token are kept.
func (b *Batch) SetLogits(i int, on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if i < 0 || i >= int(b.c.n_tokens) {
		return invalidArg("batch index %d of %d", i, b.c.n_tokens)
	}
	var l C.int8_t
	if on {
		l = 1
	}
	unsafe.Slice(b.c.logits, b.cap)[i] = l
	return nil
}

// Clear empties the batch for reuse.
func (b *Batch) Clear() {
	b.mu.Lock()
	b.c.n_tokens = 0
	b.mu.Unlock()
}

// Close frees the batch. It is safe to call more than once.
func (b *Batch) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		C.llama_batch_free(b.c)
		b.c = C.struct_llama_batch{}
		b.closed = true
	}
	return nil
}

// tokens returns views of the batch's arrays; the caller holds b.mu.
func (b *Batch) view() (tokens []C.llama_token, pos []C.llama_pos, nSeq []C.int32_t, seqs []*C.llama_seq_id, logits []C.int8_t) {
	n := int(b.c.n_tokens)
	return unsafe.Slice(b.c.token, n), unsafe.Slice(b.c.pos, n), unsafe.Slice(b.c.n_seq_id, n),
		unsafe.Slice(b.c.seq_id, n), unsafe.Slice(b.c.logits, n)
}
