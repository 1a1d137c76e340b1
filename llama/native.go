package llama

/*
#include "llama.h"
#include "native.h"
*/
import "C"

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// NativeBench runs one repetition of llama-bench's timed loop, written in
// C and compiled against the same llama.cpp, on this context, and returns
// its duration. It is there to measure what the Go binding costs: `llamago
// bench --native` times the same loop written with Batch, Decode and
// Synchronize, alternating the two, and reports the ratio.
//
// The loop decodes nPrompt random tokens (the first one BOS, if the
// vocabulary adds one) in batches of nBatch, keeping the logits of the last
// token of each batch, then synchronizes (llama-bench's test_prompt); then
// it decodes nGen tokens one at a time, the first one BOS (if added) and
// the others random, synchronizing after each (test_gen). Tokens go to
// sequence 0 after the positions it already holds; clear the memory
// (ClearMemory) between repetitions as llama-bench does. Nothing is
// sampled and no logits are read: Logits returns ErrNoLogits afterwards.
//
// It returns ErrContextFull if the sequence has no room for nPrompt+nGen
// more tokens, and a *DecodeError if llama_decode fails.
func (c *Context) NativeBench(nPrompt, nGen, nBatch int) (time.Duration, error) {
	if nPrompt < 0 || nGen < 0 || nPrompt+nGen == 0 || nPrompt > 1<<30 || nGen > 1<<30 {
		return 0, invalidArg("native bench of %d prompt and %d generated tokens", nPrompt, nGen)
	}
	if nBatch < 1 || nBatch > c.nBatch {
		return 0, invalidArg("native bench batch of %d tokens, context's batch size is %d", nBatch, c.nBatch)
	}
	if err := c.lock(); err != nil {
		return 0, err
	}
	defer c.mu.Unlock()
	next := int(C.llama_memory_seq_pos_max(c.mem, 0)) + 1
	if room := int(C.llama_n_ctx_seq(c.c)) - next; nPrompt+nGen > room {
		return 0, fmt.Errorf("%w: native bench needs %d positions, sequence 0 has %d left", ErrContextFull, nPrompt+nGen, room)
	}
	c.hist[0].valid = false
	c.outputs = c.outputs[:0]
	r := C.llamago_native_bench(c.c, C.int32_t(nPrompt), C.int32_t(nGen), C.int32_t(nBatch), C.uint64_t(rand.Uint64()))
	switch r.status {
	case 0:
		return time.Duration(r.ns), nil
	case 1:
		return 0, fmt.Errorf("%w: no room in the KV cache", ErrContextFull)
	}
	return 0, &DecodeError{Code: int(r.status)}
}

// Synchronize waits until the computations of the last Decode or Encode
// have finished (llama_synchronize). With the CPU backend Decode returns
// when they have; with an accelerator the results may still be on their
// way until Synchronize, or until logits or embeddings are read, which
// synchronize by themselves. Timing loops call it, as llama-bench does.
func (c *Context) Synchronize() error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	C.llama_synchronize(c.c)
	return nil
}
