package server

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/llamago/llamago/llama"
)

// embedder computes embeddings in a context of its own, made on first use
// with pooled embeddings: the model's pooling when its file names one (an
// embedding model), else the mean of the token embeddings (a generative
// model). Requests take turns; generation goes on meanwhile in the
// engine's context.
//
// llama's Model.Embed does the same job, but it aborts the process in
// llama.cpp (GGML_ASSERT in ggml_can_mul_mat, in llama_init_from_model)
// for some sets of texts, such as "Once upon a time" and "hello" with
// stories260K, and a server must not let a request do that.
type embedder struct {
	mu   sync.Mutex
	m    *llama.Model
	size int // most tokens of one input
	opts []llama.ContextOption
	c    *llama.Context
	b    *llama.Batch
	err  error // the context could not be made
}

func newEmbedder(m *llama.Model, size int, opts []llama.ContextOption) *embedder {
	return &embedder{m: m, size: size, opts: opts}
}

func (e *embedder) init() error {
	if e.c != nil || e.err != nil {
		return e.err
	}
	pooling := llama.PoolingMean
	if _, ok := e.m.Metadata(e.m.Architecture() + ".pooling_type"); ok {
		pooling = llama.PoolingUnspecified
	}
	opts := append(append([]llama.ContextOption(nil), e.opts...),
		llama.WithContextSize(e.size),
		llama.WithBatchSize(e.size),
		llama.WithUBatchSize(e.size), // a sequence is pooled within one micro-batch
		llama.WithSequences(1),
		llama.WithEmbeddings(pooling),
	)
	c, err := e.m.NewContext(opts...)
	if err != nil {
		e.err = fmt.Errorf("could not make the embeddings context: %w", err)
		return e.err
	}
	if p := c.Pooling(); p == llama.PoolingNone || p == llama.PoolingRank {
		c.Close()
		e.err = fmt.Errorf("the model's pooling (%v) gives no embeddings of texts", p)
		return e.err
	}
	b, err := llama.NewBatch(e.size, 1)
	if err != nil {
		c.Close()
		e.err = err
		return err
	}
	e.c, e.b = c, b
	return nil
}

// embed returns the embedding of each input, cut to its first dims values
// when dims > 0, and L2-normalised.
func (e *embedder) embed(ctx context.Context, inputs [][]llama.TokenID, dims int) ([][]float32, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.init(); err != nil {
		return nil, internalError(err)
	}
	out := make([][]float32, len(inputs))
	for i, toks := range inputs {
		if err := e.c.ClearMemory(); err != nil {
			return nil, err
		}
		e.b.Clear()
		for p, t := range toks {
			if err := e.b.Add(t, p, true, 0); err != nil {
				return nil, err
			}
		}
		if err := e.c.Decode(ctx, e.b); err != nil {
			return nil, err
		}
		v, err := e.c.SequenceEmbeddings(0)
		if err != nil {
			return nil, err
		}
		if dims > 0 && dims < len(v) {
			v = v[:dims]
		}
		out[i] = normalize(v)
	}
	return out, nil
}

// normalize returns a copy of v scaled to unit length (v itself if zero).
func normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	norm := math.Sqrt(sum)
	for i, x := range v {
		if norm > 0 {
			out[i] = float32(float64(x) / norm)
		} else {
			out[i] = x
		}
	}
	return out
}

func (e *embedder) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.c != nil {
		e.b.Close()
		e.c.Close()
		e.c, e.b = nil, nil
	}
	e.err = errShutdown
}
