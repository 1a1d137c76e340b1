package chat

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/llamago/llamago/llama"
)

// ErrModelMismatch is returned by Session.Load for a session saved with
// another model. It also matches llama.ErrStateMismatch.
var ErrModelMismatch = errors.New("chat: saved session belongs to another model")

// ErrBadSessionFile is returned by Session.Load for a file that is not a
// saved session, or is corrupt.
var ErrBadSessionFile = errors.New("chat: not a valid session file")

// A session file is
//
//	magic "LLGOCHAT" | version u32 | header length u64 | header (JSON) | KV state
//
// where the KV state is llama.cpp's sequence state file (with the tokens
// the cache holds), and the header records the model's fingerprint, the
// conversation, the token stream and a digest of the KV state.
const (
	sessionMagic   = "LLGOCHAT"
	sessionVersion = 1
	maxHeaderSize  = 1 << 30
)

type sessionHeader struct {
	Fingerprint string          `json:"model_fingerprint"`
	Model       string          `json:"model"`
	Template    string          `json:"template"`
	System      string          `json:"system"`
	History     []Message       `json:"history"`
	Text        string          `json:"text"`
	Tokens      []llama.TokenID `json:"tokens"`
	Ends        []int           `json:"ends"`
	KV          []llama.TokenID `json:"kv_tokens"`
	KVSize      int64           `json:"kv_size"`
	KVDigest    string          `json:"kv_sha256"`
}

// Save writes the conversation and the KV cache of its sequence to a file,
// which Load restores into a session on the same model (in this process
// or another), so that the next turn continues without evaluating the
// conversation again. The file records the model's fingerprint.
func (s *Session) Save(path string) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if len(messageImages(s.history)) > 0 {
		return fmt.Errorf("chat: save session: the conversation holds images, which a session file does not keep")
	}
	h := sessionHeader{
		Fingerprint: s.m.Fingerprint(),
		Model:       s.m.Description(),
		Template:    s.tmpl.Name(),
		System:      s.system,
		History:     s.history,
		Text:        s.text,
		Tokens:      s.tokens,
		Ends:        s.ends,
	}
	var kv []byte
	// Save the cache only when the sequence knows what it holds, at
	// positions 0..len(kv)-1; otherwise Load evaluates again.
	cached, ok := s.seq.Tokens()
	if lo, hi, err := s.c.PositionRange(s.seq.ID()); err == nil && ok && len(cached) > 0 && lo == 0 && hi == len(cached)-1 {
		tmp, err := os.CreateTemp(filepath.Dir(path), ".llamago-kv-*")
		if err != nil {
			return fmt.Errorf("chat: save session: %w", err)
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if err := s.c.SaveSequenceStateFile(tmp.Name(), s.seq.ID(), cached); err != nil {
			return fmt.Errorf("chat: save session: %w", err)
		}
		if kv, err = os.ReadFile(tmp.Name()); err != nil {
			return fmt.Errorf("chat: save session: %w", err)
		}
		sum := sha256.Sum256(kv)
		h.KV, h.KVSize, h.KVDigest = cached, int64(len(kv)), hex.EncodeToString(sum[:])
	}
	header, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("chat: save session: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(sessionMagic)
	binary.Write(&buf, binary.LittleEndian, uint32(sessionVersion))
	binary.Write(&buf, binary.LittleEndian, uint64(len(header)))
	buf.Write(header)
	buf.Write(kv)
	return writeFileAtomic(path, buf.Bytes())
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".llamago-session-*")
	if err != nil {
		return fmt.Errorf("chat: save session: %w", err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("chat: save session: %w", err)
	}
	return nil
}

// Load restores a session written by Save, replacing this session's
// system prompt, history and the KV cache of its sequence. A file saved
// with another model is refused with ErrModelMismatch before anything
// changes.
func (s *Session) Load(path string) error {
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("chat: load session: %w", err)
	}
	defer f.Close()
	h, kv, err := readSession(f)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadSessionFile, path, err)
	}
	if fp := s.m.Fingerprint(); h.Fingerprint != fp {
		return fmt.Errorf("%w (%w): %s was saved with model %q (fingerprint %.12s), this session runs %q (fingerprint %.12s)",
			ErrModelMismatch, llama.ErrStateMismatch, path, h.Model, h.Fingerprint, s.m.Description(), fp)
	}
	if err := h.check(s.m.VocabSize()); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadSessionFile, path, err)
	}
	var cached []llama.TokenID
	if len(kv) > 0 {
		tmp, err := os.CreateTemp(filepath.Dir(path), ".llamago-kv-*")
		if err != nil {
			return fmt.Errorf("chat: load session: %w", err)
		}
		defer os.Remove(tmp.Name())
		_, err = tmp.Write(kv)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("chat: load session: %w", err)
		}
		cached, err = s.c.LoadSequenceStateFile(tmp.Name(), s.seq.ID())
		if err != nil {
			return fmt.Errorf("chat: load session %s: %w", path, err)
		}
		if !slices.Equal(cached, h.KV) {
			return fmt.Errorf("%w: %s: the KV state does not hold the recorded tokens", ErrBadSessionFile, path)
		}
	} else {
		// Nothing to restore: the next turn evaluates the conversation.
		if err := s.seq.Clear(); err != nil {
			return fmt.Errorf("chat: load session: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.system, s.history = h.System, h.History
	s.text, s.tokens, s.ends = h.Text, h.Tokens, h.Ends
	s.stats = TurnStats{}
	return nil
}

func readSession(r io.Reader) (sessionHeader, []byte, error) {
	var h sessionHeader
	var fixed [8 + 4 + 8]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil || string(fixed[:8]) != sessionMagic {
		return h, nil, errors.New("no session header")
	}
	if v := binary.LittleEndian.Uint32(fixed[8:]); v != sessionVersion {
		return h, nil, fmt.Errorf("session format version %d, want %d", v, sessionVersion)
	}
	n := binary.LittleEndian.Uint64(fixed[12:])
	if n > maxHeaderSize {
		return h, nil, fmt.Errorf("header of %d bytes", n)
	}
	header := make([]byte, n)
	if _, err := io.ReadFull(r, header); err != nil {
		return h, nil, fmt.Errorf("truncated header: %w", err)
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return h, nil, fmt.Errorf("header: %w", err)
	}
	if h.KVSize < 0 || h.KVSize > 1<<40 {
		return h, nil, fmt.Errorf("KV state of %d bytes", h.KVSize)
	}
	kv, err := io.ReadAll(io.LimitReader(r, h.KVSize+1))
	if err != nil {
		return h, nil, err
	}
	if int64(len(kv)) != h.KVSize {
		return h, nil, fmt.Errorf("KV state of %d bytes, header says %d", len(kv), h.KVSize)
	}
	if len(kv) > 0 {
		sum := sha256.Sum256(kv)
		if hex.EncodeToString(sum[:]) != h.KVDigest {
			return h, nil, errors.New("KV state checksum mismatch")
		}
	}
	return h, kv, nil
}

// check validates the token stream of a header.
func (h *sessionHeader) check(vocab int) error {
	if len(h.Tokens) != len(h.Ends) {
		return errors.New("token stream and offsets differ in length")
	}
	last := 0
	for i, t := range h.Tokens {
		if t < 0 || int(t) >= vocab {
			return fmt.Errorf("token %d outside the vocabulary", t)
		}
		if e := h.Ends[i]; e >= 0 {
			if e < last || e > len(h.Text) {
				return fmt.Errorf("token offset %d out of order", e)
			}
			last = e
		}
	}
	for _, t := range h.KV {
		if t < 0 || int(t) >= vocab {
			return fmt.Errorf("token %d outside the vocabulary", t)
		}
	}
	return nil
}
