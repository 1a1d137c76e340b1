package llama

/*
#include <stdlib.h>
#include "llama.h"
#include "perplexity_check.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// checkPerplexity runs the C computation of llama-perplexity's method
// (perplexity_check.c) on text, in sequence 0 of c, for the tests: the
// running perplexity after each chunk, and the final sums.
func (c *Context) checkPerplexity(text string, window, nBatch, chunks int) (running []float64, nll, nll2 float64, count int, err error) {
	if window < 4 || nBatch < 1 || nBatch > c.nBatch || window > c.nCtxSeq || len(text) > 1<<30 {
		return nil, 0, 0, 0, invalidArg("check perplexity: window %d, batch %d", window, nBatch)
	}
	if err := c.lock(); err != nil {
		return nil, 0, 0, 0, err
	}
	defer c.mu.Unlock()
	for i := range c.hist {
		c.hist[i].valid = false
	}
	c.outputs = c.outputs[:0]
	n := len(text)/window + 1
	if chunks > 0 {
		n = min(n, chunks)
	}
	out := make([]float64, n)
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	r := C.llamago_check_perplexity(c.c, ctext, C.int32_t(len(text)), C.int32_t(window), C.int32_t(nBatch),
		C.int32_t(n), (*C.double)(unsafe.Pointer(&out[0])))
	if r.status != 0 {
		return nil, 0, 0, 0, fmt.Errorf("llama: check perplexity: status %d", r.status)
	}
	return out[:r.chunks], float64(r.nll), float64(r.nll2), int(r.count), nil
}
