package llama

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"unsafe"
)

// State snapshots from SaveState and SaveSequenceState are framed by a
// header of ours, so that LoadState can refuse bytes that are corrupt or
// belong to another model before llama.cpp parses them.
//
//	magic "LGST" | version u32 | fingerprint [32]byte | length u64 | crc32 u32 | body
//	body: token count u32 | tokens i32... | llama.cpp state
//
// The tokens are those a sequence snapshot holds, so that a restored
// sequence is a cached prefix for Generate; whole-context snapshots carry
// none. length and crc32 cover the body.
const (
	stateMagic   = "LGST"
	stateVersion = 2
	stateHeader  = 4 + 4 + 32 + 8 + 4
)

// ErrStateMismatch is returned when a saved state belongs to another model
// or is corrupt.
var ErrStateMismatch = errors.New("llama: saved state does not match this model")

// Fingerprint identifies the model's architecture, shape, weights size and
// vocabulary, so that saved states and sessions can refuse another model.
// It is a hex SHA-256 digest.
func (m *Model) Fingerprint() string {
	fp := m.fingerprint()
	return hex.EncodeToString(fp[:])
}

func (m *Model) fingerprint() [32]byte {
	h := sha256.New()
	i := &m.info
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\x00%d\x00%d\x00%d\x00%d\x00%d\x00", i.arch, i.desc, i.nParams, i.size,
		i.nVocab, i.nEmbd, i.nLayer, i.nHead, i.nHeadKV)
	var fp [32]byte
	h.Sum(fp[:0])
	return fp
}

func (m *Model) frame(payload []byte, tokens []TokenID) []byte {
	body := make([]byte, 4+4*len(tokens), 4+4*len(tokens)+len(payload))
	binary.LittleEndian.PutUint32(body, uint32(len(tokens)))
	for i, t := range tokens {
		binary.LittleEndian.PutUint32(body[4+4*i:], uint32(t))
	}
	body = append(body, payload...)
	out := make([]byte, stateHeader, stateHeader+len(body))
	copy(out, stateMagic)
	binary.LittleEndian.PutUint32(out[4:], stateVersion)
	fp := m.fingerprint()
	copy(out[8:40], fp[:])
	binary.LittleEndian.PutUint64(out[40:], uint64(len(body)))
	binary.LittleEndian.PutUint32(out[48:], crc32.ChecksumIEEE(body))
	return append(out, body...)
}

// unframe checks a snapshot and returns its tokens and llama.cpp state.
func (m *Model) unframe(data []byte) ([]byte, []TokenID, error) {
	body, err := m.unframeBody(data)
	if err != nil {
		return nil, nil, err
	}
	if len(body) < 4 {
		return nil, nil, fmt.Errorf("%w: truncated", ErrStateMismatch)
	}
	n := uint64(binary.LittleEndian.Uint32(body))
	if n > uint64(len(body)-4)/4 {
		return nil, nil, fmt.Errorf("%w: %d tokens in %d bytes", ErrStateMismatch, n, len(body))
	}
	tokens := make([]TokenID, n)
	for i := range tokens {
		tokens[i] = TokenID(binary.LittleEndian.Uint32(body[4+4*i:]))
		if !m.validToken(tokens[i]) {
			return nil, nil, fmt.Errorf("%w: token %d outside the vocabulary", ErrStateMismatch, tokens[i])
		}
	}
	return body[4+4*n:], tokens, nil
}

func (m *Model) unframeBody(data []byte) ([]byte, error) {
	if len(data) < stateHeader || string(data[:4]) != stateMagic {
		return nil, fmt.Errorf("%w: not a llamago state", ErrStateMismatch)
	}
	if v := binary.LittleEndian.Uint32(data[4:]); v != stateVersion {
		return nil, fmt.Errorf("%w: state version %d", ErrStateMismatch, v)
	}
	fp := m.fingerprint()
	if !bytes.Equal(data[8:40], fp[:]) {
		return nil, fmt.Errorf("%w: saved from another model", ErrStateMismatch)
	}
	payload := data[stateHeader:]
	if n := binary.LittleEndian.Uint64(data[40:]); n != uint64(len(payload)) {
		return nil, fmt.Errorf("%w: length %d, have %d bytes", ErrStateMismatch, n, len(payload))
	}
	if crc32.ChecksumIEEE(payload) != binary.LittleEndian.Uint32(data[48:]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrStateMismatch)
	}
	return payload, nil
}

// SaveState returns a snapshot of the whole context state: the KV cache of
// every sequence, the last logits and embeddings.
func (c *Context) SaveState() ([]byte, error) {
	return c.saveState(func() ([]byte, bool) {
		n := C.llama_state_get_size(c.c)
		buf := make([]byte, n)
		if n == 0 {
			return buf, true
		}
		got := C.llama_state_get_data(c.c, (*C.uint8_t)(unsafe.Pointer(&buf[0])), n)
		return buf[:got], got == n
	}, nil)
}

// SaveSequenceState returns a snapshot of one sequence's KV cache, with the
// tokens it holds when they are known (see SequenceTokens).
func (c *Context) SaveSequenceState(seq int) ([]byte, error) {
	var tokens []TokenID
	if seq >= 0 && seq < c.nSeqMax {
		tokens, _ = c.SequenceTokens(seq)
	}
	return c.saveState(func() ([]byte, bool) {
		if c.checkSeq(seq, false) != nil {
			return nil, false
		}
		n := C.llama_state_seq_get_size(c.c, C.llama_seq_id(seq))
		buf := make([]byte, n)
		if n == 0 {
			return buf, true
		}
		got := C.llama_state_seq_get_data(c.c, (*C.uint8_t)(unsafe.Pointer(&buf[0])), n, C.llama_seq_id(seq))
		return buf[:got], got == n
	}, tokens)
}

func (c *Context) saveState(get func() ([]byte, bool), tokens []TokenID) ([]byte, error) {
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	data, ok := get()
	if !ok {
		return nil, errors.New("llama: could not save the state")
	}
	return c.m.frame(data, tokens), nil
}

// LoadState restores a snapshot made by SaveState on a context of the same
// model (and a context size at least as large). Bytes that are corrupt or
// from another model are refused with ErrStateMismatch.
func (c *Context) LoadState(data []byte) error {
	return c.loadState(data, -1)
}

// LoadSequenceState restores a snapshot made by SaveSequenceState into
// sequence seq, replacing what it held. If the snapshot carries its tokens,
// Generate reuses the restored cache as a prefix.
func (c *Context) LoadSequenceState(seq int, data []byte) error {
	return c.loadState(data, seq)
}

func (c *Context) loadState(data []byte, seq int) error {
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if seq != -1 {
		if err := c.checkSeq(seq, false); err != nil {
			return err
		}
	}
	payload, tokens, err := c.m.unframe(data)
	if err != nil {
		return err
	}
	if seq >= 0 && stateFormatKnown {
		if err := checkSequenceState(bytes.NewReader(payload), int64(len(payload)), c.m.info.memory, c.nCtx); err != nil {
			return err
		}
	}
	var p *C.uint8_t
	if len(payload) > 0 {
		p = (*C.uint8_t)(unsafe.Pointer(&payload[0]))
	}
	var got C.size_t
	if seq < 0 {
		got = C.llama_state_set_data(c.c, p, C.size_t(len(payload)))
		for i := range c.hist {
			c.hist[i].valid = false
		}
	} else {
		got = C.llama_state_seq_set_data(c.c, p, C.size_t(len(payload)), C.llama_seq_id(seq))
		c.hist[seq].valid = false
	}
	c.outputs = c.outputs[:0]
	if got == 0 && len(payload) > 0 {
		return fmt.Errorf("%w: llama.cpp could not restore it (context too small?)", ErrStateMismatch)
	}
	if seq >= 0 && len(tokens) > 0 {
		c.adoptHistory(seq, tokens)
	}
	return nil
}

// SaveStateFile writes the whole context state and the tokens it holds to
// a file in llama.cpp's session format (as llama-cli --prompt-cache).
func (c *Context) SaveStateFile(path string, tokens []TokenID) error {
	for _, t := range tokens {
		if err := c.m.checkToken(t); err != nil {
			return err
		}
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if !C.llama_state_save_file(c.c, cpath, tokenPtr(tokens), C.size_t(len(tokens))) {
		return fmt.Errorf("llama: could not save state to %s", path)
	}
	return nil
}

// LoadStateFile restores a state written by SaveStateFile and returns its
// tokens. If they account for sequence 0's cache, Generate reuses them as a
// cached prefix.
func (c *Context) LoadStateFile(path string) ([]TokenID, error) {
	if err := fileExists(path); err != nil {
		return nil, err
	}
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	tokens := make([]TokenID, c.nCtx)
	var n C.size_t
	for i := range c.hist {
		c.hist[i].valid = false
	}
	c.outputs = c.outputs[:0]
	if !C.llama_state_load_file(c.c, cpath, tokenPtr(tokens), C.size_t(len(tokens)), &n) {
		return nil, fmt.Errorf("%w: could not load state from %s (see the log)", ErrStateMismatch, path)
	}
	tokens = tokens[:n]
	c.adoptHistory(0, tokens)
	return tokens, nil
}

// SaveSequenceStateFile writes one sequence's state and tokens to a file.
func (c *Context) SaveSequenceStateFile(path string, seq int, tokens []TokenID) error {
	for _, t := range tokens {
		if err := c.m.checkToken(t); err != nil {
			return err
		}
	}
	if err := c.lock(); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, false); err != nil {
		return err
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	if C.llama_state_seq_save_file(c.c, cpath, C.llama_seq_id(seq), tokenPtr(tokens), C.size_t(len(tokens))) == 0 {
		return fmt.Errorf("llama: could not save sequence %d to %s", seq, path)
	}
	return nil
}

// LoadSequenceStateFile restores a sequence saved by SaveSequenceStateFile
// into sequence seq and returns its tokens.
func (c *Context) LoadSequenceStateFile(path string, seq int) ([]TokenID, error) {
	if err := fileExists(path); err != nil {
		return nil, err
	}
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	if err := c.checkSeq(seq, false); err != nil {
		return nil, err
	}
	if err := c.checkSequenceFile(path); err != nil {
		return nil, err
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	tokens := make([]TokenID, c.nCtx)
	var n C.size_t
	c.hist[seq].valid = false
	if C.llama_state_seq_load_file(c.c, cpath, C.llama_seq_id(seq), tokenPtr(tokens), C.size_t(len(tokens)), &n) == 0 {
		return nil, fmt.Errorf("%w: could not load sequence state from %s (see the log)", ErrStateMismatch, path)
	}
	tokens = tokens[:n]
	c.adoptHistory(seq, tokens)
	return tokens, nil
}

// checkSequenceFile checks the header of a sequence state file (as
// llama_state_seq_load_file reads it) and then, with the bundled
// llama.cpp, its state.
func (c *Context) checkSequenceFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var h [12]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return fmt.Errorf("%w: %s is not a sequence state file", ErrStateMismatch, path)
	}
	magic, version := binary.LittleEndian.Uint32(h[0:]), binary.LittleEndian.Uint32(h[4:])
	if magic != C.LLAMA_STATE_SEQ_MAGIC || version != C.LLAMA_STATE_SEQ_VERSION {
		return fmt.Errorf("%w: %s is not a sequence state file of this llama.cpp (magic %#x, version %d)", ErrStateMismatch, path, magic, version)
	}
	n := int64(binary.LittleEndian.Uint32(h[8:]))
	if n > int64(c.nCtx) || 12+4*n > fi.Size() {
		return fmt.Errorf("%w: %s holds %d tokens, the context has %d", ErrStateMismatch, path, n, c.nCtx)
	}
	if !stateFormatKnown {
		return nil
	}
	off := 12 + 4*n
	return checkSequenceState(io.NewSectionReader(f, off, fi.Size()-off), fi.Size()-off, c.m.info.memory, c.nCtx)
}

// adoptHistory records tokens as seq's cached prefix if the cache holds
// exactly positions 0..len(tokens)-1; the caller holds c.mu.
func (c *Context) adoptHistory(seq int, tokens []TokenID) {
	lo := int(C.llama_memory_seq_pos_min(c.mem, C.llama_seq_id(seq)))
	hi := int(C.llama_memory_seq_pos_max(c.mem, C.llama_seq_id(seq)))
	valid := true
	for _, t := range tokens {
		valid = valid && c.m.validToken(t)
	}
	if valid && ((len(tokens) == 0 && hi < 0) || (lo == 0 && hi == len(tokens)-1)) {
		c.hist[seq] = history{tokens: append(c.hist[seq].tokens[:0], tokens...), valid: true}
	}
}

func tokenPtr(t []TokenID) *C.llama_token {
	if len(t) == 0 {
		return nil
	}
	return (*C.llama_token)(unsafe.Pointer(&t[0]))
}

// SequenceTokens returns the tokens that Generate knows sequence seq's KV
// cache holds, at positions 0..len-1. ok is false when that is not known,
// for example after a Decode of the caller's own batch into the sequence.
func (c *Context) SequenceTokens(seq int) (tokens []TokenID, ok bool) {
	if c.lock() != nil {
		return nil, false
	}
	defer c.mu.Unlock()
	if c.checkSeq(seq, false) != nil || !c.hist[seq].valid {
		return nil, false
	}
	return append([]TokenID(nil), c.hist[seq].tokens...), true
}
