package llama

/*
#include "threadpool.h"
*/
import "C"

// threadPoll is how long idle CPU threads poll for the next graph before
// they sleep, on llama.cpp's scale of 0 to 100 (its --poll): 131072 pause
// instructions a level, so 4 is some 5 to 15 ms depending on the CPU,
// about as long as OpenMP's workers spin by default. That is long enough
// for the gap between two tokens of a generation (the sampler's time) and
// short enough that idle contexts free their cores soon: at llama.cpp's
// default of 50 each idle pool kept a core spinning for a fifth of a
// second after every graph, and a few idle contexts slowed a busy one
// tenfold on two cores.
const threadPoll = 4

// setThreads gives the context threadpools of n threads for generation
// and nBatch for batches (one pool when they are equal), freeing the pools
// it had. The caller holds c.mu.
//
// Without pools of its own, a context's CPU threads depend on the calling
// OS thread: with OpenMP each thread that starts a computation gets a team
// of its own, and a goroutine that moves between threads (as goroutines
// do) leaves teams behind whose workers spin for milliseconds, taking
// cores from the team at work; without OpenMP ggml starts and joins
// threads for every graph. A pool owned by the context keeps the same
// workers whatever thread calls Decode.
func (c *Context) setThreads(n, nBatch int) {
	if c.tp != nil && c.tpSize[0] >= n && c.tpSize[1] >= nBatch {
		// The pools have the workers: a graph may use fewer threads than
		// its pool holds, so only the counts change.
		C.llama_set_n_threads(c.c, C.int32_t(n), C.int32_t(nBatch))
		return
	}
	// New pools are never smaller than the ones they replace, so that
	// SetThreads going back and forth makes no more of them.
	size := [2]int{max(n, c.tpSize[0]), max(nBatch, c.tpSize[1])}
	tp := C.llamago_threadpool_new(C.int32_t(size[0]), threadPoll)
	tpBatch := tp
	if size[1] != size[0] && tp != nil {
		tpBatch = C.llamago_threadpool_new(C.int32_t(size[1]), threadPoll)
	}
	if tp != nil && tpBatch != nil {
		C.llama_attach_threadpool(c.c, tp, tpBatch)
	} else {
		// No pools from this CPU backend: llama.cpp's own arrangement.
		C.llama_detach_threadpool(c.c)
		c.freePools(tp, tpBatch)
		tp, tpBatch = nil, nil
	}
	C.llama_set_n_threads(c.c, C.int32_t(n), C.int32_t(nBatch))
	// The CPU backend still points at the old pools, and pauses the one
	// it leaves when the next graph switches to a new one: they are freed
	// with the context, not now (freeing them hung that next decode).
	if c.tp != nil {
		c.retired = append(c.retired, [2]*C.struct_ggml_threadpool{c.tp, c.tpBatch})
	}
	c.tp, c.tpBatch = tp, tpBatch
	if tp != nil {
		c.tpSize = size
	}
}

// freeAllPools frees the context's pools, current and retired, after
// llama_free.
func (c *Context) freeAllPools() {
	for _, r := range c.retired {
		c.freePools(r[0], r[1])
	}
	c.freePools(c.tp, c.tpBatch)
	c.tp, c.tpBatch, c.retired = nil, nil, nil
}

// freePools frees a generation pool and a batch pool, which may be one.
func (c *Context) freePools(tp, tpBatch *C.struct_ggml_threadpool) {
	if tpBatch != tp {
		C.llamago_threadpool_free(tpBatch)
	}
	C.llamago_threadpool_free(tp)
}
