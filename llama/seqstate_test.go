package llama

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/llamago/llamago/internal/testmodels"
)

// TestWalkSequenceState: the walk follows llama.cpp's layout of real
// sequence states to their last byte, whatever the KV layout, and refuses
// a cell count the context cannot hold wherever it stands.
func TestWalkSequenceState(t *testing.T) {
	m, err := Load(context.Background(), testmodels.Path(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.info.memory != memoryKV {
		t.Fatalf("stories260K's memory kind %d", m.info.memory)
	}
	for _, tc := range []struct {
		seqs    int
		unified bool
		fa      FlashAttention
	}{{1, false, FlashAttentionOn}, {1, false, FlashAttentionOff}, {3, false, FlashAttentionOff}, {3, false, FlashAttentionOn}, {3, true, FlashAttentionOff}} {
		name := fmt.Sprintf("%d sequences, unified %v, flash attention %d", tc.seqs, tc.unified, tc.fa)
		c, err := m.NewContext(WithContextSize(256), WithSequences(tc.seqs), WithUnifiedKV(tc.unified), WithFlashAttention(tc.fa), WithThreads(1))
		if err != nil {
			t.Fatal(err)
		}
		// The last of the sequences, taken in order.
		var q *Sequence
		for range tc.seqs {
			if q, err = c.NewSequence(); err != nil {
				t.Fatal(err)
			}
		}
		seq := q.ID()
		for _, err := range q.Generate(context.Background(), "Once upon a time", WithMaxTokens(8)) {
			if err != nil {
				t.Fatal(err)
			}
		}
		framed, err := c.SaveSequenceState(seq)
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := m.unframe(framed)
		if err != nil {
			t.Fatal(err)
		}
		end, err := walkSequenceState(bytes.NewReader(p), int64(len(p)), memoryKV, c.ContextSize())
		if err != nil || end != int64(len(p)) {
			t.Errorf("%s: the walk stopped at %d of %d bytes: %v", name, end, len(p), err)
		}

		// The non-empty stream's cell count, made huge.
		bad := bytes.Clone(p)
		off := 4
		for binary.LittleEndian.Uint32(bad[off:]) == 0 {
			off += 4
		}
		binary.LittleEndian.PutUint32(bad[off:], 0xfffffff0)
		if err := checkSequenceState(bytes.NewReader(bad), int64(len(bad)), memoryKV, c.ContextSize()); !errors.Is(err, ErrStateMismatch) {
			t.Errorf("%s: a cell count of 0xfffffff0 at %d: %v", name, off, err)
		}
		// One cell more than the context has.
		binary.LittleEndian.PutUint32(bad[off:], uint32(c.ContextSize()+1))
		if err := checkSequenceState(bytes.NewReader(bad), int64(len(bad)), memoryKV, c.ContextSize()); !errors.Is(err, ErrStateMismatch) {
			t.Errorf("%s: %d cells: %v", name, c.ContextSize()+1, err)
		}
		c.Close()
	}

	// After a first stream, the walk finds the next one's count: two
	// copies of a one-stream state read as two streams.
	c, err := m.NewContext(WithContextSize(256), WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, err := range c.Generate(context.Background(), "Once upon a time", WithMaxTokens(8)) {
		if err != nil {
			t.Fatal(err)
		}
	}
	framed, _ := c.SaveSequenceState(0)
	p, _, _ := m.unframe(framed)
	two := append([]byte{2, 0, 0, 0}, p[4:]...)
	two = append(two, p[4:]...)
	if end, err := walkSequenceState(bytes.NewReader(two), int64(len(two)), memoryKV, 256); err != nil || end != int64(len(two)) {
		t.Errorf("two streams: the walk stopped at %d of %d: %v", end, len(two), err)
	}
	binary.LittleEndian.PutUint32(two[len(p):], 1<<30)
	if err := checkSequenceState(bytes.NewReader(two), int64(len(two)), memoryKV, 256); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("two streams, the second with 2^30 cells: %v", err)
	}
	// SWA and hybrid memories follow a KV cache with another state.
	if err := checkSequenceState(bytes.NewReader(two[:len(p)]), int64(len(p)), memorySWA, 256); err != nil {
		t.Errorf("SWA with a valid base cache and no SWA cache: %v", err)
	}
	withRecurrent := binary.LittleEndian.AppendUint32(bytes.Clone(p), 1<<30)
	if err := checkSequenceState(bytes.NewReader(withRecurrent), int64(len(withRecurrent)), memoryHybrid, 256); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("hybrid, 2^30 recurrent cells: %v", err)
	}
	if err := checkSequenceState(bytes.NewReader(withRecurrent[len(p):]), 4, memoryRecurrent, 256); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("recurrent, 2^30 cells: %v", err)
	}
	// Truncated anywhere: llama.cpp stops reading there, and so does the
	// walk, without an error of its own.
	for n := range len(p) {
		if err := checkSequenceState(bytes.NewReader(p[:n]), int64(n), memoryKV, 256); err != nil {
			t.Fatalf("truncated at %d: %v", n, err)
		}
	}
}
