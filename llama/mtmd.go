//go:build !llama_system

package llama

// The cgo side of projectors (projector.go, media.go): llama.cpp's
// multimodal library, mtmd, compiled by the internal mtmdlib package.
// Handles cross into the rest of the package as unsafe.Pointer, so that
// the llama_system build, which has no mtmd, needs only the stubs of
// mtmd_system.go.

/*
#include <stdlib.h>
#include "mtmd_shim.h"
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// mtmdAvailable says whether this build has llama.cpp's multimodal library.
const mtmdAvailable = true

// mtmdDefaultMarker is mtmd's media marker, "<__media__>".
var mtmdDefaultMarker = C.GoString(C.mtmd_default_marker())

// mtmdLoad loads the projector at path for m; the caller holds m's read
// lock.
func mtmdLoad(m *Model, path string, p mtmdParams) (h unsafe.Pointer, vision, mrope, nonCausal bool, err error) {
	C.mtmd_log_set(C.ggml_log_callback(C.llamago_log), nil)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	capture := startCapture()
	ctx := C.llamago_mtmd_init(cpath, m.c, C.bool(p.gpu), C.int(p.threads), C.bool(p.warmup), C.int(p.minTokens), C.int(p.maxToks))
	capture.stop()
	if err := capture.err(); err != nil {
		if ctx != nil {
			C.mtmd_free(ctx)
		}
		return nil, false, false, false, err
	}
	if ctx == nil {
		reason := capture.reason()
		if reason == "" {
			reason = "llama.cpp gave no reason"
		}
		return nil, false, false, false, fmt.Errorf("%w: %s: llama.cpp could not load it as a projector of %s: %s", ErrInvalidModel, path, m.path, reason)
	}
	return unsafe.Pointer(ctx), bool(C.mtmd_support_vision(ctx)), bool(C.mtmd_decode_use_mrope(ctx)), bool(C.mtmd_decode_use_non_causal(ctx)), nil
}

func mtmdFree(h unsafe.Pointer) { C.mtmd_free((*C.mtmd_context)(h)) }

// mtmdTokenize splits text (with one marker per image) into chunks; the
// caller frees the image chunks with mtmdFreeChunks.
func mtmdTokenize(h unsafe.Pointer, text string, images []*Image, flags SpecialTokens) ([]mtmdChunk, error) {
	ctx := (*C.mtmd_context)(h)
	// C memory: the array holds C pointers that mtmd reads.
	cbitmaps := C.malloc(C.size_t(max(1, len(images))) * C.size_t(unsafe.Sizeof(uintptr(0))))
	defer C.free(cbitmaps)
	bitmaps := unsafe.Slice((**C.mtmd_bitmap)(cbitmaps), max(1, len(images)))
	n := 0
	defer func() {
		for i := range n {
			C.mtmd_bitmap_free(bitmaps[i])
		}
	}()
	for _, im := range images {
		data := C.CBytes(im.rgb)
		bitmaps[n] = C.mtmd_bitmap_init(C.uint32_t(im.width), C.uint32_t(im.height), (*C.uchar)(data))
		C.free(data)
		if bitmaps[n] == nil {
			return nil, fmt.Errorf("%w: mtmd refused a %dx%d bitmap", ErrInvalidImage, im.width, im.height)
		}
		n++
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	chunks := C.mtmd_input_chunks_init()
	defer C.mtmd_input_chunks_free(chunks)
	var errBuf [256]C.char
	capture := startCapture()
	rc := C.llamago_mtmd_tokenize(ctx, chunks, ctext, C.bool(flags&AddSpecial != 0), C.bool(flags&ParseSpecial != 0),
		(**C.mtmd_bitmap)(cbitmaps), C.size_t(n), &errBuf[0], C.size_t(len(errBuf)))
	capture.stop()
	if err := capture.err(); err != nil {
		return nil, err
	}
	switch rc {
	case 0:
	case -1:
		return nil, fmt.Errorf("%w: mtmd: %s", ErrInvalidImage, C.GoString(&errBuf[0]))
	case 1:
		return nil, invalidArg("%d images for the prompt's markers (mtmd counted otherwise)", n)
	default:
		reason := capture.reason()
		if reason == "" {
			reason = fmt.Sprintf("code %d", rc)
		}
		return nil, fmt.Errorf("%w: mtmd could not preprocess it: %s", ErrInvalidImage, reason)
	}
	var out []mtmdChunk
	img := 0
	for i := range int(C.mtmd_input_chunks_size(chunks)) {
		ch := C.mtmd_input_chunks_get(chunks, C.size_t(i))
		switch C.mtmd_input_chunk_get_type(ch) {
		case C.MTMD_INPUT_CHUNK_TYPE_TEXT:
			var nt C.size_t
			toks := C.mtmd_input_chunk_get_tokens_text(ch, &nt)
			ids := make([]TokenID, int(nt))
			for j, t := range unsafe.Slice(toks, int(nt)) {
				ids[j] = TokenID(t)
			}
			out = append(out, mtmdChunk{text: ids, nTokens: len(ids), nPos: len(ids)})
		case C.MTMD_INPUT_CHUNK_TYPE_IMAGE:
			it := C.mtmd_input_chunk_get_tokens_image(ch)
			if img >= len(images) || it == nil {
				mtmdFreeChunks(out)
				return nil, errors.New("llama: mtmd made more image chunks than images")
			}
			out = append(out, mtmdChunk{
				image:   images[img],
				c:       unsafe.Pointer(C.mtmd_input_chunk_copy(ch)),
				nTokens: int(C.mtmd_input_chunk_get_n_tokens(ch)),
				nPos:    int(C.mtmd_input_chunk_get_n_pos(ch)),
				nx:      int(C.mtmd_image_tokens_get_nx(it)),
				ny:      int(C.mtmd_image_tokens_get_ny(it)),
			})
			img++
		default:
			mtmdFreeChunks(out)
			return nil, invalidArg("prompt holds audio, which llamago does not support")
		}
	}
	return out, nil
}

// mtmdFreeChunks frees the image chunks of mtmdTokenize.
func mtmdFreeChunks(chunks []mtmdChunk) {
	for i := range chunks {
		if chunks[i].c != nil {
			C.mtmd_input_chunk_free((*C.mtmd_input_chunk)(chunks[i].c))
			chunks[i].c = nil
		}
	}
}

// mtmdEncode runs the vision encoder on an image chunk and returns its
// embeddings, nTokens rows of nEmbd; the caller serialises use of h.
func mtmdEncode(h unsafe.Pointer, ch *mtmdChunk, nEmbd int) ([]float32, error) {
	ctx := (*C.mtmd_context)(h)
	var errBuf [256]C.char
	capture := startCapture()
	rc := C.llamago_mtmd_encode(ctx, (*C.mtmd_input_chunk)(ch.c), &errBuf[0], C.size_t(len(errBuf)))
	capture.stop()
	if err := capture.err(); err != nil {
		return nil, err
	}
	if rc != 0 {
		reason := C.GoString(&errBuf[0])
		if reason == "" {
			reason = capture.reason()
		}
		return nil, fmt.Errorf("llama: encoding a %dx%d image failed (code %d): %s", ch.image.width, ch.image.height, rc, reason)
	}
	p := C.mtmd_get_output_embd(ctx)
	if p == nil {
		return nil, errors.New("llama: the projector gave no embeddings")
	}
	src := unsafe.Slice((*float32)(unsafe.Pointer(p)), ch.nTokens*nEmbd)
	return append([]float32(nil), src...), nil
}

// decodeEmbd decodes embeddings into sequence seq at positions pos (one
// per token, or four per token section by section with M-RoPE); the
// caller holds c.mu and watches ctx. Errors are as for decode.
func (c *Context) decodeEmbd(embd []float32, nTokens int, pos []int32, seq int) int {
	rc := C.llamago_decode_embd(c.c, (*C.float)(unsafe.Pointer(&embd[0])), C.int32_t(nTokens),
		(*C.llama_pos)(unsafe.Pointer(&pos[0])), C.llama_seq_id(seq))
	c.outputs = c.outputs[:0]
	return int(rc)
}

// setCausal switches the context's attention between causal and not, for
// the projectors whose image embeddings attend to each other both ways.
func (c *Context) setCausal(on bool) { C.llama_set_causal_attn(c.c, C.bool(on)) }

// nEmbdInp is the size of the model's input embeddings.
func (m *Model) nEmbdInp() int { return int(C.llama_model_n_embd_inp(m.c)) }

// removeTail removes sequence seq's positions from p on, as its history
// does; false if the memory cannot (the caller then clears it). The
// caller holds c.mu.
func (c *Context) removeTail(seq, p int) bool {
	if !C.llama_memory_seq_rm(c.mem, C.llama_seq_id(seq), C.llama_pos(p), -1) {
		return false
	}
	if h := &c.hist[seq]; len(h.tokens) > p {
		h.tokens = h.tokens[:p]
	}
	return true
}
