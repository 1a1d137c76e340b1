package chat

import (
	"strings"
)

// ThinkingTags are the markers around a reasoning model's thinking.
type ThinkingTags struct {
	Open, Close string
}

// DefaultThinkingTags are DeepSeek-R1's and Qwen3's.
var DefaultThinkingTags = ThinkingTags{"<think>", "</think>"}

// knownThinkingTags are reasoning markers of model families, found in
// their templates.
var knownThinkingTags = []ThinkingTags{
	DefaultThinkingTags,
	{"<seed:think>", "</seed:think>"},              // Seed-OSS
	{"[THINK]", "[/THINK]"},                        // Magistral
	{"◁think▷", "◁/think▷"},                        // Kimi
	{"<|START_THINKING|>", "<|END_THINKING|>"},     // Command A reasoning
	{"<|begin_of_thought|>", "<|end_of_thought|>"}, // OpenThinker-style
	{"<thinking>", "</thinking>"},                  // various fine-tunes
	{"<reasoning>", "</reasoning>"},                // various fine-tunes
}

// ThinkingTags returns the thinking markers the template uses: the first
// known pair whose opening marker appears in its source, or
// DefaultThinkingTags.
func (t *Template) ThinkingTags() ThinkingTags {
	for _, tags := range knownThinkingTags {
		if t.src != "" && strings.Contains(t.src, tags.Open) {
			return tags
		}
	}
	return DefaultThinkingTags
}

// thinkState is where a splitter is in a reply.
type thinkState int

const (
	thinkStart  thinkState = iota // nothing but whitespace yet: thinking may open
	thinkInside                   // between the tags
	thinkAnswer                   // after the thinking, or a reply without it
)

// splitter separates a streamed reply into thinking and answer. Thinking
// is recognised only at the start of a reply (after whitespace), as
// llama.cpp's reasoning parser does, so an answer may mention the tags;
// a reply whose prompt opened the thinking starts inside it. Text that
// may be the start of a tag is held back until it is decided, so tags
// split across tokens are found.
type splitter struct {
	tags  ThinkingTags
	state thinkState
	held  string
}

func newSplitter(tags ThinkingTags, inside bool) *splitter {
	s := &splitter{tags: tags}
	if inside {
		s.state = thinkInside
	}
	if tags.Open == "" || tags.Close == "" {
		s.state = thinkAnswer
	}
	return s
}

// feed adds text and calls emit with what can be released, in order.
func (s *splitter) feed(text string, emit func(text string, thinking bool)) {
	buf := s.held + text
	s.held = ""
	for buf != "" {
		switch s.state {
		case thinkAnswer:
			emit(buf, false)
			return
		case thinkStart:
			rest := trimLeftSpace(buf)
			switch {
			case strings.HasPrefix(rest, s.tags.Open):
				// Whitespace before the opening tag is dropped.
				buf = rest[len(s.tags.Open):]
				s.state = thinkInside
			case strings.HasPrefix(s.tags.Open, rest):
				s.held = buf // all whitespace, or a prefix of the tag
				return
			default:
				s.state = thinkAnswer
			}
		case thinkInside:
			if i := strings.Index(buf, s.tags.Close); i >= 0 {
				if i > 0 {
					emit(buf[:i], true)
				}
				buf = buf[i+len(s.tags.Close):]
				s.state = thinkAnswer
				continue
			}
			k := partialSuffix(buf, s.tags.Close)
			if n := len(buf) - k; n > 0 {
				emit(buf[:n], true)
			}
			s.held = buf[len(buf)-k:]
			return
		}
	}
}

// flush releases what is held back at the end of a reply.
func (s *splitter) flush(emit func(text string, thinking bool)) {
	if s.held == "" {
		return
	}
	held := s.held
	s.held = ""
	switch s.state {
	case thinkInside:
		emit(held, true)
	default:
		emit(held, false)
	}
}

// partialSuffix returns the length of the longest suffix of s that is a
// proper prefix of tag.
func partialSuffix(s, tag string) int {
	for k := min(len(tag)-1, len(s)); k > 0; k-- {
		if strings.HasSuffix(s, tag[:k]) {
			return k
		}
	}
	return 0
}

// SplitThinking separates a reply into its thinking and its answer, as a
// Session streams them: thinking is the text between tags.Open and
// tags.Close at the start of the reply (or from the start, with inside,
// when the prompt opened the thinking). The answer keeps its leading
// whitespace.
func SplitThinking(reply string, tags ThinkingTags, inside bool) (thinking, answer string) {
	var t, a strings.Builder
	s := newSplitter(tags, inside)
	emit := func(text string, th bool) {
		if th {
			t.WriteString(text)
		} else {
			a.WriteString(text)
		}
	}
	s.feed(reply, emit)
	s.flush(emit)
	return t.String(), a.String()
}
