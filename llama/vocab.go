package llama

/*
#include "llama.h"
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unicode/utf8"
	"unsafe"
)

// TokenID is a token's index in the model's vocabulary.
type TokenID int32

// NullToken is the id of a special token the model does not have.
const NullToken TokenID = -1

// VocabType is the kind of tokenizer a model uses.
type VocabType int

// Tokenizer kinds, as llama.cpp's enum llama_vocab_type.
const (
	VocabNone   VocabType = 0 // no vocabulary
	VocabSPM    VocabType = 1 // SentencePiece byte-level BPE with byte fallback (LLaMA)
	VocabBPE    VocabType = 2 // GPT-2 byte-level BPE
	VocabWPM    VocabType = 3 // WordPiece (BERT)
	VocabUGM    VocabType = 4 // Unigram (T5)
	VocabRWKV   VocabType = 5 // RWKV greedy
	VocabPLaMo2 VocabType = 6 // PLaMo-2
)

func (t VocabType) String() string {
	switch t {
	case VocabNone:
		return "none"
	case VocabSPM:
		return "SPM"
	case VocabBPE:
		return "BPE"
	case VocabWPM:
		return "WPM"
	case VocabUGM:
		return "UGM"
	case VocabRWKV:
		return "RWKV"
	case VocabPLaMo2:
		return "PLaMo2"
	}
	return fmt.Sprintf("VocabType(%d)", int(t))
}

// SpecialTokens controls whether Tokenize adds the model's BOS/EOS tokens
// and whether it parses special-token text such as "<|im_start|>".
type SpecialTokens int

// Flags for Tokenize; combine with |.
const (
	// AddSpecial adds BOS (and EOS) where the model's metadata asks for it.
	AddSpecial SpecialTokens = 1 << iota
	// ParseSpecial turns the text of control tokens into those tokens
	// rather than tokenizing it as plain text.
	ParseSpecial
)

// VocabSize is the number of tokens in the vocabulary.
func (m *Model) VocabSize() int { return int(m.info.nVocab) }

// VocabType is the kind of tokenizer the model uses.
func (m *Model) VocabType() VocabType { return m.info.vocabType }

func (m *Model) validToken(t TokenID) bool { return t >= 0 && int32(t) < m.info.nVocab }

func (m *Model) checkToken(t TokenID) error {
	if !m.validToken(t) {
		return fmt.Errorf("%w: id %d outside the vocabulary of %d tokens", ErrInvalidToken, t, m.info.nVocab)
	}
	return nil
}

// special calls one of llama.cpp's special-token getters.
func (m *Model) special(f func(*C.struct_llama_vocab) C.llama_token) TokenID {
	if m.rlock() != nil {
		return NullToken
	}
	defer m.mu.RUnlock()
	return TokenID(f(m.vocab))
}

// BOS is the beginning-of-sequence token, or NullToken.
func (m *Model) BOS() TokenID {
	return m.special(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_bos(v) })
}

// EOS is the end-of-sequence token, or NullToken.
func (m *Model) EOS() TokenID {
	return m.special(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_eos(v) })
}

// EOT is the end-of-turn token, or NullToken.
func (m *Model) EOT() TokenID {
	return m.special(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_eot(v) })
}

// SEP is the sentence separator token, or NullToken.
func (m *Model) SEP() TokenID {
	return m.special(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_sep(v) })
}

// NL is the newline token, or NullToken.
func (m *Model) NL() TokenID {
	return m.special(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_nl(v) })
}

// PAD is the padding token, or NullToken.
func (m *Model) PAD() TokenID {
	return m.special(func(v *C.struct_llama_vocab) C.llama_token { return C.llama_vocab_pad(v) })
}

// FIMTokens are the fill-in-the-middle tokens of a code model; absent ones
// are NullToken.
type FIMTokens struct {
	Prefix, Suffix, Middle, Pad, Repo, Sep TokenID
}

// FIM returns the model's fill-in-the-middle tokens.
func (m *Model) FIM() FIMTokens {
	if m.rlock() != nil {
		return FIMTokens{NullToken, NullToken, NullToken, NullToken, NullToken, NullToken}
	}
	defer m.mu.RUnlock()
	v := m.vocab
	return FIMTokens{
		Prefix: TokenID(C.llama_vocab_fim_pre(v)),
		Suffix: TokenID(C.llama_vocab_fim_suf(v)),
		Middle: TokenID(C.llama_vocab_fim_mid(v)),
		Pad:    TokenID(C.llama_vocab_fim_pad(v)),
		Repo:   TokenID(C.llama_vocab_fim_rep(v)),
		Sep:    TokenID(C.llama_vocab_fim_sep(v)),
	}
}

// AddsBOS reports whether the model's tokenizer adds BOS with AddSpecial.
func (m *Model) AddsBOS() bool {
	if m.rlock() != nil {
		return false
	}
	defer m.mu.RUnlock()
	return bool(C.llama_vocab_get_add_bos(m.vocab))
}

// AddsEOS reports whether the model's tokenizer adds EOS with AddSpecial.
func (m *Model) AddsEOS() bool {
	if m.rlock() != nil {
		return false
	}
	defer m.mu.RUnlock()
	return bool(C.llama_vocab_get_add_eos(m.vocab))
}

// IsEOG reports whether t ends generation (EOS, EOT and the like).
func (m *Model) IsEOG(t TokenID) bool {
	if !m.validToken(t) || m.rlock() != nil {
		return false
	}
	defer m.mu.RUnlock()
	return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(t)))
}

// IsControl reports whether t is a control token.
func (m *Model) IsControl(t TokenID) bool {
	if !m.validToken(t) || m.rlock() != nil {
		return false
	}
	defer m.mu.RUnlock()
	return bool(C.llama_vocab_is_control(m.vocab, C.llama_token(t)))
}

// TokenText is the token's text as stored in the vocabulary (for SPM models
// with "▁" for spaces); see TokenToPiece for the text it renders to.
func (m *Model) TokenText(t TokenID) (string, error) {
	if err := m.checkToken(t); err != nil {
		return "", err
	}
	if err := m.rlock(); err != nil {
		return "", err
	}
	defer m.mu.RUnlock()
	return C.GoString(C.llama_vocab_get_text(m.vocab, C.llama_token(t))), nil
}

// cbytes returns a pointer to s's bytes for a C call that takes a length;
// never nil, so an empty string is fine too.
func cbytes(s string) *C.char {
	if len(s) == 0 {
		return (*C.char)(unsafe.Pointer(&zeroByte))
	}
	return (*C.char)(unsafe.Pointer(unsafe.StringData(s)))
}

var zeroByte byte

// Tokenize converts text to tokens. With AddSpecial, BOS/EOS are added as
// the model asks; with ParseSpecial, control-token text becomes control
// tokens. Tokenize is safe for concurrent use.
func (m *Model) Tokenize(text string, flags SpecialTokens) ([]TokenID, error) {
	if err := m.rlock(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	return m.tokenize(nil, text, flags)
}

// tokenize appends text's tokens to dst; the caller holds the model.
func (m *Model) tokenize(dst []TokenID, text string, flags SpecialTokens) ([]TokenID, error) {
	if len(text) > 1<<30 {
		return dst, invalidArg("text of %d bytes is too long to tokenize", len(text))
	}
	if m.info.vocabType == VocabNone {
		// llama.cpp asserts on a tokenizer it does not have.
		return dst, invalidArg("model %s has no vocabulary", m.path)
	}
	if flags&AddSpecial != 0 && m.info.specialProblem != "" {
		return dst, fmt.Errorf("%w: %s: %s", ErrInvalidModel, m.path, m.info.specialProblem)
	}
	// A token covers at least one byte; BOS and EOS may be added.
	n := len(text) + 2
	start := len(dst)
	dst = append(dst, make([]TokenID, n)...)
	for {
		buf := dst[start:]
		var errbuf [128]C.char
		got := int(C.llamago_tokenize(m.vocab, cbytes(text), C.int32_t(len(text)),
			(*C.llama_token)(unsafe.Pointer(unsafe.SliceData(buf))), C.int32_t(len(buf)),
			C.bool(flags&AddSpecial != 0), C.bool(flags&ParseSpecial != 0), &errbuf[0], C.size_t(len(errbuf))))
		switch {
		case errbuf[0] != 0 && !utf8.ValidString(text):
			// Pre-tokenizers throw on bytes that decode above U+10FFFF.
			return dst[:start], invalidArg("llama.cpp could not tokenize text that is not valid UTF-8: %s", C.GoString(&errbuf[0]))
		case errbuf[0] != 0:
			return dst[:start], fmt.Errorf("%w: %s: llama.cpp could not tokenize the text: %s", ErrInvalidModel, m.path, C.GoString(&errbuf[0]))
		case got >= 0:
			return dst[:start+got], nil
		case got == -(1 << 31): // INT32_MIN: overflow
			return dst[:start], invalidArg("text gives too many tokens")
		}
		dst = append(dst[:start], make([]TokenID, -got)...)
	}
}

// TokenToPiece renders one token to text. With special, control tokens
// render as their text; otherwise as "". Pieces of multi-byte characters
// may not be valid UTF-8 on their own.
func (m *Model) TokenToPiece(t TokenID, special bool) (string, error) {
	if err := m.checkToken(t); err != nil {
		return "", err
	}
	if err := m.rlock(); err != nil {
		return "", err
	}
	if !special {
		m.mu.RUnlock() // the cache takes the lock itself
		return m.piece(t), nil
	}
	defer m.mu.RUnlock()
	return string(m.appendPiece(nil, t, special)), nil
}

// appendPiece appends the text of t; the caller holds the model.
func (m *Model) appendPiece(dst []byte, t TokenID, special bool) []byte {
	var small [64]byte
	buf := small[:]
	for {
		n := int(C.llama_token_to_piece(m.vocab, C.llama_token(t),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)), 0, C.bool(special)))
		if n >= 0 {
			return append(dst, buf[:n]...)
		}
		buf = make([]byte, -n)
	}
}

// Detokenize renders tokens back to text. removeSpecial drops a leading BOS
// and trailing EOS where the model adds them; unparseSpecial renders control
// tokens as their text instead of dropping them.
func (m *Model) Detokenize(tokens []TokenID, removeSpecial, unparseSpecial bool) (string, error) {
	for _, t := range tokens {
		if err := m.checkToken(t); err != nil {
			return "", err
		}
	}
	if len(tokens) > 1<<30 {
		return "", invalidArg("%d tokens", len(tokens))
	}
	if err := m.rlock(); err != nil {
		return "", err
	}
	defer m.mu.RUnlock()
	var tp *C.llama_token
	if len(tokens) > 0 {
		tp = (*C.llama_token)(unsafe.Pointer(unsafe.SliceData(tokens)))
	}
	buf := make([]byte, max(16, len(tokens)*8))
	for {
		n := int(C.llama_detokenize(m.vocab, tp, C.int32_t(len(tokens)),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(len(buf)),
			C.bool(removeSpecial), C.bool(unparseSpecial)))
		if n >= 0 {
			return string(buf[:n]), nil
		}
		if n == -(1 << 31) {
			return "", invalidArg("detokenized text is too long")
		}
		buf = make([]byte, -n)
	}
}

// piece returns the cached rendering of t (control tokens as ""), the form
// Generate streams. The caller need not hold the model.
func (m *Model) piece(t TokenID) string {
	m.tokenCache()
	return m.pieces[t]
}

// isEOG is IsEOG from the cache, for a valid t.
func (m *Model) isEOG(t TokenID) bool {
	m.tokenCache()
	return m.eog[t]
}

// eogTokens returns the end-of-generation tokens (shared: not to be
// modified).
func (m *Model) eogTokens() []TokenID {
	m.tokenCache()
	return m.eogs
}

// tokenCache fills, once, what generation asks of every token: its text
// and whether it ends generation.
func (m *Model) tokenCache() {
	m.piecesOnce.Do(func() {
		m.pieces = make([]string, m.info.nVocab)
		m.eog = make([]bool, m.info.nVocab)
		// Generate calls this without holding the model, which Close may
		// free meanwhile; a closed model's generation fails anyway.
		if m.rlock() != nil {
			return
		}
		defer m.mu.RUnlock()
		var buf []byte
		for i := range m.pieces {
			buf = m.appendPiece(buf[:0], TokenID(i), false)
			m.pieces[i] = string(buf)
			if C.llama_vocab_is_eog(m.vocab, C.llama_token(i)) {
				m.eog[i] = true
				m.eogs = append(m.eogs, TokenID(i))
			}
		}
	})
}

// specialProblem reports a vocabulary told to add a special token it does
// not have: tokenizer.ggml.add_bos_token set in a Unigram (T5) vocabulary,
// whose BOS token is none unless the file names one. llama.cpp asserts on
// that when it tokenizes with add_special. (Its other tokenizers have
// default BOS and EOS ids, and WordPiece's CLS and SEP, that a file can
// only replace with valid ones.)
func specialProblem(v *C.struct_llama_vocab, t VocabType) string {
	null := C.llama_token(NullToken)
	switch t {
	case VocabSPM, VocabBPE, VocabUGM:
		if C.llama_vocab_get_add_bos(v) && C.llama_vocab_bos(v) == null {
			return "the vocabulary asks for a BOS token to be added (tokenizer.ggml.add_bos_token) but has none"
		}
		if C.llama_vocab_get_add_eos(v) && C.llama_vocab_eos(v) == null {
			return "the vocabulary asks for an EOS token to be added (tokenizer.ggml.add_eos_token) but has none"
		}
	}
	return ""
}
