//go:build llama_system

package llama

// The llama_system build links an installed llama.cpp without its
// multimodal library: LoadProjector returns ErrNoVision, so none of the
// functions below is reached.

import "unsafe"

const mtmdAvailable = false

func mtmdLoad(m *Model, path string, p mtmdParams) (h unsafe.Pointer, vision, mrope, nonCausal bool, err error) {
	return nil, false, false, false, ErrNoVision
}

func mtmdFree(unsafe.Pointer) {}

func mtmdTokenize(unsafe.Pointer, string, []*Image, SpecialTokens) ([]mtmdChunk, error) {
	return nil, ErrNoVision
}

func mtmdFreeChunks([]mtmdChunk) {}

func mtmdEncode(unsafe.Pointer, *mtmdChunk, int) ([]float32, error) { return nil, ErrNoVision }

func (c *Context) decodeEmbd([]float32, int, []int32, int) int { return -1 }

func (c *Context) setCausal(bool) {}

func (m *Model) nEmbdInp() int { return 0 }

func (c *Context) removeTail(int, int) bool { return false }

var mtmdDefaultMarker = DefaultMediaMarker
