package llama

import (
	"strings"
	"unicode/utf8"
)

// textStream turns the pieces of generated tokens into text that is safe
// to release: it never ends inside a UTF-8 character (a piece may hold part
// of one), never releases a stop string, and holds back a tail that could
// be the start of one until the next piece settles it. Generate runs every
// generation's text through one, and so do the packages built on it.
type textStream struct {
	stops   []string
	pending []byte // text received but not yet released
}

// push adds the next piece and returns the text that can be released.
// When a stop string matches, stop is its index in stops and out is the
// text before it (the rest is dropped); otherwise stop is -1. Of several
// matches the one that starts first in the text wins. With flush,
// everything pending is released.
func (s *textStream) push(piece string, flush bool) (out string, stop int) {
	if len(s.pending) == 0 && len(s.stops) == 0 && (flush || completeUTF8(piece) == len(piece)) {
		return piece, -1 // the common case: no copy
	}
	old := len(s.pending)
	s.pending = append(s.pending, piece...)
	// A match must end inside the new piece: earlier text was checked.
	cut := -1
	for i, st := range s.stops {
		from := max(0, old-len(st)+1)
		if j := strings.Index(string(s.pending[from:]), st); j >= 0 && (cut < 0 || from+j < cut) {
			cut, stop = from+j, i
		}
	}
	if cut >= 0 {
		out = string(s.pending[:cut])
		s.pending = s.pending[:0]
		return out, stop
	}
	n := len(s.pending)
	if !flush {
		n = min(completeUTF8(s.pending), n-s.stopPrefix())
	}
	out = string(s.pending[:n])
	s.pending = append(s.pending[:0], s.pending[n:]...)
	return out, -1
}

// flush releases everything held back, at the end of a generation.
func (s *textStream) flush() string {
	out := string(s.pending)
	s.pending = s.pending[:0]
	return out
}

// stopPrefix is the length of the longest tail of the pending text that is
// a proper prefix of a stop string.
func (s *textStream) stopPrefix() int {
	best := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.pending)); k > best; k-- {
			if string(s.pending[len(s.pending)-k:]) == st[:k] {
				best = k
				break
			}
		}
	}
	return best
}

// completeUTF8 returns the length of b without a trailing incomplete UTF-8
// sequence (bytes that are invalid anyway are kept).
func completeUTF8[T string | []byte](b T) int {
	n := len(b)
	for i := n - 1; i >= 0 && i >= n-utf8.UTFMax; i-- {
		c := b[i]
		if c < utf8.RuneSelf {
			return n
		}
		if !utf8.RuneStart(c) {
			continue // a continuation byte: look further back
		}
		var need int
		switch {
		case c&0xE0 == 0xC0:
			need = 2
		case c&0xF0 == 0xE0:
			need = 3
		case c&0xF8 == 0xF0:
			need = 4
		default:
			return n // not a valid leading byte: nothing to wait for
		}
		if n-i < need {
			return i
		}
		return n
	}
	return n
}
