package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"slices"

	"github.com/llamago/llamago/llama"
)

// A KL-divergence base file holds, for each token Perplexity scores, the
// reference model's log-probabilities over the whole vocabulary, so that
// a quantization of the model can be compared with it later without
// loading both. As in llama-perplexity's --kl-divergence-base, the
// log-probabilities are stored as 16-bit steps between the token's
// smallest kept log-probability and its largest (those more than 16 below
// the largest, e^-16 of the top probability, are clamped to the bottom),
// so a vocabulary of 32,000 takes 64 KB a token. Each record also keeps
// what must be exact: the scored token's negative log-likelihood and the
// index of the most likely token.
//
// Layout, little-endian: the 8-byte magic "LLGOKLD\x00", uint32 version
// (1), uint32 n_vocab, window and chunks, the 32-byte ModelID and TextID,
// uint16 length and the bytes of the base model's name; then, per scored
// token in order, float64 NLL, int32 top token, float32 step and
// float32 bottom log-probability, and n_vocab uint16 steps.

const (
	klMagic   = "LLGOKLD\x00"
	klVersion = 1
	// klRange is how far below the most likely token's log-probability
	// the stored log-probabilities reach.
	klRange = 16
	klSteps = 65535
)

var (
	// ErrNotKLBase is returned for a file that is not a KL-divergence base
	// file, or one cut short.
	ErrNotKLBase = errors.New("bench: not a KL-divergence base file")
	// ErrKLBaseMismatch is returned when a KL-divergence base was made with
	// another model (vocabulary or shape), another text, or a larger window
	// than the comparison can use.
	ErrKLBaseMismatch = errors.New("bench: KL-divergence base does not match")
)

// KLHeader describes a KL-divergence base file.
type KLHeader struct {
	NVocab, Window, Chunks int
	// Model identifies the base model (ModelID): its quantizations have the
	// same, other models another.
	Model [32]byte
	// Text identifies the evaluated tokens (TextID).
	Text [32]byte
	Name string // the base model's file name, for messages
}

// ModelID identifies a model for KL-divergence bases: a hash of its
// architecture, shape and vocabulary (every token's text), which
// quantizing a model does not change. Two different models with the same
// vocabulary and shape (a fine-tune, or random weights of another seed)
// share it.
func ModelID(m *llama.Model) ([32]byte, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%d %d %d %d %d %d\x00", m.Architecture(), m.VocabType(), m.VocabSize(),
		m.EmbeddingSize(), m.Layers(), m.Heads(), m.KVHeads())
	for i := range m.VocabSize() {
		s, err := m.TokenText(llama.TokenID(i))
		if err != nil {
			return [32]byte{}, err
		}
		fmt.Fprintf(h, "%d:%s\x00", len(s), s)
	}
	var id [32]byte
	h.Sum(id[:0])
	return id, nil
}

// TextID identifies the tokens of a text for KL-divergence bases.
func TextID(tokens []llama.TokenID) [32]byte {
	h := sha256.New()
	var b [4]byte
	for _, t := range tokens {
		binary.LittleEndian.PutUint32(b[:], uint32(t))
		h.Write(b[:])
	}
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// KLOptions set the window and chunks of SaveKLBase.
type KLOptions struct {
	Window int // tokens a chunk (llama-perplexity's -c); required
	Chunks int // the most chunks to evaluate; 0 for all
}

// chunks is the number of chunks Perplexity evaluates for n tokens.
func (o KLOptions) chunks(n int) int {
	c := n / o.Window
	if o.Chunks > 0 {
		c = min(c, o.Chunks)
	}
	return c
}

// SaveKLBase computes the perplexity of c's model over tokens, as
// Context.Perplexity does, and writes the log-probabilities of every
// scored token to w as a KL-divergence base file; name is recorded as
// the base model's name. It yields Perplexity's running estimate after
// each chunk.
func SaveKLBase(ctx context.Context, c *llama.Context, tokens []llama.TokenID, name string, o KLOptions, w io.Writer) iter.Seq2[llama.PerplexityChunk, error] {
	return func(yield func(llama.PerplexityChunk, error) bool) {
		m := c.Model()
		if o.Window < 4 || len(tokens) < 2*o.Window {
			yield(llama.PerplexityChunk{}, fmt.Errorf("%w: %d tokens, a window of %d needs at least %d", llama.ErrShortText, len(tokens), o.Window, 2*o.Window))
			return
		}
		id, err := ModelID(m)
		if err != nil {
			yield(llama.PerplexityChunk{}, err)
			return
		}
		if len(name) > 1<<12 {
			name = name[:1<<12]
		}
		h := KLHeader{NVocab: m.VocabSize(), Window: o.Window, Chunks: o.chunks(len(tokens)), Model: id, Text: TextID(tokens), Name: name}
		bw := bufio.NewWriterSize(w, 1<<20)
		if err := writeKLHeader(bw, h); err != nil {
			yield(llama.PerplexityChunk{}, err)
			return
		}
		rec := make([]byte, klRecordSize(h.NVocab))
		save := func(s llama.ScoredToken) error {
			encodeKL(rec, s.Logits, s.NLL)
			_, err := bw.Write(rec)
			return err
		}
		for r, err := range c.Perplexity(ctx, tokens, llama.WithWindow(o.Window), llama.WithChunks(h.Chunks), llama.WithScoredLogits(save)) {
			if err == nil && r.Chunk == r.Chunks {
				err = bw.Flush()
			}
			if !yield(r, err) || err != nil {
				return
			}
		}
	}
}

func writeKLHeader(w io.Writer, h KLHeader) error {
	b := []byte(klMagic)
	for _, v := range []int{klVersion, h.NVocab, h.Window, h.Chunks} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	b = append(b, h.Model[:]...)
	b = append(b, h.Text[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(h.Name)))
	b = append(b, h.Name...)
	_, err := w.Write(b)
	return err
}

// ReadKLHeader reads the header of a KL-divergence base file, leaving r at
// its first record.
func ReadKLHeader(r io.Reader) (KLHeader, error) {
	var h KLHeader
	b := make([]byte, len(klMagic)+4*4+64+2)
	if _, err := io.ReadFull(r, b); err != nil || string(b[:8]) != klMagic {
		return h, ErrNotKLBase
	}
	u := func(i int) int { return int(binary.LittleEndian.Uint32(b[8+4*i:])) }
	if v := u(0); v != klVersion {
		return h, fmt.Errorf("%w: version %d, this build reads %d", ErrNotKLBase, v, klVersion)
	}
	h.NVocab, h.Window, h.Chunks = u(1), u(2), u(3)
	if h.NVocab < 1 || h.NVocab > 1<<24 || h.Window < 4 || h.Window > 1<<24 || h.Chunks < 1 || h.Chunks > 1<<24 {
		return h, fmt.Errorf("%w: %d vocabulary entries, window %d, %d chunks", ErrNotKLBase, h.NVocab, h.Window, h.Chunks)
	}
	copy(h.Model[:], b[24:56])
	copy(h.Text[:], b[56:88])
	name := make([]byte, binary.LittleEndian.Uint16(b[88:]))
	if _, err := io.ReadFull(r, name); err != nil {
		return h, ErrNotKLBase
	}
	h.Name = string(name)
	return h, nil
}

// Check returns ErrKLBaseMismatch unless the base was made with a
// quantization of m (ModelID) over tokens, and with a window that fits a
// sequence of m's contexts of nCtx positions.
func (h KLHeader) Check(m *llama.Model, tokens []llama.TokenID, nCtx int) error {
	id, err := ModelID(m)
	if err != nil {
		return err
	}
	switch {
	case h.NVocab != m.VocabSize() || h.Model != id:
		return fmt.Errorf("%w: it was made with %s, a model with another vocabulary or shape (%d tokens, this one has %d)",
			ErrKLBaseMismatch, h.Name, h.NVocab, m.VocabSize())
	case h.Text != TextID(tokens):
		return fmt.Errorf("%w: it was made from another text", ErrKLBaseMismatch)
	case h.Window > nCtx:
		return fmt.Errorf("%w: its window is %d tokens, the context has %d", ErrKLBaseMismatch, h.Window, nCtx)
	}
	return nil
}

func klRecordSize(nVocab int) int { return 8 + 4 + 4 + 4 + 2*nVocab }

// encodeKL writes the record of one scored token: its NLL, the most
// likely token, and the log-probabilities in steps.
func encodeKL(rec []byte, logits []float32, nll float64) {
	top, step, bottom, lo := klScale(logits)
	binary.LittleEndian.PutUint64(rec, math.Float64bits(nll))
	binary.LittleEndian.PutUint32(rec[8:], uint32(top))
	binary.LittleEndian.PutUint32(rec[12:], math.Float32bits(step))
	binary.LittleEndian.PutUint32(rec[16:], math.Float32bits(bottom))
	codes := rec[20:]
	for i, l := range logits {
		binary.LittleEndian.PutUint16(codes[2*i:], klStep(l, lo, step))
	}
}

// klScale returns the most likely token (the first of equals), the size of
// a step and the log-probability of step 0, and the logit at step 0.
func klScale(logits []float32) (top int, step, bottom, lo float32) {
	mx, mn := logits[0], logits[0]
	for i, l := range logits {
		if l > mx {
			mx, top = l, i
		}
		mn = min(mn, l)
	}
	var z float64
	for _, l := range logits {
		z += math.Exp(float64(l - mx))
	}
	lo = max(mn, mx-klRange)
	lse := float64(mx) + math.Log(z)
	return top, (mx - lo) / klSteps, float32(float64(lo) - lse), lo
}

// klStep is the step of logit l: 0 at or below lo, the nearest otherwise.
func klStep(l, lo, step float32) uint16 {
	if l <= lo || step == 0 {
		return 0
	}
	return uint16(min(klSteps, math.Round(float64((l-lo)/step))))
}

// klRecord is a decoded record.
type klRecord struct {
	nll          float64
	top          int
	step, bottom float32
	codes        []byte
}

func decodeKL(rec []byte) klRecord {
	return klRecord{
		nll:    math.Float64frombits(binary.LittleEndian.Uint64(rec)),
		top:    int(int32(binary.LittleEndian.Uint32(rec[8:]))),
		step:   math.Float32frombits(binary.LittleEndian.Uint32(rec[12:])),
		bottom: math.Float32frombits(binary.LittleEndian.Uint32(rec[16:])),
		codes:  rec[20:],
	}
}

// logprob is the log-probability of step c.
func (r *klRecord) logprob(c uint16) float64 {
	return float64(r.bottom + r.step*float32(c))
}

// clamped reports whether step 0 stands for the log-probabilities more
// than klRange below the top (rather than the smallest of them).
func (r *klRecord) clamped() bool { return klSteps*r.step >= klRange-1e-3 }

// klDivergence returns KL(base || q) for one token: the sum over the
// vocabulary of p_base·(log p_base − log p_q), with q's log-probabilities
// rounded to steps as the base's were, so a model compared with itself
// gives exactly 0; entries the base clamped (p < e^-16 of its top) are
// left out. scratch holds one record.
func klDivergence(base *klRecord, logits []float32, scratch []byte) float64 {
	encodeKL(scratch, logits, 0)
	q := decodeKL(scratch)
	_, _, _, qlo := klScale(logits)
	clampedB := base.clamped()
	var sum float64
	for i := range len(logits) {
		cb := binary.LittleEndian.Uint16(base.codes[2*i:])
		if cb == 0 && clampedB {
			continue
		}
		lb := base.logprob(cb)
		var lq float64
		if cq := binary.LittleEndian.Uint16(q.codes[2*i:]); logits[i] > qlo || !q.clamped() {
			lq = q.logprob(cq)
		} else {
			// Below q's kept range: the exact value.
			lq = float64(q.bottom) + float64(logits[i]-qlo)
		}
		sum += math.Exp(lb) * (lb - lq)
	}
	return sum
}

// KLStats are the results of a KL-divergence comparison, as
// llama-perplexity --kl-divergence reports them (the ± values are
// standard errors).
type KLStats struct {
	Tokens int // tokens compared

	PPL, PPLUnc         float64 // perplexity of the compared model
	PPLBase, PPLBaseUnc float64 // of the base model, on the same tokens
	// LogRatio is ln(PPL/PPLBase), with the uncertainty that takes the
	// correlation of the two into account; Ratio is PPL/PPLBase.
	LogRatio, LogRatioUnc float64
	Ratio, RatioUnc       float64

	KLD, KLDUnc           float64 // mean KL divergence from the base
	KLDMedian             float64
	KLD99, KLD999, KLDMax float64 // 99th and 99.9th percentiles, maximum
	SameTop, SameTopUnc   float64 // how often the most likely token is the base's
}

// klSums accumulates a comparison.
type klSums struct {
	nll, nll2, nllBase, nllBase2, nllNllBase, kld, kld2 float64
	sameTop                                             int
	klds                                                []float64
}

func (s *klSums) add(nll, nllBase, kld float64, same bool) {
	s.nll += nll
	s.nll2 += nll * nll
	s.nllBase += nllBase
	s.nllBase2 += nllBase * nllBase
	s.nllNllBase += nll * nllBase
	s.kld += kld
	s.kld2 += kld * kld
	if same {
		s.sameTop++
	}
	s.klds = append(s.klds, kld)
}

// meanUnc is a mean and its standard error from sums.
func meanUnc(sum, sum2 float64, n int) (mean, unc float64) {
	if n == 0 {
		return 0, 0
	}
	mean = sum / float64(n)
	if v := sum2/float64(n) - mean*mean; v > 0 && n > 1 {
		unc = math.Sqrt(v / float64(n-1))
	}
	return mean, unc
}

// percentile interpolates linearly between the sorted values.
func percentile(sorted []float64, f float64) float64 {
	p := f * float64(len(sorted)-1)
	i := int(p)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	p -= float64(i)
	return (1-p)*sorted[i] + p*sorted[i+1]
}

func (s *klSums) stats() KLStats {
	n := len(s.klds)
	if n == 0 {
		return KLStats{}
	}
	var r KLStats
	r.Tokens = n
	lq, lqUnc := meanUnc(s.nll, s.nll2, n)
	lb, lbUnc := meanUnc(s.nllBase, s.nllBase2, n)
	r.PPL, r.PPLUnc = math.Exp(lq), math.Exp(lq)*lqUnc
	r.PPLBase, r.PPLBaseUnc = math.Exp(lb), math.Exp(lb)*lbUnc
	var cov float64
	if n > 1 {
		cov = (s.nllNllBase/float64(n) - lq*lb) / float64(n-1)
	}
	r.LogRatio = lq - lb
	r.LogRatioUnc = math.Sqrt(max(0, lqUnc*lqUnc+lbUnc*lbUnc-2*cov))
	r.Ratio = math.Exp(r.LogRatio)
	r.RatioUnc = r.Ratio * r.LogRatioUnc
	r.KLD, r.KLDUnc = meanUnc(s.kld, s.kld2, n)
	sorted := slices.Clone(s.klds)
	slices.Sort(sorted)
	if n%2 == 0 {
		r.KLDMedian = (sorted[n/2-1] + sorted[n/2]) / 2
	} else {
		r.KLDMedian = sorted[n/2]
	}
	r.KLD99, r.KLD999, r.KLDMax = percentile(sorted, 0.99), percentile(sorted, 0.999), sorted[n-1]
	r.SameTop = float64(s.sameTop) / float64(n)
	if n > 1 {
		r.SameTopUnc = math.Sqrt(r.SameTop * (1 - r.SameTop) / float64(n-1))
	}
	return r
}

// KLChunk is the running comparison after a chunk.
type KLChunk struct {
	Chunk, Chunks int
	Stats         KLStats
}

// CompareKL compares c's model with the base read from r (positioned after
// the header h, which the caller has read with ReadKLHeader and checked
// with KLHeader.Check) over the same tokens, chunk by chunk: at most
// chunks of them (0 for all the base has). It yields the running
// statistics after each chunk; the last is the result.
func CompareKL(ctx context.Context, c *llama.Context, tokens []llama.TokenID, h KLHeader, r io.Reader, chunks int) iter.Seq2[KLChunk, error] {
	return func(yield func(KLChunk, error) bool) {
		if err := h.Check(c.Model(), tokens, c.SequenceContextSize()); err != nil {
			yield(KLChunk{}, err)
			return
		}
		n := h.Chunks
		if chunks > 0 {
			n = min(n, chunks)
		}
		br := bufio.NewReaderSize(r, 1<<20)
		rec := make([]byte, klRecordSize(h.NVocab))
		scratch := make([]byte, len(rec))
		var sums klSums
		compare := func(s llama.ScoredToken) error {
			if _, err := io.ReadFull(br, rec); err != nil {
				return fmt.Errorf("%w: cut short at chunk %d", ErrNotKLBase, s.Chunk+1)
			}
			base := decodeKL(rec)
			if base.top < 0 || base.top >= h.NVocab || math.IsNaN(base.nll) || !(base.step >= 0) {
				return fmt.Errorf("%w: bad record at chunk %d", ErrNotKLBase, s.Chunk+1)
			}
			top, _, _, _ := klScale(s.Logits)
			sums.add(s.NLL, base.nll, klDivergence(&base, s.Logits, scratch), top == base.top)
			return nil
		}
		for r, err := range c.Perplexity(ctx, tokens, llama.WithWindow(h.Window), llama.WithChunks(n), llama.WithScoredLogits(compare)) {
			if err != nil {
				yield(KLChunk{}, err)
				return
			}
			if !yield(KLChunk{Chunk: r.Chunk, Chunks: r.Chunks, Stats: sums.stats()}, nil) {
				return
			}
		}
	}
}
