package llama

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unsafe"

	"github.com/llamago/llamago/internal/clock"
)

// MaxImagesPerPrompt bounds the images one prompt may hold.
const MaxImagesPerPrompt = 64

// mediaConfig is WithImages's part of a generation, and what evalMedia
// did before the scheduler takes over.
type mediaConfig struct {
	proj   *Projector
	images []*Image

	evaluated bool          // the prompt before its trailing text is in the sequence
	start     clock.Time    // the generation's start
	end       int           // positions before the trailing text
	cached    int           // of those, reused from the sequence's cache
	encode    time.Duration // time in the image encoder
}

// WithImages gives the prompt images, encoded by the projector p of the
// context's model. Each image stands where the prompt has DefaultMediaMarker
// ("<__media__>"), in order; a prompt without markers gets one per image
// at its start. The prompt must end with text after its last image.
//
// An image takes as many positions of the sequence as the projector makes
// embeddings of it (a few dozen to a few thousand). A prompt that repeats
// the images and text a sequence already holds reuses them, as it reuses
// text: an image is recognised by the hash of its pixels. Sequence.Tokens
// shows an image's positions as negative placeholder ids.
//
// The image encoder runs first, outside the context's lock (other
// sequences go on generating meanwhile); decoding the embeddings into the
// sequence then holds the context, as a prompt does.
func WithImages(p *Projector, images ...*Image) GenerateOption {
	return func(c *generateConfig) {
		c.media = &mediaConfig{proj: p, images: images}
	}
}

// mtmdChunk is one chunk of a tokenized multimodal prompt: text tokens,
// or an image whose embeddings take nTokens cells at nPos positions.
type mtmdChunk struct {
	text    []TokenID
	image   *Image
	c       unsafe.Pointer // the image chunk (*C.mtmd_input_chunk), a copy of ours
	nTokens int
	nPos    int
	nx, ny  int // the image's grid of embeddings, for M-RoPE
}

// mediaPrompt is a tokenized multimodal prompt.
type mediaPrompt struct {
	chunks []mtmdChunk
	keys   []TokenID // per position: text tokens, and placeholders for images
	start  []int     // per chunk: its first position
	end    int       // positions before the trailing text
}

// mediaKey is the placeholder id of an image's i-th position: negative,
// so never a token, and derived from the projector and the image's hash,
// so that the same image, and only it, matches the cache.
func mediaKey(seed uint64, i int) TokenID {
	x := seed + uint64(i)*0x9e3779b97f4a7c15
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	return TokenID(-1 - int32(x&0x7fffffff))
}

// prepareMedia checks a multimodal generation and tokenizes its prompt.
func (c *Context) prepareMedia(prompt string, cfg *generateConfig) (*mediaPrompt, error) {
	mc := cfg.media
	p := mc.proj
	switch {
	case p == nil:
		return nil, invalidArg("WithImages: nil projector")
	case p.m != c.m:
		return nil, invalidArg("WithImages: projector %s was loaded for model %s, not %s", p.path, p.m.path, c.m.path)
	case len(mc.images) > MaxImagesPerPrompt:
		return nil, invalidArg("%d images in one prompt, at most %d", len(mc.images), MaxImagesPerPrompt)
	}
	for i, im := range mc.images {
		if im == nil || im.width <= 0 || im.height <= 0 || len(im.rgb) != 3*im.width*im.height {
			return nil, fmt.Errorf("%w: image %d is not an Image made by NewImage or DecodeImage", ErrInvalidImage, i)
		}
	}
	if c.pooling != PoolingNone && c.embeddings {
		return nil, invalidArg("images need a generating context, not an embedding one")
	}
	n := strings.Count(prompt, DefaultMediaMarker)
	switch {
	case n == 0 && len(mc.images) > 0:
		prompt = strings.Repeat(DefaultMediaMarker, len(mc.images)) + "\n" + prompt
	case n != len(mc.images):
		return nil, invalidArg("prompt has %d image markers %s for %d images", n, DefaultMediaMarker, len(mc.images))
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: projector %s", ErrClosed, p.path)
	}
	chunks, err := mtmdTokenize(p.h, prompt, mc.images, cfg.flags)
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	mp := &mediaPrompt{chunks: chunks}
	for i := range chunks {
		ch := &chunks[i]
		mp.start = append(mp.start, len(mp.keys))
		if ch.image == nil {
			mp.keys = append(mp.keys, ch.text...)
			continue
		}
		if p.nonCausal && ch.nTokens > c.nUbatch {
			mtmdFreeChunks(chunks)
			return nil, invalidArg("an image of %d embeddings, which this projector needs in one micro-batch of %d (raise the micro-batch size)", ch.nTokens, c.nUbatch)
		}
		h := sha256.New()
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:], p.id)
		binary.LittleEndian.PutUint64(b[8:], uint64(ch.nTokens)<<32|uint64(ch.nPos))
		h.Write(b[:])
		h.Write(ch.image.hash[:])
		seed := binary.LittleEndian.Uint64(h.Sum(nil))
		for j := range ch.nPos {
			mp.keys = append(mp.keys, mediaKey(seed, j))
		}
	}
	last := len(chunks) - 1
	if last < 0 || chunks[last].image != nil || len(chunks[last].text) == 0 {
		mtmdFreeChunks(chunks)
		return nil, invalidArg("the prompt must end with text after its last image")
	}
	mp.end = mp.start[last]
	return mp, nil
}

// evalMedia decodes the part of a multimodal prompt before its trailing
// text into seq, reusing what the sequence holds, and returns how many of
// those positions it reused. Images after the reused prefix are encoded
// first, without the context's lock. The trailing text is left to the
// generation, which decodes it with the scheduler's batches.
func (c *Context) evalMedia(ctx context.Context, q *Sequence, mp *mediaPrompt, cfg *generateConfig) (cached int, encode time.Duration, err error) {
	p := cfg.media.proj
	// What the sequence holds, for which images need encoding.
	if err := c.lock(); err != nil {
		return 0, 0, err
	}
	pre := c.mediaPrefix(q.id, mp)
	c.mu.Unlock()
	pre0 := pre

	nEmbd := c.m.nEmbdInp()
	embds := make([][]float32, len(mp.chunks))
	encodeChunk := func(i int) error {
		p.mu.Lock()
		defer p.mu.Unlock()
		start := clock.Now()
		if p.closed {
			return fmt.Errorf("%w: projector %s", ErrClosed, p.path)
		}
		e, err := mtmdEncode(p.h, &mp.chunks[i], nEmbd)
		if err != nil {
			return err
		}
		embds[i] = e
		encode += clock.Since(start)
		return nil
	}
	for i := range mp.chunks {
		if mp.chunks[i].image != nil && mp.start[i]+mp.chunks[i].nPos > pre && mp.start[i] < mp.end {
			if err := ctx.Err(); err != nil {
				return 0, encode, err
			}
			if err := encodeChunk(i); err != nil {
				return 0, encode, err
			}
		}
	}

	if err := c.lock(); err != nil {
		return 0, encode, err
	}
	defer c.mu.Unlock()
	s := &c.sched
	s.mu.Lock()
	switch {
	case q.closed:
		s.mu.Unlock()
		return 0, encode, ErrClosed
	case s.slots[q.id].gen != nil:
		s.mu.Unlock()
		return 0, encode, ErrBusy
	}
	s.mu.Unlock()
	if ctx.Done() != nil {
		defer c.watch(ctx)()
	}
	h := &c.hist[q.id]
	seq := q.id
	pre = c.mediaPrefix(seq, mp)
	if !h.valid {
		c.clearSeq(seq)
	}
	// A sequence that holds all of it keeps what follows, which the
	// generation's own prefix match then trims.
	if pre < mp.end && pre < len(h.tokens) && !c.removeTail(seq, pre) {
		c.clearSeq(seq)
		pre = 0
	}
	cached = pre
	if cached < pre0 {
		// The sequence lost the image between the first look and now
		// (its owner changed it meanwhile): encode what is missing.
		for i := range mp.chunks {
			if mp.chunks[i].image != nil && embds[i] == nil && mp.start[i]+mp.chunks[i].nPos > pre && mp.start[i] < mp.end {
				if err := encodeChunk(i); err != nil {
					return 0, encode, err
				}
			}
		}
	}
	b, err := NewBatch(c.nBatch, 1)
	if err != nil {
		return 0, encode, err
	}
	defer b.Close()
	fail := func(err error) (int, time.Duration, error) {
		// Drop what a failed decode left past the positions h records.
		if !c.removeTail(seq, len(h.tokens)) {
			h.valid = false
		}
		return 0, encode, err
	}
	for i := range mp.chunks {
		ch, start := &mp.chunks[i], mp.start[i]
		if start >= mp.end {
			break
		}
		if start+ch.nPos <= pre {
			continue
		}
		if ch.image == nil {
			for off := max(0, pre-start); off < len(ch.text); {
				n := min(len(ch.text)-off, c.nBatch)
				b.Clear()
				for j, t := range ch.text[off : off+n] {
					if err := b.Add(t, start+off+j, false, seq); err != nil {
						return fail(err)
					}
				}
				b.mu.Lock()
				err := c.decode(ctx, b, false)
				b.mu.Unlock()
				if err != nil {
					return fail(err)
				}
				h.tokens = append(h.tokens, ch.text[off:off+n]...)
				off += n
			}
			pre = start + ch.nPos
			continue
		}
		if err := c.decodeImage(ctx, p, ch, embds[i], start, seq); err != nil {
			return fail(err)
		}
		h.tokens = append(h.tokens, mp.keys[start:start+ch.nPos]...)
		pre = start + ch.nPos
	}
	return cached, encode, nil
}

// mediaPrefix is how many of the prompt's positions before its trailing
// text sequence seq holds, never ending inside an image; the caller holds
// c.mu.
func (c *Context) mediaPrefix(seq int, mp *mediaPrompt) int {
	h := &c.hist[seq]
	if !h.valid {
		return 0
	}
	n := commonPrefix(h.tokens, mp.keys[:mp.end])
	for i := range mp.chunks {
		if s := mp.start[i]; mp.chunks[i].image != nil && s < n && n < s+mp.chunks[i].nPos {
			return s
		}
	}
	return n
}

// decodeImage decodes an image's embeddings into seq from position pos,
// in batches of the context's batch size (all at once for a projector
// whose images attend both ways); the caller holds c.mu.
func (c *Context) decodeImage(ctx context.Context, p *Projector, ch *mtmdChunk, embd []float32, pos0, seq int) error {
	nEmbd := len(embd) / ch.nTokens
	step := c.nBatch
	if p.nonCausal {
		step = ch.nTokens
		c.setCausal(false)
		defer c.setCausal(true)
	}
	for off := 0; off < ch.nTokens; off += step {
		n := min(step, ch.nTokens-off)
		var pos []int32
		if p.mrope {
			// Four sections: time (the image's first position), row,
			// column, and an unused one.
			pos = make([]int32, 4*n)
			for j := range n {
				k := off + j
				pos[j] = int32(pos0)
				pos[n+j] = int32(pos0 + k/ch.nx)
				pos[2*n+j] = int32(pos0 + k%ch.nx)
			}
		} else {
			pos = make([]int32, n)
			for j := range n {
				pos[j] = int32(pos0 + off + j)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		start := clock.Now()
		rc := c.decodeEmbd(embd[off*nEmbd:(off+n)*nEmbd], n, pos, seq)
		c.yield(start)
		switch rc {
		case 0:
		case 1:
			return fmt.Errorf("%w: no room in the KV cache for an image of %d embeddings", ErrContextFull, ch.nTokens)
		case 2:
			if err := ctx.Err(); err != nil {
				return err
			}
			if c.isClosing() {
				return ErrClosed
			}
			return &DecodeError{Code: rc}
		default:
			return &DecodeError{Code: rc}
		}
	}
	return nil
}

// generateMedia runs a generation whose prompt holds images (WithImages):
// evalMedia decodes the prompt up to its trailing text into the sequence,
// and the scheduler goes on from there as for a text prompt.
func (c *Context) generateMedia(ctx context.Context, seq *Sequence, prompt string, cfg *generateConfig, yield func(Token, error) bool) {
	start := clock.Now()
	fail := func(err error) {
		if cfg.stats != nil {
			reason := StopError
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				reason = StopCancelled
			}
			*cfg.stats = Stats{StopReason: reason, Images: len(cfg.media.images)}
		}
		yield(Token{}, err)
	}
	mp, err := c.prepareMedia(prompt, cfg)
	if err != nil {
		fail(err)
		return
	}
	defer mtmdFreeChunks(mp.chunks)
	// Checked before any image is encoded. With M-RoPE an image takes
	// more cells than positions.
	cells := 0
	for i := range mp.chunks {
		cells += mp.chunks[i].nTokens
	}
	if n := c.nCtxSeq; cells >= n {
		fail(fmt.Errorf("%w: prompt of %d tokens and image embeddings, sequence context of %d", ErrContextFull, cells, n))
		return
	}
	q := seq
	if q == nil {
		if q, err = c.borrowSequence(ctx, mp.keys); err != nil {
			fail(err)
			return
		}
		defer c.returnSequence(q)
	}
	cached, encode, err := c.evalMedia(ctx, q, mp, cfg)
	if err != nil {
		fail(err)
		return
	}
	m := *cfg.media
	m.evaluated, m.start, m.end, m.cached, m.encode = true, start, mp.end, cached, encode
	c2 := *cfg
	c2.media = &m
	c.generate(ctx, q, mp.keys, &c2, yield)
}

// borrowSequence holds a free sequence for a Context.Generate with images,
// the one whose cache shares the longest prefix with keys, waiting for
// one until ctx is done. returnSequence gives it back with its cache.
func (c *Context) borrowSequence(ctx context.Context, keys []TokenID) (*Sequence, error) {
	s := &c.sched
	for {
		if err := c.lock(); err != nil {
			return nil, err
		}
		s.mu.Lock()
		id, err := s.acquire(nil, keys)
		if err == nil && id >= 0 {
			q := &Sequence{c: c, id: id}
			s.slots[id].owner = q
			s.mu.Unlock()
			c.mu.Unlock()
			return q, nil
		}
		freed := s.freed
		s.mu.Unlock()
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *Context) returnSequence(q *Sequence) {
	s := &c.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	q.closed = true
	if sl := &s.slots[q.id]; sl.owner == q {
		sl.owner = nil
		if sl.gen == nil {
			s.release()
		}
	}
}
