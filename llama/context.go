package llama

/*
#include <stdlib.h>
#include "llama.h"
#include "shim.h"
#include "ctxfree.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/llamago/llamago/internal/clock"
)

// Context is an inference session over a Model: its KV cache (memory),
// batch buffers and threads. It holds independent sequences, numbered from
// 0 (WithSequences, up to MaxSequences).
//
// Generate and the Sequences that NewSequence hands out may be used from
// several goroutines at once: their generations are decoded together in
// shared batches, each sequence with its own cache, sampler and
// cancellation (continuous batching). The lower-level calls (Decode,
// RemoveTokens, the state functions) act on the sequences they name and
// are serialised by a mutex, so mixing them with running generations
// gives muddled sequences, never a crash. Close it when done; closing the
// Model closes it too.
type Context struct {
	mu     sync.Mutex
	m      *Model
	c      *C.struct_llama_context
	mem    C.llama_memory_t
	closed bool

	tp, tpBatch *C.struct_ggml_threadpool      // CPU threads (see setThreads)
	tpSize      [2]int                         // their threads
	retired     [][2]*C.struct_ggml_threadpool // replaced by SetThreads
	// abort is llama.cpp's abort flag: set while a decode's ctx is done, or
	// while the context closes; read by llamago_abort during a decode. The
	// goroutines that watch a ctx set it without c.mu, so the pointer is
	// guarded by abortMu, and Close frees it under that lock.
	abortMu sync.Mutex
	abort   *C.int32_t
	closing bool // Close has begun: the flag stays set

	nCtx, nBatch, nUbatch, nSeqMax int
	nCtxSeq                        int
	embeddings                     bool
	unifiedKV                      bool // one KV stream for all sequences
	pooling                        Pooling

	outputs  []bool         // logits flags of the last decoded batch
	hist     []history      // per sequence: the tokens Generate knows are cached
	adapters []adapterScale // fixed at creation
	sched    sched          // runs the generations
	draft    *Context       // the draft model's, for speculative decoding

	lastYield clock.Time // see yield
}

// history records the tokens of a sequence in the KV cache, at positions
// 0..len-1, so Generate can reuse a common prefix. valid is false once the
// cache was changed behind Generate's back.
type history struct {
	tokens []TokenID
	valid  bool
}

// FlashAttention selects when flash attention is used.
type FlashAttention int

// Flash attention modes, as llama.cpp's --flash-attn.
const (
	FlashAttentionAuto FlashAttention = -1
	FlashAttentionOff  FlashAttention = 0
	FlashAttentionOn   FlashAttention = 1
)

// Pooling says how token embeddings are combined into one per sequence.
type Pooling int

// Pooling types, as llama.cpp's enum llama_pooling_type.
const (
	PoolingUnspecified Pooling = -1 // the model's own
	PoolingNone        Pooling = 0
	PoolingMean        Pooling = 1
	PoolingCLS         Pooling = 2
	PoolingLast        Pooling = 3
	PoolingRank        Pooling = 4 // reranking: one score per sequence
)

// RopeScaling is a RoPE context-extension method.
type RopeScaling int

// RoPE scaling types, as llama.cpp's enum llama_rope_scaling_type.
const (
	RopeScalingUnspecified RopeScaling = -1
	RopeScalingNone        RopeScaling = 0
	RopeScalingLinear      RopeScaling = 1
	RopeScalingYaRN        RopeScaling = 2
	RopeScalingLongRoPE    RopeScaling = 3
)

// CacheType is the data type of the K or V cache.
type CacheType int

// KV cache types (ggml types that llama.cpp accepts for the cache).
const (
	CacheF32    CacheType = 0
	CacheF16    CacheType = 1
	CacheQ4_0   CacheType = 2
	CacheQ4_1   CacheType = 3
	CacheQ5_0   CacheType = 6
	CacheQ5_1   CacheType = 7
	CacheQ8_0   CacheType = 8
	CacheIQ4_NL CacheType = 20
	CacheBF16   CacheType = 30
)

var cacheTypeNames = map[CacheType]string{
	CacheF32: "f32", CacheF16: "f16", CacheBF16: "bf16", CacheQ8_0: "q8_0", CacheQ4_0: "q4_0",
	CacheQ4_1: "q4_1", CacheIQ4_NL: "iq4_nl", CacheQ5_0: "q5_0", CacheQ5_1: "q5_1",
}

func (t CacheType) String() string {
	if s, ok := cacheTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("CacheType(%d)", int(t))
}

// ParseCacheType parses a cache type name as llama.cpp's --cache-type-k
// spells it: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1.
func ParseCacheType(s string) (CacheType, error) {
	for t, name := range cacheTypeNames {
		if name == s {
			return t, nil
		}
	}
	return 0, invalidArg("unknown cache type %q", s)
}

type contextConfig struct {
	optErr
	params   C.struct_llama_context_params
	adapters []adapterScale
	draft    *Model // WithDraftModel
}

// ContextOption configures NewContext. An option not given keeps
// llama.cpp's default; NewContext refuses an invalid one.
type ContextOption func(*contextConfig)

// WithContextSize sets n_ctx, the number of positions in the KV cache,
// shared by all sequences; 0 means the model's trained context. llama.cpp
// rounds it up to a multiple of 256; ContextSize reports the result. A
// context whose estimated memory exceeds what is available makes
// NewContext return ErrOutOfMemory at once.
func WithContextSize(n int) ContextOption {
	return func(c *contextConfig) {
		if n < 0 || n > 1<<24 {
			c.fail(invalidArg("context size %d", n))
			return
		}
		c.params.n_ctx = C.uint32_t(n)
	}
}

// WithBatchSize sets n_batch, the most tokens one Decode may submit.
func WithBatchSize(n int) ContextOption {
	return func(c *contextConfig) {
		if n < 1 || n > 1<<24 {
			c.fail(invalidArg("batch size %d", n))
			return
		}
		c.params.n_batch = C.uint32_t(n)
	}
}

// WithUBatchSize sets n_ubatch, the physical batch size computed at once.
func WithUBatchSize(n int) ContextOption {
	return func(c *contextConfig) {
		if n < 1 || n > 1<<24 {
			c.fail(invalidArg("micro-batch size %d", n))
			return
		}
		c.params.n_ubatch = C.uint32_t(n)
	}
}

// WithSequences sets n_seq_max, the number of independent sequences.
func WithSequences(n int) ContextOption {
	return func(c *contextConfig) {
		if n < 1 || n > MaxSequences() {
			c.fail(invalidArg("%d sequences, want 1..%d", n, MaxSequences()))
			return
		}
		c.params.n_seq_max = C.uint32_t(n)
	}
}

// WithThreads sets the threads used for generation (one token at a time).
// The default is DefaultThreads().
func WithThreads(n int) ContextOption {
	return func(c *contextConfig) {
		if n < 1 || n > 1024 {
			c.fail(invalidArg("%d threads", n))
			return
		}
		c.params.n_threads = C.int32_t(n)
	}
}

// WithBatchThreads sets the threads used for prompt processing. The default
// is DefaultThreads().
func WithBatchThreads(n int) ContextOption {
	return func(c *contextConfig) {
		if n < 1 || n > 1024 {
			c.fail(invalidArg("%d batch threads", n))
			return
		}
		c.params.n_threads_batch = C.int32_t(n)
	}
}

// WithFlashAttention sets when flash attention is used (default auto).
//
// Auto is llama.cpp's auto (on wherever the backend has the kernels)
// when layers of the model are on a GPU, and off when the attention runs
// on the CPU, unless a quantized V cache needs it: there, measured on
// models from 0.3M to 1.1B parameters, flash attention made prompt
// processing 1.2-4x slower and generation after a long prompt up to 2x
// slower (docs/benchmarks.md, "Flash attention on the CPU").
func WithFlashAttention(f FlashAttention) ContextOption {
	return func(c *contextConfig) {
		if f < FlashAttentionAuto || f > FlashAttentionOn {
			c.fail(invalidArg("flash attention mode %d", f))
			return
		}
		c.params.flash_attn_type = C.enum_llama_flash_attn_type(f)
	}
}

// WithCacheTypes sets the data types of the K and V caches (default f16).
// A quantized V cache needs flash attention.
func WithCacheTypes(k, v CacheType) ContextOption {
	return func(c *contextConfig) {
		for _, t := range []CacheType{k, v} {
			if _, ok := cacheTypeNames[t]; !ok {
				c.fail(invalidArg("cache type %d", t))
				return
			}
		}
		c.params.type_k = C.enum_ggml_type(k)
		c.params.type_v = C.enum_ggml_type(v)
	}
}

// WithEmbeddings makes the context compute embeddings (see Embeddings and
// SequenceEmbeddings), pooled as p.
func WithEmbeddings(p Pooling) ContextOption {
	return func(c *contextConfig) {
		if p < PoolingUnspecified || p > PoolingRank {
			c.fail(invalidArg("pooling type %d", p))
			return
		}
		c.params.embeddings = true
		c.params.pooling_type = C.enum_llama_pooling_type(p)
	}
}

// WithRope overrides the RoPE base frequency and frequency scale; 0 keeps
// the model's value.
func WithRope(freqBase, freqScale float32) ContextOption {
	return func(c *contextConfig) {
		if freqBase < 0 || freqScale < 0 {
			c.fail(invalidArg("RoPE base %v, scale %v", freqBase, freqScale))
			return
		}
		c.params.rope_freq_base = C.float(freqBase)
		c.params.rope_freq_scale = C.float(freqScale)
	}
}

// WithRopeScaling sets the RoPE scaling method.
func WithRopeScaling(t RopeScaling) ContextOption {
	return func(c *contextConfig) {
		if t < RopeScalingUnspecified || t > RopeScalingLongRoPE {
			c.fail(invalidArg("RoPE scaling type %d", t))
			return
		}
		c.params.rope_scaling_type = C.enum_llama_rope_scaling_type(t)
	}
}

// YaRN holds the YaRN parameters; see llama.cpp's --yarn-* options.
type YaRN struct {
	ExtFactor  float32 // extrapolation mix factor; negative keeps the model's
	AttnFactor float32 // magnitude scaling factor
	BetaFast   float32 // low correction dimension
	BetaSlow   float32 // high correction dimension
	OrigCtx    int     // original context size; 0 keeps the model's
}

// WithYaRN sets the YaRN parameters (use with RopeScalingYaRN).
func WithYaRN(y YaRN) ContextOption {
	return func(c *contextConfig) {
		if y.OrigCtx < 0 {
			c.fail(invalidArg("YaRN original context %d", y.OrigCtx))
			return
		}
		c.params.yarn_ext_factor = C.float(y.ExtFactor)
		c.params.yarn_attn_factor = C.float(y.AttnFactor)
		c.params.yarn_beta_fast = C.float(y.BetaFast)
		c.params.yarn_beta_slow = C.float(y.BetaSlow)
		c.params.yarn_orig_ctx = C.uint32_t(y.OrigCtx)
	}
}

// WithOffloadKQV sets whether the KV cache and attention run on the GPU when
// layers are offloaded (default true).
func WithOffloadKQV(on bool) ContextOption {
	return func(c *contextConfig) { c.params.offload_kqv = C.bool(on) }
}

// WithUnifiedKV sets whether all sequences share one KV buffer (default
// false in llama.cpp; true suits sequences with a long common prefix).
func WithUnifiedKV(on bool) ContextOption {
	return func(c *contextConfig) { c.params.kv_unified = C.bool(on) }
}

// flashAttnWanted resolves FlashAttentionAuto before llama.cpp does (see
// WithFlashAttention): false turns it off.
func flashAttnWanted(onCPU bool, typeV CacheType) bool {
	return !onCPU || (typeV != CacheF32 && typeV != CacheF16 && typeV != CacheBF16)
}

// NewContext creates an inference context for the model.
func (m *Model) NewContext(opts ...ContextOption) (*Context, error) {
	c, cfg, err := m.newContext(opts)
	if err != nil || cfg.draft == nil {
		return c, err
	}
	// Outside the model's lock: the draft may be the model itself.
	if err := c.newDraftContext(cfg.draft, &cfg.params); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (m *Model) newContext(opts []ContextOption) (*Context, *contextConfig, error) {
	cfg := &contextConfig{params: C.llama_context_default_params()}
	cfg.params.n_threads = C.int32_t(DefaultThreads())
	cfg.params.n_threads_batch = C.int32_t(DefaultThreads())
	for _, o := range opts {
		o(cfg)
	}
	if cfg.err != nil {
		return nil, nil, cfg.err
	}
	if err := m.rlock(); err != nil {
		return nil, nil, err
	}
	defer m.mu.RUnlock()
	if m.vocabOnly {
		return nil, nil, invalidArg("model %s was loaded vocab-only", m.path)
	}
	p := &cfg.params
	if p.n_ubatch > p.n_batch {
		p.n_ubatch = p.n_batch
	}
	if err := m.checkCacheTypes(CacheType(p.type_k), CacheType(p.type_v)); err != nil {
		return nil, nil, err
	}
	if p.flash_attn_type == C.LLAMA_FLASH_ATTN_TYPE_AUTO && !flashAttnWanted(m.onCPU, CacheType(p.type_v)) {
		p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	}
	// llama.cpp asserts while building a pooled embeddings graph whose
	// micro-batch does not split evenly across the sequences.
	if p.embeddings && p.n_seq_max > 1 && p.n_ubatch%p.n_seq_max != 0 {
		return nil, nil, invalidArg("with embeddings the micro-batch size (%d) must be a multiple of the sequences (%d)", p.n_ubatch, p.n_seq_max)
	}
	if err := m.checkContextMemory(p); err != nil {
		return nil, nil, err
	}
	abort := (*C.int32_t)(C.calloc(1, 4))
	p.abort_callback = C.ggml_abort_callback(C.llamago_abort)
	p.abort_callback_data = unsafe.Pointer(abort)
	capture := startCapture()
	cc := C.llama_init_from_model(m.c, *p)
	capture.stop()
	if err := capture.err(); err != nil {
		if cc != nil {
			C.llamago_free_context(cc)
		}
		C.free(unsafe.Pointer(abort))
		return nil, nil, err
	}
	if cc == nil {
		C.free(unsafe.Pointer(abort))
		reason := capture.reason()
		if reason == "" {
			reason = "llama.cpp gave no reason"
		}
		return nil, nil, fmt.Errorf("llama: could not create a context of %d positions: %s", p.n_ctx, reason)
	}
	c := &Context{
		m:          m,
		c:          cc,
		mem:        C.llama_get_memory(cc),
		abort:      abort,
		nCtx:       int(C.llama_n_ctx(cc)),
		nBatch:     int(C.llama_n_batch(cc)),
		nUbatch:    int(C.llama_n_ubatch(cc)),
		nSeqMax:    int(C.llama_n_seq_max(cc)),
		nCtxSeq:    int(C.llama_n_ctx_seq(cc)),
		embeddings: bool(p.embeddings),
		unifiedKV:  bool(p.kv_unified),
		pooling:    Pooling(C.llama_pooling_type(cc)),
	}
	c.setThreads(int(p.n_threads), int(p.n_threads_batch))
	c.hist = make([]history, c.nSeqMax)
	for i := range c.hist {
		c.hist[i].valid = true
	}
	c.sched.init(c)
	if err := c.applyAdapters(cfg.adapters); err != nil {
		c.free()
		return nil, nil, err
	}
	m.addChild(c)
	return c, cfg, nil
}

// Close frees the context. It is safe to call more than once.
func (c *Context) Close() error {
	if c.free() {
		c.m.removeChild(c)
	}
	return nil
}

func (c *Context) closeFromModel() { c.free() }

func (c *Context) free() bool {
	// Abort a decode in progress in another goroutine, so that Close does
	// not wait for it to finish.
	c.abortMu.Lock()
	c.closing = true
	if c.abort != nil {
		(*atomic.Int32)(unsafe.Pointer(c.abort)).Store(1)
	}
	c.abortMu.Unlock()

	if c.draft != nil {
		c.draft.Close() // its decode in progress, if any, is aborted
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	C.llamago_free_context(c.c)
	c.freeAllPools()
	c.sched.shutdown() // every generation ends with ErrClosed
	c.releaseAdapters()
	c.abortMu.Lock()
	C.free(unsafe.Pointer(c.abort))
	c.abort = nil
	c.abortMu.Unlock()
	c.c, c.closed = nil, true
	return true
}

// lock locks a live context; the caller must call c.mu.Unlock.
func (c *Context) lock() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Model is the model the context was made from.
func (c *Context) Model() *Model { return c.m }

// ContextSize is n_ctx, the positions in the KV cache for all sequences.
func (c *Context) ContextSize() int { return c.nCtx }

// SequenceContextSize is the positions available to each sequence.
func (c *Context) SequenceContextSize() int { return c.nCtxSeq }

// BatchSize is n_batch, the most tokens one Decode accepts.
func (c *Context) BatchSize() int { return c.nBatch }

// UBatchSize is n_ubatch, the physical batch size.
func (c *Context) UBatchSize() int { return c.nUbatch }

// Sequences is n_seq_max, the number of sequences.
func (c *Context) Sequences() int { return c.nSeqMax }

// Pooling is the pooling type in effect for embeddings.
func (c *Context) Pooling() Pooling { return c.pooling }

// SetThreads changes the generation and batch thread counts. Counts that
// fit in the context's threadpools reuse them; larger ones make new pools,
// and the old ones are kept until Close (their workers sleep).
func (c *Context) SetThreads(n, nBatch int) error {
	if n < 1 || nBatch < 1 || n > 1024 || nBatch > 1024 {
		return invalidArg("threads %d, batch threads %d", n, nBatch)
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	c.setThreads(n, nBatch)
	c.shareThreads()
	return nil
}

// Threads returns the generation and batch thread counts; 0, 0 after
// Close.
func (c *Context) Threads() (n, nBatch int) {
	if c.lock() != nil {
		return 0, 0
	}
	defer c.mu.Unlock()
	return int(C.llama_n_threads(c.c)), int(C.llama_n_threads_batch(c.c))
}

// Decode runs the model on the batch, adding its tokens to the KV cache.
// It returns ErrContextFull if the cache has no room, ctx.Err() if ctx is
// done before or during the computation (tokens of finished micro-batches
// stay in the cache), and a *DecodeError for other failures. The batch is
// checked in Go first: token ids, sequence ids and its size.
func (c *Context) Decode(ctx context.Context, b *Batch) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if err := c.checkBatch(b); err != nil {
		return err
	}
	_, _, nSeq, seqs, _ := b.view()
	for i, s := range seqs {
		for _, id := range unsafe.Slice(s, nSeq[i]) {
			c.hist[id].valid = false
		}
	}
	if ctx.Done() != nil {
		defer c.watch(ctx)()
	}
	return c.decode(ctx, b, false)
}

// Encode runs the encoder of an encoder-decoder model (or a non-causal
// embedding model) on the batch. Errors are as for Decode.
func (c *Context) Encode(ctx context.Context, b *Batch) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if err := c.checkBatch(b); err != nil {
		return err
	}
	if n := int(b.c.n_tokens); n > c.nUbatch {
		return invalidArg("batch of %d tokens exceeds the micro-batch size %d, which the encoder needs", n, c.nUbatch)
	}
	if ctx.Done() != nil {
		defer c.watch(ctx)()
	}
	return c.decode(ctx, b, true)
}

// checkBatch refuses what llama.cpp would assert on; the caller holds both
// locks.
func (c *Context) checkBatch(b *Batch) error {
	n := int(b.c.n_tokens)
	if n == 0 {
		return invalidArg("empty batch")
	}
	if n > c.nBatch {
		return invalidArg("batch of %d tokens exceeds the context's batch size %d", n, c.nBatch)
	}
	// Models without a KV cache (non-causal encoders such as BERT) are run
	// by llama_encode, which asserts that the batch fits one micro-batch.
	if c.mem == nil && n > c.nUbatch {
		return invalidArg("batch of %d tokens exceeds the micro-batch size %d, which this model's encoder needs", n, c.nUbatch)
	}
	tokens, _, nSeq, seqs, _ := b.view()
	for i, t := range tokens {
		if !c.m.validToken(TokenID(t)) {
			return fmt.Errorf("%w: id %d at batch index %d, vocabulary has %d tokens", ErrInvalidToken, t, i, c.m.info.nVocab)
		}
		for _, s := range unsafe.Slice(seqs[i], nSeq[i]) {
			if int(s) >= c.nSeqMax {
				return invalidArg("sequence id %d at batch index %d, context has %d sequences", s, i, c.nSeqMax)
			}
		}
	}
	return nil
}

// decode calls llama_decode; the caller holds both locks, checked b, and
// watches ctx (see watch).
func (c *Context) decode(ctx context.Context, b *Batch, encode bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var rc C.int32_t
	start := clock.Now()
	if encode {
		rc = C.llama_encode(c.c, b.c)
	} else {
		rc = C.llama_decode(c.c, b.c)
	}
	c.yield(start)
	_, _, _, _, logits := b.view()
	c.outputs = c.outputs[:0]
	for _, l := range logits {
		c.outputs = append(c.outputs, l != 0)
	}
	switch rc {
	case 0:
		return nil
	case 1:
		c.outputs = c.outputs[:0]
		return fmt.Errorf("%w: no room in the KV cache for %d tokens", ErrContextFull, len(logits))
	case 2:
		c.outputs = c.outputs[:0]
		if err := ctx.Err(); err != nil {
			return err
		}
		if c.isClosing() {
			return ErrClosed
		}
	}
	c.outputs = c.outputs[:0]
	return &DecodeError{Code: int(rc)}
}

func (c *Context) isClosing() bool {
	c.abortMu.Lock()
	defer c.abortMu.Unlock()
	return c.closing
}

// yieldEvery is how often a goroutine that decodes back to back passes
// through the Go scheduler; well under sysmon's 10 ms preemption slice.
const yieldEvery = 4 * time.Millisecond

// yieldBelow: only decodes shorter than this yield (see yield).
const yieldBelow = 500 * time.Microsecond

// yield calls runtime.Gosched every yieldEvery after short decodes. A
// goroutine that only makes cgo calls never passes through the scheduler,
// so its P's scheduling tick goes stale; sysmon then takes the P from under
// every cgo call longer than its 20 µs tick (the goroutine counts as running
// past its time slice) and hands it to another thread, which finds nothing
// to do: a few thread wake-ups per call, 5-7% of a 200 µs decode on two
// cores. One Gosched every few milliseconds keeps the tick fresh. It has a
// cost of its own (it wakes another thread too), which outweighs the
// handoff once decodes take milliseconds: on a 4 ms decode, yielding made
// the Go loop 1-2% slower than not yielding. Hence the threshold. On a
// goroutine locked to its thread Gosched costs a thread handoff as well.
func (c *Context) yield(start clock.Time) {
	if now := clock.Now(); now.Sub(start) < yieldBelow && now.Sub(c.lastYield) >= yieldEvery {
		c.lastYield = now
		runtime.Gosched()
	}
}

// watch makes llama.cpp's abort callback fire once ctx is done, until the
// returned function is called. It may be called without c.mu: the flag is
// set under abortMu, and not at all once Close has freed it.
func (c *Context) watch(ctx context.Context) (release func()) {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		c.setAbort(1)
		close(done)
	})
	return func() {
		if !stop() {
			<-done
		}
		c.setAbort(0)
	}
}

// setAbort sets llama.cpp's abort flag, unless the context is closing
// (whose flag stays set until Close frees it).
func (c *Context) setAbort(v int32) {
	c.abortMu.Lock()
	defer c.abortMu.Unlock()
	if c.abort != nil && !c.closing {
		(*atomic.Int32)(unsafe.Pointer(c.abort)).Store(v)
	}
}

// Logits returns the logits of the i-th token of the last decoded batch (or
// the last token's with i = -1): one float per vocabulary entry, in a new
// slice the caller owns (a view into the context's memory would dangle
// after a Decode or a Close in another goroutine).
func (c *Context) Logits(i int) ([]float32, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if i < 0 {
		i += len(c.outputs)
	}
	if i < 0 || i >= len(c.outputs) || !c.outputs[i] {
		return nil, fmt.Errorf("%w: index %d", ErrNoLogits, i)
	}
	p := C.llama_get_logits_ith(c.c, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("%w: index %d", ErrNoLogits, i)
	}
	return slices.Clone(unsafe.Slice((*float32)(unsafe.Pointer(p)), c.m.info.nVocab)), nil
}

// Embeddings returns the embedding of the i-th token of the last decoded
// batch (i = -1 for the last), for a context made WithEmbeddings and
// PoolingNone, in a new slice the caller owns.
func (c *Context) Embeddings(i int) ([]float32, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if !c.embeddings {
		return nil, invalidArg("context was not made WithEmbeddings")
	}
	if i < 0 {
		i += len(c.outputs)
	}
	if i < 0 || i >= len(c.outputs) || !c.outputs[i] {
		return nil, fmt.Errorf("%w: index %d", ErrNoLogits, i)
	}
	p := C.llama_get_embeddings_ith(c.c, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("%w: index %d", ErrNoLogits, i)
	}
	return slices.Clone(unsafe.Slice((*float32)(unsafe.Pointer(p)), c.m.info.nEmbd)), nil
}

// SequenceEmbeddings returns the pooled embedding of a sequence after the
// last Decode, for a context made WithEmbeddings and a pooling other than
// PoolingNone. With PoolingRank it holds the model's classifier outputs
// (one relevance score for rerankers). The slice is new; the caller owns
// it.
func (c *Context) SequenceEmbeddings(seq int) ([]float32, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if !c.embeddings || c.pooling == PoolingNone {
		return nil, invalidArg("context has no pooled embeddings")
	}
	if err := c.checkSeq(seq, false); err != nil {
		return nil, err
	}
	p := C.llama_get_embeddings_seq(c.c, C.llama_seq_id(seq))
	if p == nil {
		return nil, fmt.Errorf("%w: no embedding for sequence %d", ErrNoLogits, seq)
	}
	n := c.m.info.nEmbd
	if c.pooling == PoolingRank {
		n = max(1, int(C.llama_model_n_cls_out(c.m.c)))
	}
	return slices.Clone(unsafe.Slice((*float32)(unsafe.Pointer(p)), n)), nil
}

func (c *Context) checkSeq(seq int, allowAll bool) error {
	if (allowAll && seq == -1) || (seq >= 0 && seq < c.nSeqMax) {
		return nil
	}
	return invalidArg("sequence id %d, context has %d sequences", seq, c.nSeqMax)
}

func checkRange(p0, p1 int) error {
	if p0 < -1 || p1 < -1 || p0 > 1<<31-1 || p1 > 1<<31-1 {
		return invalidArg("position range [%d, %d)", p0, p1)
	}
	return nil
}

// ClearMemory empties the KV cache of every sequence.
func (c *Context) ClearMemory() error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	C.llama_memory_clear(c.mem, true)
	for i := range c.hist {
		c.hist[i] = history{tokens: c.hist[i].tokens[:0], valid: true}
	}
	return nil
}

// RemoveTokens removes positions [p0, p1) of a sequence from the KV cache
// (seq -1: all sequences; p0 or p1 -1: open-ended). It returns false if the
// memory cannot remove a partial range (recurrent models).
func (c *Context) RemoveTokens(seq, p0, p1 int) (bool, error) {
	if err := c.lock(); err != nil {
		return false, err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, true); err != nil {
		return false, err
	}
	if err := checkRange(p0, p1); err != nil {
		return false, err
	}
	ok := bool(C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1)))
	if p0 == -1 {
		p0 = 0
	}
	for i := range c.hist {
		if seq != -1 && i != seq {
			continue
		}
		h := &c.hist[i]
		switch {
		case ok && p1 == -1:
			// Removing a suffix leaves the recorded prefix valid.
			h.tokens = h.tokens[:min(p0, len(h.tokens))]
			if p0 == 0 {
				h.valid = true
			}
		default:
			h.valid = false
		}
	}
	return ok, nil
}

// CopySequence makes dst share src's cache entries for positions [p0, p1)
// (-1: open-ended). Without WithUnifiedKV only whole sequences can be
// copied.
func (c *Context) CopySequence(src, dst, p0, p1 int) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(src, false); err != nil {
		return err
	}
	if err := c.checkSeq(dst, false); err != nil {
		return err
	}
	if err := checkRange(p0, p1); err != nil {
		return err
	}
	// Each sequence has a KV stream of its own unless the cache is unified;
	// llama.cpp can copy only whole streams, and asserts otherwise.
	if !c.unifiedKV && src != dst && (p0 > 0 || p1 > 0) {
		return invalidArg("a partial copy [%d, %d) needs a unified KV cache (WithUnifiedKV); copy the whole sequence with -1, -1", p0, p1)
	}
	C.llama_memory_seq_cp(c.mem, C.llama_seq_id(src), C.llama_seq_id(dst), C.llama_pos(p0), C.llama_pos(p1))
	c.hist[dst].valid = false
	return nil
}

// KeepSequence removes every sequence but seq from the cache.
func (c *Context) KeepSequence(seq int) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, false); err != nil {
		return err
	}
	C.llama_memory_seq_keep(c.mem, C.llama_seq_id(seq))
	for i := range c.hist {
		if i != seq {
			c.hist[i] = history{tokens: c.hist[i].tokens[:0], valid: true}
		}
	}
	return nil
}

// ShiftPositions adds delta to the positions [p0, p1) of a sequence, as a
// context shift does after RemoveTokens. Models whose memory cannot shift
// return an error.
func (c *Context) ShiftPositions(seq, p0, p1, delta int) error {
	return c.posOp(seq, p0, p1, func() {
		C.llama_memory_seq_add(c.mem, C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1), C.llama_pos(delta))
	}, delta < -(1<<30) || delta > 1<<30)
}

// DividePositions divides the positions [p0, p1) of a sequence by d (d > 0),
// as self-extend does.
func (c *Context) DividePositions(seq, p0, p1, d int) error {
	return c.posOp(seq, p0, p1, func() {
		C.llama_memory_seq_div(c.mem, C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1), C.int(d))
	}, d < 1 || d > 1<<30)
}

func (c *Context) posOp(seq, p0, p1 int, op func(), bad bool) error {
	if bad {
		return invalidArg("position change out of range")
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, false); err != nil {
		return err
	}
	if err := checkRange(p0, p1); err != nil {
		return err
	}
	if !C.llama_memory_can_shift(c.mem) {
		return invalidArg("this model's memory cannot shift positions")
	}
	op()
	c.hist[seq].valid = false
	return nil
}

// PositionRange returns the smallest and largest positions of a sequence in
// the cache, or -1, -1 if it is empty.
func (c *Context) PositionRange(seq int) (lo, hi int, err error) {
	if err := c.lock(); err != nil {
		return -1, -1, err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, false); err != nil {
		return -1, -1, err
	}
	return int(C.llama_memory_seq_pos_min(c.mem, C.llama_seq_id(seq))),
		int(C.llama_memory_seq_pos_max(c.mem, C.llama_seq_id(seq))), nil
}

// Perf holds llama.cpp's performance counters for a context.
type Perf struct {
	Load         time.Duration // model load
	PromptEval   time.Duration // prompt processing
	Eval         time.Duration // generation
	PromptTokens int           // tokens of prompt processed
	EvalTokens   int           // tokens generated (decoded one at a time)
	GraphReuses  int           // times a compute graph was reused
}

// Perf returns the context's performance counters; zero after Close.
func (c *Context) Perf() Perf {
	if c.lock() != nil {
		return Perf{}
	}
	defer c.mu.Unlock()
	d := C.llama_perf_context(c.c)
	ms := func(v C.double) time.Duration { return time.Duration(float64(v) * float64(time.Millisecond)) }
	return Perf{
		Load:         ms(d.t_load_ms),
		PromptEval:   ms(d.t_p_eval_ms),
		Eval:         ms(d.t_eval_ms),
		PromptTokens: int(d.n_p_eval),
		EvalTokens:   int(d.n_eval),
		GraphReuses:  int(d.n_reused),
	}
}

// ResetPerf zeroes the performance counters.
func (c *Context) ResetPerf() {
	if c.lock() != nil {
		return
	}
	defer c.mu.Unlock()
	C.llama_perf_context_reset(c.c)
}

// checkCacheTypes refuses quantized cache types whose block does not divide
// the attention head size: ggml asserts on such rows, aborting the process.
// The caller holds the model.
func (m *Model) checkCacheTypes(k, v CacheType) error {
	head := func(key string) int {
		if s, ok := m.metadata(m.info.arch + "." + key); ok {
			var n int
			if _, err := fmt.Sscan(s, &n); err == nil && n > 0 {
				return n
			}
		}
		if m.info.nHead > 0 {
			return m.info.nEmbd / m.info.nHead
		}
		return 0
	}
	for _, c := range []struct {
		t   CacheType
		key string
	}{{k, "attention.key_length"}, {v, "attention.value_length"}} {
		if c.t == CacheF32 || c.t == CacheF16 || c.t == CacheBF16 {
			continue
		}
		if d := head(c.key); d%32 != 0 {
			return invalidArg("cache type %s needs a head size that is a multiple of 32; this model's is %d", c.t, d)
		}
	}
	return nil
}
