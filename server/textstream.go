package server

import (
	"strings"
	"unicode/utf8"
)

// textStream turns the pieces of generated tokens into text that is safe
// to send: it never ends inside a UTF-8 character (a piece may hold part of
// one), never sends a stop string, and holds back a tail that could be the
// start of one until the next piece settles it.
type textStream struct {
	stops   []string
	pending []byte // text received but not yet released
}

// push adds the next piece and returns the text that can be released. With
// stopped, a stop string matched: out is the text before it, and the rest
// is dropped.
func (s *textStream) push(piece string) (out string, stopped bool) {
	if len(s.pending) == 0 && len(s.stops) == 0 && completeUTF8(piece) == len(piece) {
		return piece, false
	}
	old := len(s.pending)
	s.pending = append(s.pending, piece...)
	// A match must end inside the new piece: earlier text was checked.
	cut := -1
	for _, stop := range s.stops {
		from := max(0, old-len(stop)+1)
		if i := strings.Index(string(s.pending[from:]), stop); i >= 0 && (cut < 0 || from+i < cut) {
			cut = from + i
		}
	}
	if cut >= 0 {
		out = string(s.pending[:cut])
		s.pending = s.pending[:0]
		return out, true
	}
	n := min(completeUTF8(s.pending), len(s.pending)-s.stopPrefix())
	out = string(s.pending[:n])
	s.pending = append(s.pending[:0], s.pending[n:]...)
	return out, false
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
	for _, stop := range s.stops {
		for k := min(len(stop)-1, len(s.pending)); k > best; k-- {
			if string(s.pending[len(s.pending)-k:]) == stop[:k] {
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
