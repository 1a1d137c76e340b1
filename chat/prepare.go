package chat

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on the templates ParseTemplate accepts. Real chat templates are
// at most a few tens of kilobytes and nest a handful of blocks deep.
const (
	maxTemplateSize = 256 << 10 // bytes of Jinja source
	maxNesting      = 200       // nested blocks, or brackets in one tag
)

// Names the prepared source uses for the helpers render installs.
const (
	hookToJSON = "__llamago_tojson"
	hookEnter  = "__llamago_enter"
	hookLeave  = "__llamago_leave"
)

// prepare rewrites Jinja source into an equivalent template for the
// engine, applying Jinja2's lexer rules the way transformers configures
// them (trim_blocks, lstrip_blocks, keep_trailing_newline off, "-" and "+"
// whitespace control) so that the engine has no whitespace left to decide:
//
//   - every piece of template text becomes a string-literal expression
//     {{ '...' }}, already trimmed, with its newlines kept so that line
//     numbers in the engine's errors still match the source;
//   - tags lose their "-"/"+" markers; whitespace they removed is kept as
//     newlines inside an empty comment, again for line numbers;
//   - comments are dropped, raw blocks become string literals;
//   - "| tojson" calls the Python-compatible filter render installs, and
//     every macro body is bracketed by calls that bound recursion depth.
//
// It also refuses templates that are too large or nest too deeply, which
// the engine would parse in quadratic time.
func prepare(src string) (string, error) {
	if len(src) > maxTemplateSize {
		return "", fmt.Errorf("%w: template of %d bytes, at most %d", ErrTemplateLimit, len(src), maxTemplateSize)
	}
	if !utf8.ValidString(src) {
		return "", fmt.Errorf("%w: template is not valid UTF-8", ErrTemplateSyntax)
	}
	src = normalizeNewlines(src)
	l := &lexer{src: src, lineStart: true}
	if err := l.run(); err != nil {
		return "", err
	}
	return l.out.String(), nil
}

// normalizeNewlines turns \r\n and \r into \n and drops one trailing
// newline, as Jinja2 does with keep_trailing_newline=False.
func normalizeNewlines(s string) string {
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r\n", "\n")
		s = strings.ReplaceAll(s, "\r", "\n")
	}
	return strings.TrimSuffix(s, "\n")
}

// isSpace is Python's str.isspace, which Jinja2's \s and rstrip use.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

func trimRightSpace(s string) string { return strings.TrimRightFunc(s, isSpace) }
func trimLeftSpace(s string) string  { return strings.TrimLeftFunc(s, isSpace) }

type lexer struct {
	src       string
	pos       int
	out       strings.Builder
	lineStart bool   // the last tag's end ended with a newline (Jinja2's line_starting)
	pending   int    // newlines removed since the last emitted piece
	blocks    []bool // open blocks; true for a macro
}

func (l *lexer) errorf(format string, args ...any) error {
	line := 1 + strings.Count(l.src[:min(l.pos, len(l.src))], "\n")
	return fmt.Errorf("%w: line %d: %s", ErrTemplateSyntax, line, fmt.Sprintf(format, args...))
}

// emitText writes template text as a string literal.
func (l *lexer) emitText(text string) {
	if text == "" {
		return
	}
	l.flushNewlines()
	l.out.WriteString("{{ '")
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '\\', '\'':
			l.out.WriteByte('\\')
			l.out.WriteByte(c)
		default:
			l.out.WriteByte(c)
		}
	}
	l.out.WriteString("' }}")
}

// dropped records whitespace removed from the output, for line numbers.
func (l *lexer) dropped(s string) { l.pending += strings.Count(s, "\n") }

func (l *lexer) flushNewlines() {
	if l.pending > 0 {
		l.out.WriteString("{#")
		l.out.WriteString(strings.Repeat("\n", l.pending))
		l.out.WriteString("#}")
		l.pending = 0
	}
}

// lstrip applies the whitespace control of a tag to the text before it:
// sign is '-', '+' or 0; block is false for {{ }} tags.
func (l *lexer) lstrip(text string, sign byte, block bool) string {
	switch {
	case sign == '-':
		t := trimRightSpace(text)
		l.dropped(text[len(t):])
		return t
	case sign != '+' && block:
		lpos := strings.LastIndexByte(text, '\n') + 1
		if lpos > 0 || l.lineStart {
			rest := text[lpos:]
			if rest != "" && strings.TrimFunc(rest, isSpace) == "" {
				return text[:lpos]
			}
		}
	}
	return text
}

// run lexes the template at the root level.
func (l *lexer) run() error {
	for l.pos < len(l.src) {
		i := indexTagStart(l.src, l.pos)
		if i < 0 {
			l.emitText(l.src[l.pos:])
			l.pos = len(l.src)
			break
		}
		text := l.src[l.pos:i]
		kind := l.src[i+1] // '{', '%' or '#'
		j := i + 2
		var sign byte
		if j < len(l.src) && (l.src[j] == '-' || l.src[j] == '+') {
			sign = l.src[j]
			j++
		}
		if kind == '%' {
			if end, ok := rawBegin(l.src, j); ok {
				l.emitText(l.lstrip(text, sign, true))
				if err := l.raw(end); err != nil {
					return err
				}
				continue
			}
		}
		l.emitText(l.lstrip(text, sign, kind != '{'))
		l.pos = j
		var err error
		switch kind {
		case '#':
			err = l.comment()
		case '%':
			err = l.tag(true)
		default:
			err = l.tag(false)
		}
		if err != nil {
			return err
		}
	}
	l.flushNewlines()
	return nil
}

// indexTagStart finds the next "{{", "{%" or "{#" at or after pos.
func indexTagStart(s string, pos int) int {
	for {
		i := strings.IndexByte(s[pos:], '{')
		if i < 0 || pos+i+1 >= len(s) {
			return -1
		}
		pos += i
		if c := s[pos+1]; c == '{' || c == '%' || c == '#' {
			return pos
		}
		pos++
	}
}

// rawBegin matches `\s*raw\s*(-%}\s*|%})` at i and returns its end.
func rawBegin(s string, i int) (int, bool) {
	i = skipSpace(s, i)
	if !strings.HasPrefix(s[i:], "raw") {
		return 0, false
	}
	i = skipSpace(s, i+3)
	switch {
	case strings.HasPrefix(s[i:], "-%}"):
		return skipSpace(s, i+3), true
	case strings.HasPrefix(s[i:], "%}"):
		return i + 2, true
	}
	return 0, false
}

func skipSpace(s string, i int) int {
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isSpace(r) {
			break
		}
		i += n
	}
	return i
}

// raw handles the body of a raw block starting at pos, after its opening
// tag ended at pos.
func (l *lexer) raw(pos int) error {
	l.lineStart = strings.HasSuffix(l.src[:pos], "\n")
	l.pos = pos
	for k := pos; ; {
		i := strings.Index(l.src[k:], "{%")
		if i < 0 {
			return l.errorf("missing end of raw directive")
		}
		i += k
		j := i + 2
		var sign byte
		if j < len(l.src) && (l.src[j] == '-' || l.src[j] == '+') {
			sign = l.src[j]
			j++
		}
		j = skipSpace(l.src, j)
		if !strings.HasPrefix(l.src[j:], "endraw") {
			k = i + 2
			continue
		}
		j = skipSpace(l.src, j+6)
		end, ok := l.tagEnd(j, '%')
		if !ok {
			k = i + 2
			continue
		}
		l.emitText(l.lstrip(l.src[pos:i], sign, true))
		l.pos = end
		return nil
	}
}

// tagEnd matches the end of a block or comment tag at i: "+%}", "-%}"
// with the whitespace after it, or "%}" with one newline after it
// (trim_blocks). It records dropped whitespace and the line state.
func (l *lexer) tagEnd(i int, kind byte) (int, bool) {
	s := l.src
	closer := string(kind) + "}"
	switch {
	case strings.HasPrefix(s[i:], "+"+closer):
		l.lineStart = false
		return i + 3, true
	case strings.HasPrefix(s[i:], "-"+closer):
		j := skipSpace(s, i+3)
		l.dropped(s[i+3 : j])
		l.lineStart = strings.HasSuffix(s[:j], "\n")
		return j, true
	case strings.HasPrefix(s[i:], closer):
		j := i + 2
		if j < len(s) && s[j] == '\n' {
			j++
			l.dropped("\n")
		}
		l.lineStart = strings.HasSuffix(s[:j], "\n")
		return j, true
	}
	return 0, false
}

// comment skips a comment whose body starts at l.pos.
func (l *lexer) comment() error {
	body := l.pos
	for k := l.pos; ; {
		i := strings.Index(l.src[k:], "#}")
		if i < 0 {
			l.pos = body
			return l.errorf("missing end of comment tag")
		}
		i += k
		start := i
		if i > body && (l.src[i-1] == '-' || l.src[i-1] == '+') {
			start = i - 1
		}
		end, _ := l.tagEnd(start, '#')
		l.dropped(l.src[body:start])
		l.pos = end
		return nil
	}
}

// tag copies a {% %} (block) or {{ }} tag whose content starts at l.pos,
// tracking bracket balance as Jinja2 does: an end marker inside brackets
// is not the end of the tag.
func (l *lexer) tag(block bool) error {
	s := l.src
	start := l.pos
	var stack []byte
	var content strings.Builder
	var last byte // the last byte written to content
	i := start
	for {
		if i >= len(s) {
			l.pos = start
			if block {
				return l.errorf("unclosed block tag")
			}
			return l.errorf("unclosed expression tag")
		}
		if len(stack) == 0 {
			if block {
				if end, ok := l.tagEnd(i, '%'); ok {
					return l.finishBlock(content.String(), end)
				}
			} else if strings.HasPrefix(s[i:], "-}}") {
				j := skipSpace(s, i+3)
				l.dropped(s[i+3 : j])
				l.lineStart = strings.HasSuffix(s[:j], "\n")
				l.finishExpr(content.String(), j)
				return nil
			} else if strings.HasPrefix(s[i:], "}}") {
				l.lineStart = false
				l.finishExpr(content.String(), i+2)
				return nil
			}
		}
		c := s[i]
		switch c {
		case '\'', '"':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				l.pos = i
				return l.errorf("unterminated string")
			}
			content.WriteString(s[i : j+1])
			last = c
			i = j + 1
			continue
		case '(', '[', '{':
			if len(stack) >= maxNesting {
				l.pos = i
				return fmt.Errorf("%w: brackets nested more than %d deep", ErrTemplateLimit, maxNesting)
			}
			stack = append(stack, map[byte]byte{'(': ')', '[': ']', '{': '}'}[c])
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != c {
				l.pos = i
				return l.errorf("unexpected %q", c)
			}
			stack = stack[:len(stack)-1]
			// The engine ends a tag at the first "}}" outside quotes:
			// keep closing braces apart.
			if c == '}' && last == '}' {
				content.WriteByte(' ')
			}
		case '|':
			// A filter: route tojson to the Python-compatible one.
			content.WriteByte('|')
			last = '|'
			j := skipSpace(s, i+1)
			if name := identAt(s, j); name == "tojson" {
				content.WriteString(s[i+1 : j])
				content.WriteString(hookToJSON)
				last = 'n'
				i = j + len(name)
				continue
			}
			i++
			continue
		}
		content.WriteByte(c)
		last = c
		i++
	}
}

// identAt returns the identifier at i, if any.
func identAt(s string, i int) string {
	j := i
	for j < len(s) {
		c := s[j]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || (j > i && c >= '0' && c <= '9') {
			j++
			continue
		}
		break
	}
	return s[i:j]
}

func (l *lexer) finishExpr(content string, end int) {
	l.flushNewlines()
	l.out.WriteString("{{ ")
	l.out.WriteString(content)
	l.out.WriteString(" }}")
	l.pos = end
}

// blockKeywords open a block that an end tag closes.
var blockKeywords = map[string]bool{
	"if": true, "for": true, "macro": true, "call": true, "filter": true,
	"block": true, "with": true, "generation": true, "autoescape": true,
}

func (l *lexer) finishBlock(content string, end int) error {
	kw := identAt(content, skipSpace(content, 0))
	closeMacro := false
	switch {
	case blockKeywords[kw] || (kw == "set" && !strings.Contains(content, "=")):
		if len(l.blocks) >= maxNesting {
			return fmt.Errorf("%w: blocks nested more than %d deep", ErrTemplateLimit, maxNesting)
		}
		l.blocks = append(l.blocks, kw == "macro")
	case strings.HasPrefix(kw, "end"):
		if n := len(l.blocks); n > 0 {
			closeMacro = l.blocks[n-1] && kw == "endmacro"
			l.blocks = l.blocks[:n-1]
		}
	}
	if closeMacro {
		l.flushNewlines()
		l.out.WriteString("{{ " + hookLeave + "() }}")
	}
	l.flushNewlines()
	l.out.WriteString("{% ")
	l.out.WriteString(content)
	l.out.WriteString(" %}")
	if kw == "macro" {
		l.out.WriteString("{{ " + hookEnter + "() }}")
	}
	l.pos = end
	return nil
}
