package server

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the server's counters and gauges, exported at /metrics in
// Prometheus' text format (version 0.0.4), written by hand: a few dozen
// series do not justify a dependency.
type metrics struct {
	mu       sync.Mutex
	requests map[requestKey]uint64

	promptTokens    atomic.Uint64 // prompt tokens of admitted requests
	cachedTokens    atomic.Uint64 // of those, reused from the KV cache
	generatedTokens atomic.Uint64
	embeddingTokens atomic.Uint64
	decodeNanos     atomic.Uint64 // time in Decode
	decodeCalls     atomic.Uint64

	queueDepth  atomic.Int64 // requests waiting for a slot
	processing  atomic.Int64 // requests holding slots
	slotsBusy   atomic.Int64
	kvTokens    atomic.Int64 // positions held by all sequences
	disconnects atomic.Uint64

	rate rateWindow // generated tokens per second, recent
}

type requestKey struct {
	route string
	code  int
}

func newMetrics() *metrics {
	return &metrics{requests: map[requestKey]uint64{}}
}

func (m *metrics) countRequest(route string, code int) {
	m.mu.Lock()
	m.requests[requestKey{route, code}]++
	m.mu.Unlock()
}

// generated records n generated tokens now.
func (m *metrics) generated(n int) {
	m.generatedTokens.Add(uint64(n))
	m.rate.add(time.Now(), n)
}

// rateWindow counts events in one-second buckets over the last
// rateSeconds seconds.
type rateWindow struct {
	mu      sync.Mutex
	buckets [rateSeconds + 1]struct {
		sec int64
		n   uint64
	}
}

const rateSeconds = 10

func (r *rateWindow) add(now time.Time, n int) {
	sec := now.Unix()
	r.mu.Lock()
	b := &r.buckets[sec%int64(len(r.buckets))]
	if b.sec != sec {
		b.sec, b.n = sec, 0
	}
	b.n += uint64(n)
	r.mu.Unlock()
}

// perSecond is the mean rate over the last rateSeconds whole seconds.
func (r *rateWindow) perSecond(now time.Time) float64 {
	sec := now.Unix()
	var sum uint64
	r.mu.Lock()
	for _, b := range r.buckets {
		if b.sec < sec && b.sec >= sec-rateSeconds {
			sum += b.n
		}
	}
	r.mu.Unlock()
	return float64(sum) / rateSeconds
}

// snapshot is what /metrics reports besides the counters.
type snapshot struct {
	slots, queueCap, kvSize int
}

func (m *metrics) write(w io.Writer, s snapshot) {
	p := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	p("llamago_requests_total", "counter", "HTTP requests answered, by route and status code.")
	m.mu.Lock()
	keys := slices.SortedFunc(maps.Keys(m.requests), func(a, b requestKey) int {
		if a.route != b.route {
			if a.route < b.route {
				return -1
			}
			return 1
		}
		return a.code - b.code
	})
	for _, k := range keys {
		fmt.Fprintf(w, "llamago_requests_total{route=%q,code=\"%d\"} %d\n", k.route, k.code, m.requests[k])
	}
	m.mu.Unlock()

	counter := func(name, help string, v uint64) {
		p(name, "counter", help)
		fmt.Fprintf(w, "%s %d\n", name, v)
	}
	gauge := func(name, help string, v float64) {
		p(name, "gauge", help)
		fmt.Fprintf(w, "%s %g\n", name, v)
	}
	counter("llamago_prompt_tokens_total", "Prompt tokens of the requests admitted to a slot.", m.promptTokens.Load())
	counter("llamago_prompt_tokens_cached_total", "Prompt tokens reused from the KV cache instead of being decoded.", m.cachedTokens.Load())
	counter("llamago_generated_tokens_total", "Tokens generated, over all choices.", m.generatedTokens.Load())
	counter("llamago_embedding_tokens_total", "Tokens of embedding inputs.", m.embeddingTokens.Load())
	p("llamago_decode_seconds_total", "counter", "Time spent decoding batches.")
	fmt.Fprintf(w, "llamago_decode_seconds_total %g\n", float64(m.decodeNanos.Load())/1e9)
	counter("llamago_decode_calls_total", "Batches decoded.", m.decodeCalls.Load())
	counter("llamago_client_disconnects_total", "Generations cancelled because their client went away.", m.disconnects.Load())
	gauge("llamago_tokens_per_second", fmt.Sprintf("Tokens generated per second over the last %d seconds, all sequences together.", rateSeconds), m.rate.perSecond(time.Now()))
	gauge("llamago_queue_depth", "Requests waiting for a slot.", float64(m.queueDepth.Load()))
	gauge("llamago_queue_capacity", "Most requests that may wait for a slot.", float64(s.queueCap))
	gauge("llamago_requests_processing", "Requests holding slots.", float64(m.processing.Load()))
	gauge("llamago_slots_busy", "Slots (parallel sequences) in use.", float64(m.slotsBusy.Load()))
	gauge("llamago_slots_total", "Slots (parallel sequences).", float64(s.slots))
	kv := m.kvTokens.Load()
	gauge("llamago_kv_cache_tokens", "Positions held in the KV cache, summed over sequences (cells shared by sequences count once per sequence).", float64(kv))
	gauge("llamago_kv_cache_size", "Cells of the KV cache.", float64(s.kvSize))
	ratio := 0.0
	if s.kvSize > 0 {
		ratio = min(1, float64(kv)/float64(s.kvSize))
	}
	gauge("llamago_kv_cache_usage_ratio", "llamago_kv_cache_tokens over llamago_kv_cache_size, at most 1.", ratio)
}
