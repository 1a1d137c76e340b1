package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"unsafe"

	"github.com/llamago/llamago/gguf"
)

// Normalization says how Embed scales each embedding. The values are those
// of llama.cpp's --embd-normalize: NormalizeNone, NormalizeMaxAbs,
// NormalizeL1, NormalizeL2 (the default), and any larger value p for the
// p-norm.
type Normalization int

// Normalizations, as llama.cpp's common_embd_normalize.
const (
	NormalizeNone Normalization = -1
	// NormalizeMaxAbs scales the vector so that its largest absolute
	// value is 32760, the int16 range, as llama.cpp does.
	NormalizeMaxAbs Normalization = 0
	NormalizeL1     Normalization = 1 // taxicab: the absolute values sum to 1
	NormalizeL2     Normalization = 2 // Euclidean: unit vectors
)

func (n Normalization) String() string {
	switch {
	case n == NormalizeNone:
		return "none"
	case n == NormalizeMaxAbs:
		return "max-abs"
	case n == NormalizeL1:
		return "l1"
	case n == NormalizeL2:
		return "l2"
	case n > NormalizeL2:
		return fmt.Sprintf("p%d", int(n))
	}
	return fmt.Sprintf("Normalization(%d)", int(n))
}

type embedConfig struct {
	optErr
	pooling   Pooling
	norm      Normalization
	truncate  bool
	dims      int
	maxTokens int
	batch     int
	ctxOpts   []ContextOption
	rerank    bool // the context's pooling must be rank
}

// EmbedOption configures Embed, EmbedTokens and Rerank, which refuse an
// invalid one.
type EmbedOption func(*embedConfig)

// WithPooling sets how token embeddings are pooled into one per text
// (default PoolingUnspecified: the model's own pooling). PoolingRank gives
// the outputs of a reranker's classifier, unnormalized.
func WithPooling(p Pooling) EmbedOption {
	return func(c *embedConfig) {
		if p < PoolingUnspecified || p > PoolingRank {
			c.fail(invalidArg("pooling type %d", p))
			return
		}
		c.pooling = p
	}
}

// WithNormalization sets how each embedding is scaled (default
// NormalizeL2).
func WithNormalization(n Normalization) EmbedOption {
	return func(c *embedConfig) {
		if n < NormalizeNone {
			c.fail(invalidArg("normalization %d", n))
			return
		}
		c.norm = n
	}
}

// WithTruncation makes a text longer than the token limit (see
// WithMaxTokensPerText) keep its first tokens, and the end-of-text token
// the tokenizer adds (SEP or EOS), rather than fail with ErrContextFull.
func WithTruncation(on bool) EmbedOption {
	return func(c *embedConfig) { c.truncate = on }
}

// WithDimensions keeps the first n values of each embedding before
// normalizing it, for Matryoshka models trained so that prefixes of their
// embeddings are embeddings too. 0 (the default) keeps them all.
func WithDimensions(n int) EmbedOption {
	return func(c *embedConfig) {
		if n < 0 {
			c.fail(invalidArg("%d dimensions", n))
			return
		}
		c.dims = n
	}
}

// WithMaxTokensPerText sets the most tokens of one text (default: the
// model's trained context). Longer texts are an error, or truncated with
// WithTruncation.
func WithMaxTokensPerText(n int) EmbedOption {
	return func(c *embedConfig) {
		if n < 1 || n > 1<<24 {
			c.fail(invalidArg("%d tokens per text", n))
			return
		}
		c.maxTokens = n
	}
}

// WithEmbedBatchSize sets the most tokens decoded at once (default 2048,
// raised to the longest text): texts are packed as parallel sequences
// into batches of this size.
func WithEmbedBatchSize(n int) EmbedOption {
	return func(c *embedConfig) {
		if n < 1 || n > 1<<24 {
			c.fail(invalidArg("embedding batch size %d", n))
			return
		}
		c.batch = n
	}
}

// WithEmbedContext passes options to the context Embed makes, such as
// WithThreads or WithFlashAttention. Those that size it (context, batch
// and micro-batch sizes, sequences, unified KV) and WithEmbeddings are
// overridden.
func WithEmbedContext(opts ...ContextOption) EmbedOption {
	return func(c *embedConfig) { c.ctxOpts = append(c.ctxOpts, opts...) }
}

const defaultEmbedBatch = 2048

// ErrNoPooling is returned by Embed for a model without a pooling type of
// its own (a plain language model) when WithPooling does not choose one.
// It wraps ErrInvalidArgument.
var ErrNoPooling = fmt.Errorf("%w: the model has no pooling of its own", ErrInvalidArgument)

// Embed computes one embedding per text, pooled as the model says (see
// WithPooling) and L2-normalized (see WithNormalization). Texts are
// tokenized with the model's special tokens, then packed as parallel
// sequences into as few decodes as the batch size allows; a text's
// embedding does not depend on the texts it is packed with, but for
// rounding (well under 1e-5).
//
// Embed makes a context for the call, sized to the texts (a unified KV
// cache of one batch, each text whole in one micro-batch), and frees it
// before returning; it is safe for concurrent use. As in llama.cpp, a model
// with an output head also keeps the logits of every token, n_vocab floats
// each: for a large vocabulary, WithEmbedBatchSize bounds that memory. A model with no pooling
// of its own (a plain language model) needs WithPooling; for per-token
// embeddings see EmbedTokens. With PoolingRank each result holds the
// classifier's outputs as they are (see Rerank).
func (m *Model) Embed(ctx context.Context, texts []string, opts ...EmbedOption) ([][]float32, error) {
	cfg, err := newEmbedConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.pooling == PoolingNone {
		return nil, invalidArg("Embed needs a pooling: use EmbedTokens for per-token embeddings")
	}
	seqs, err := m.embedTokens(texts, cfg)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(texts))
	err = m.runEmbed(ctx, seqs, cfg, func(c *Context, i, seq, first int) error {
		e, err := c.SequenceEmbeddings(seq)
		if err != nil {
			return err
		}
		if c.Pooling() == PoolingRank {
			out[i] = e
			return nil
		}
		if out[i], err = cfg.finish(e); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EmbedTokens computes the embedding of every token of each text (pooling
// none): out[i][j] is the j-th token of text i, normalized and cut as with
// Embed. The option WithPooling is ignored.
func (m *Model) EmbedTokens(ctx context.Context, texts []string, opts ...EmbedOption) ([][][]float32, error) {
	cfg, err := newEmbedConfig(opts)
	if err != nil {
		return nil, err
	}
	cfg.pooling = PoolingNone
	seqs, err := m.embedTokens(texts, cfg)
	if err != nil {
		return nil, err
	}
	out := make([][][]float32, len(texts))
	err = m.runEmbed(ctx, seqs, cfg, func(c *Context, i, seq, first int) error {
		out[i] = make([][]float32, len(seqs[i]))
		for j := range seqs[i] {
			e, err := c.Embeddings(first + j)
			if err != nil {
				return err
			}
			if out[i][j], err = cfg.finish(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Reranking is the result of Rerank.
type Reranking struct {
	// Scores holds the relevance of each document, in the order given.
	Scores []float32
	// Order holds the indices of the documents, most relevant first
	// (ties in the order given).
	Order []int
}

// Rerank scores the relevance of each document to the query with a
// reranker: a model whose pooling is PoolingRank (or one forced to it with
// WithPooling). Each pair is laid out as llama.cpp's server does: with the
// model's "rerank" chat template if it has one ({query} and {document}
// replaced), otherwise as [BOS] query [EOS] [SEP] document [EOS], each
// special token where the tokenizer adds it. The score is the first output
// of the classifier, as the model computes it.
//
// WithNormalization and WithDimensions do not apply; the other options are
// as for Embed.
func (m *Model) Rerank(ctx context.Context, query string, documents []string, opts ...EmbedOption) (Reranking, error) {
	cfg, err := newEmbedConfig(opts)
	if err != nil {
		return Reranking{}, err
	}
	if cfg.pooling != PoolingUnspecified && cfg.pooling != PoolingRank {
		return Reranking{}, invalidArg("Rerank needs rank pooling, not %s", cfg.pooling)
	}
	seqs := make([][]TokenID, len(documents))
	for i, d := range documents {
		if seqs[i], err = m.rerankTokens(query, d); err != nil {
			return Reranking{}, err
		}
	}
	if seqs, err = cfg.limit(m, seqs, "document"); err != nil {
		return Reranking{}, err
	}
	r := Reranking{Scores: make([]float32, len(documents)), Order: make([]int, len(documents))}
	cfg.rerank = true
	err = m.runEmbed(ctx, seqs, cfg, func(c *Context, i, seq, first int) error {
		e, err := c.SequenceEmbeddings(seq)
		if err != nil {
			return err
		}
		r.Scores[i] = e[0]
		return nil
	})
	if err != nil {
		return Reranking{}, err
	}
	for i := range r.Order {
		r.Order[i] = i
	}
	slices.SortStableFunc(r.Order, func(a, b int) int { return cmp.Compare(r.Scores[b], r.Scores[a]) })
	return r, nil
}

func (p Pooling) String() string {
	switch p {
	case PoolingUnspecified:
		return "unspecified"
	case PoolingNone:
		return "none"
	case PoolingMean:
		return "mean"
	case PoolingCLS:
		return "cls"
	case PoolingLast:
		return "last"
	case PoolingRank:
		return "rank"
	}
	return fmt.Sprintf("Pooling(%d)", int(p))
}

// ParsePooling parses a pooling type as llama.cpp's --pooling spells it:
// none, mean, cls, last or rank.
func ParsePooling(s string) (Pooling, error) {
	for p := PoolingNone; p <= PoolingRank; p++ {
		if p.String() == s {
			return p, nil
		}
	}
	return PoolingUnspecified, invalidArg("unknown pooling type %q", s)
}

func newEmbedConfig(opts []EmbedOption) (*embedConfig, error) {
	cfg := &embedConfig{pooling: PoolingUnspecified, norm: NormalizeL2}
	for _, o := range opts {
		o(cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	return cfg, nil
}

// embedTokens tokenizes the texts and applies the length limit.
func (m *Model) embedTokens(texts []string, cfg *embedConfig) ([][]TokenID, error) {
	seqs := make([][]TokenID, len(texts))
	for i, t := range texts {
		toks, err := m.Tokenize(t, AddSpecial|ParseSpecial)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
		seqs[i] = toks
	}
	return cfg.limit(m, seqs, "text")
}

// limit refuses empty sequences and truncates or refuses long ones.
func (cfg *embedConfig) limit(m *Model, seqs [][]TokenID, what string) ([][]TokenID, error) {
	limit := cfg.maxTokens
	if limit == 0 {
		limit = m.info.nCtxTrain
	}
	if limit <= 0 {
		limit = defaultEmbedBatch
	}
	var endTok map[TokenID]bool
	for i, s := range seqs {
		if len(s) == 0 {
			return nil, invalidArg("%s %d is empty", what, i)
		}
		if len(s) <= limit {
			continue
		}
		if !cfg.truncate {
			return nil, fmt.Errorf("%w: %s %d has %d tokens, the limit is %d (truncate it, or raise the limit)",
				ErrContextFull, what, i, len(s), limit)
		}
		if endTok == nil {
			endTok = m.endTokens()
		}
		last := s[len(s)-1]
		s = s[:limit:limit]
		if limit > 1 && endTok[last] {
			s[limit-1] = last // keep the SEP or EOS the tokenizer ends with
		}
		seqs[i] = s
	}
	return seqs, nil
}

// endTokens are the tokens the tokenizer appends with AddSpecial.
func (m *Model) endTokens() map[TokenID]bool {
	end := map[TokenID]bool{}
	if m.rlock() != nil {
		return end
	}
	defer m.mu.RUnlock()
	if C.llama_vocab_get_add_eos(m.vocab) {
		end[TokenID(C.llama_vocab_eos(m.vocab))] = true
	}
	if C.llama_vocab_get_add_sep(m.vocab) {
		end[TokenID(C.llama_vocab_sep(m.vocab))] = true
	}
	delete(end, NullToken)
	return end
}

// rerankTokens lays out a query and a document as llama.cpp's server
// (format_prompt_rerank) does.
func (m *Model) rerankTokens(query, doc string) ([]TokenID, error) {
	if err := m.rlock(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	name := C.CString("rerank")
	defer C.free(unsafe.Pointer(name))
	if t := C.llama_model_chat_template(m.c, name); t != nil {
		prompt := strings.NewReplacer("{query}", query, "{document}", doc).Replace(C.GoString(t))
		return m.tokenize(nil, prompt, ParseSpecial)
	}
	v := m.vocab
	eos := TokenID(C.llama_vocab_eos(v))
	if eos == NullToken {
		eos = TokenID(C.llama_vocab_sep(v))
	}
	addEOS := bool(C.llama_vocab_get_add_eos(v)) && eos != NullToken
	var out []TokenID
	if C.llama_vocab_get_add_bos(v) {
		if bos := TokenID(C.llama_vocab_bos(v)); bos != NullToken {
			out = append(out, bos)
		}
	}
	out, err := m.tokenize(out, query, 0)
	if err != nil {
		return nil, err
	}
	if addEOS {
		out = append(out, eos)
	}
	if C.llama_vocab_get_add_sep(v) {
		if sep := TokenID(C.llama_vocab_sep(v)); sep != NullToken {
			out = append(out, sep)
		}
	}
	if out, err = m.tokenize(out, doc, 0); err != nil {
		return nil, err
	}
	if addEOS {
		out = append(out, eos)
	}
	return out, nil
}

// runEmbed decodes the sequences in batches of parallel sequences and calls
// read for each after its batch: i is the sequence's index in seqs, seq
// its sequence id in the context and first the batch index of its first
// token.
func (m *Model) runEmbed(ctx context.Context, seqs [][]TokenID, cfg *embedConfig,
	read func(c *Context, i, seq, first int) error) error {
	if len(seqs) == 0 {
		return nil
	}
	total, longest := 0, 0
	for _, s := range seqs {
		total += len(s)
		longest = max(longest, len(s))
	}
	nBatch := cfg.batch
	if nBatch == 0 {
		nBatch = defaultEmbedBatch
	}
	nBatch = max(min(nBatch, total), longest)
	nSeq := min(len(seqs), MaxSequences())
	// llama.cpp reserves its compute graph for n_seq_max sequences of
	// n_ubatch/n_seq_max tokens; mean pooling fails an assertion (aborting
	// the process) unless n_ubatch is a multiple of n_seq_max.
	nBatch = (nBatch + nSeq - 1) / nSeq * nSeq

	// The whole of each sequence must be in one micro-batch: a non-causal
	// model attends across the micro-batch, and pooling covers only the
	// micro-batch. With a unified KV cache cleared after each batch, the
	// context needs room for one batch only.
	opts := append(slices.Clip(cfg.ctxOpts),
		WithContextSize(nBatch), WithBatchSize(nBatch), WithUBatchSize(nBatch),
		WithSequences(nSeq), WithUnifiedKV(true), WithEmbeddings(cfg.pooling))
	c, err := m.NewContext(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	switch p := c.Pooling(); {
	case cfg.rerank && p != PoolingRank:
		return invalidArg("model %s is not a reranker (its pooling is %s, not rank)", m.path, p)
	case p == PoolingNone && cfg.pooling != PoolingNone:
		return fmt.Errorf("%w: choose mean, cls or last", ErrNoPooling)
	}
	if c.BatchSize() < longest {
		return fmt.Errorf("%w: a sequence of %d tokens does not fit the batch of %d", ErrContextFull, longest, c.BatchSize())
	}

	perBatch := nSeq
	if c.Pooling() == PoolingRank && !m.hasClassifierOutput() {
		// Without a classifier output layer llama.cpp's rank pooling gives
		// each sequence n_embd values but reads one per sequence at
		// offsets 0, 1, 2...: only the first sequence of a batch would be
		// right.
		perBatch = 1
	}

	b, err := NewBatch(c.BatchSize(), 1)
	if err != nil {
		return err
	}
	defer b.Close()
	type member struct{ i, seq, first int }
	var members []member
	for next := 0; next < len(seqs); {
		b.Clear()
		members = members[:0]
		n := 0
		for next < len(seqs) && len(members) < perBatch && n+len(seqs[next]) <= c.BatchSize() {
			seq := len(members)
			members = append(members, member{next, seq, n})
			for pos, t := range seqs[next] {
				if err := b.Add(t, pos, true, seq); err != nil {
					return err
				}
			}
			n += len(seqs[next])
			next++
		}
		if err := c.Decode(ctx, b); err != nil {
			return err
		}
		for _, mb := range members {
			if err := read(c, mb.i, mb.seq, mb.first); err != nil {
				return err
			}
		}
		if err := c.ClearMemory(); err != nil {
			return err
		}
	}
	return nil
}

// hasClassifierOutput reports whether the model file has the output layer
// of a classifier head, cls.output.weight.
func (m *Model) hasClassifierOutput() bool {
	f, err := gguf.Open(m.path)
	if err != nil {
		return false
	}
	_, ok := f.Tensor("cls.output.weight")
	return ok
}

// finish cuts an embedding to the configured dimensions and normalizes it,
// into a new slice.
func (cfg *embedConfig) finish(e []float32) ([]float32, error) {
	if cfg.dims > 0 {
		if cfg.dims > len(e) {
			return nil, invalidArg("%d dimensions, the embedding has %d", cfg.dims, len(e))
		}
		e = e[:cfg.dims]
	}
	// e is the caller's own copy (see Context.Embeddings).
	Normalize(e, e, cfg.norm)
	return e, nil
}

// Normalize writes src scaled as n says to dst (which may be src), as
// llama.cpp's common_embd_normalize: a zero vector stays zero.
func Normalize(dst, src []float32, n Normalization) {
	dst = dst[:len(src)]
	var sum float64
	switch {
	case n < NormalizeMaxAbs:
		sum = 1
	case n == NormalizeMaxAbs:
		for _, v := range src {
			sum = max(sum, math.Abs(float64(v)))
		}
		sum /= 32760
	case n == NormalizeL2:
		for _, v := range src {
			sum += float64(v) * float64(v)
		}
		sum = math.Sqrt(sum)
	default:
		for _, v := range src {
			sum += math.Pow(math.Abs(float64(v)), float64(n))
		}
		sum = math.Pow(sum, 1/float64(n))
	}
	norm := 0.0
	if sum > 0 {
		norm = 1 / sum
	}
	for i, v := range src {
		dst[i] = float32(float64(v) * norm)
	}
}

// CosineSimilarity returns the cosine of the angle between a and b (0 if
// either is zero), as llama.cpp's common_embd_similarity_cos.
func CosineSimilarity(a, b []float32) float32 {
	var ab, aa, bb float64
	for i := range min(len(a), len(b)) {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		if aa == 0 && bb == 0 {
			return 1
		}
		return 0
	}
	return float32(ab / (math.Sqrt(aa) * math.Sqrt(bb)))
}
