package llama

import (
	"encoding/binary"
	"fmt"
	"io"
)

// memoryKind is how llama.cpp lays out a sequence's saved state: the
// memory module of the model writes it.
type memoryKind int

const (
	memoryKV        memoryKind = iota // one KV cache
	memorySWA                         // a full and a sliding-window KV cache
	memoryRecurrent                   // recurrent state cells (Mamba, RWKV)
	memoryHybrid                      // a KV cache, then recurrent cells
)

// checkSequenceState walks a sequence state made by
// llama_state_seq_get_data far enough to check the cell counts that
// llama.cpp allocates for before it checks them: a count of billions makes
// it allocate tens of gigabytes, and the process is killed. A count above
// cells (the context's size) cannot come from this context and is
// refused. What else is wrong with the state, llama.cpp finds itself and
// refuses without harm; the walk stops where llama.cpp would stop reading.
func checkSequenceState(state io.ReaderAt, size int64, kind memoryKind, cells int) error {
	_, err := walkSequenceState(state, size, kind, cells)
	return err
}

// walkSequenceState is checkSequenceState, and returns the offset where
// the walk stopped: size for a whole, valid state.
func walkSequenceState(state io.ReaderAt, size int64, kind memoryKind, cells int) (int64, error) {
	r := &stateReader{r: state, size: size}
	err := r.sequence(kind, cells)
	return r.off, err
}

func (r *stateReader) sequence(kind memoryKind, cells int) error {
	check := func(n uint32) error {
		if uint64(n) > uint64(cells) {
			return fmt.Errorf("%w: a sequence state of %d cells, the context has %d", ErrStateMismatch, n, cells)
		}
		return nil
	}
	switch kind {
	case memoryKV:
		return r.kv(check)
	case memorySWA:
		if err := r.kv(check); err != nil || r.done {
			return err
		}
		return r.kv(check)
	case memoryHybrid:
		if err := r.kv(check); err != nil || r.done {
			return err
		}
	}
	// Recurrent cells come last: only their count matters.
	n, ok := r.u32()
	if !ok {
		return nil
	}
	return check(n)
}

// stateReader reads little-endian values from r up to size; done is set
// when llama.cpp would have stopped reading (too few bytes, or a value it
// refuses).
type stateReader struct {
	r         io.ReaderAt
	off, size int64
	done      bool
}

func (r *stateReader) read(n int) ([]byte, bool) {
	var b [8]byte
	if r.done || r.size-r.off < int64(n) {
		r.done = true
		return nil, false
	}
	if _, err := r.r.ReadAt(b[:n], r.off); err != nil {
		r.done = true
		return nil, false
	}
	r.off += int64(n)
	return b[:n], true
}

func (r *stateReader) u32() (uint32, bool) {
	b, ok := r.read(4)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b), true
}

func (r *stateReader) u64() (uint64, bool) {
	b, ok := r.read(8)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b), true
}

// skip skips n items of size bytes.
func (r *stateReader) skip(n, size uint64) {
	if r.done || size != 0 && n > uint64(r.size-r.off)/size {
		r.done = true
		return
	}
	r.off += int64(n * size)
}

// kv walks one KV cache's sequence state (llama_kv_cache::state_write):
// the number of streams, then for each a cell count, the cells (position,
// one sequence id) and the K and V rows of every layer.
func (r *stateReader) kv(check func(uint32) error) error {
	streams, _ := r.u32()
	for s := uint32(0); s < streams && !r.done; s++ {
		cells, ok := r.u32()
		if !ok || cells == 0 {
			continue
		}
		if err := check(cells); err != nil {
			return err
		}
		for range cells {
			r.skip(1, 4) // position
			if n, ok := r.u32(); !ok || n != 1 {
				r.done = true // llama.cpp refuses other counts
				return nil
			}
			r.skip(1, 4) // sequence id
		}
		vTrans, _ := r.u32()
		layers, _ := r.u32()
		rows := func() {
			for l := uint32(0); l < layers && !r.done; l++ {
				r.skip(1, 4) // type
				size, _ := r.u64()
				r.skip(uint64(cells), size)
			}
		}
		rows() // K
		if vTrans == 0 {
			rows() // V
			continue
		}
		// V transposed: the element size and the row width per layer.
		for l := uint32(0); l < layers && !r.done; l++ {
			r.skip(1, 4) // type
			el, _ := r.u32()
			width, _ := r.u32()
			r.skip(uint64(cells)*uint64(width), uint64(el))
		}
	}
	return nil
}
