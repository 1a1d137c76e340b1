package chat

import (
	"math/rand/v2"
	"strings"
	"testing"
)

type piece struct {
	text     string
	thinking bool
}

// split feeds chunks to a splitter and returns the merged pieces.
func split(tags ThinkingTags, inside bool, chunks ...string) []piece {
	var out []piece
	emit := func(text string, th bool) {
		if text == "" {
			panic("empty emit")
		}
		if n := len(out); n > 0 && out[n-1].thinking == th {
			out[n-1].text += text
			return
		}
		out = append(out, piece{text, th})
	}
	s := newSplitter(tags, inside)
	for _, c := range chunks {
		s.feed(c, emit)
	}
	s.flush(emit)
	return out
}

func TestSplitter(t *testing.T) {
	d := DefaultThinkingTags
	cases := []struct {
		name   string
		tags   ThinkingTags
		inside bool
		chunks []string
		want   []piece
	}{
		{"no thinking", d, false, []string{"Hello", " world"}, []piece{{"Hello world", false}}},
		{"thinking", d, false, []string{"<think>", "hmm", "</think>", "\n\nAnswer"}, []piece{{"hmm", true}, {"\n\nAnswer", false}}},
		{"tags split across tokens", d, false, []string{"<th", "in", "k>a", "b</", "thi", "nk", ">c"}, []piece{{"ab", true}, {"c", false}}},
		{"one byte at a time", d, false, strings.Split("<think>x<y</think>z", ""), []piece{{"x<y", true}, {"z", false}}},
		{"leading whitespace", d, false, []string{"\n ", "<think>t</think>a"}, []piece{{"t", true}, {"a", false}}},
		{"opened by the prompt", d, true, []string{"reasoning", "</think>\n\nanswer"}, []piece{{"reasoning", true}, {"\n\nanswer", false}}},
		{"never closed", d, false, []string{"<think>still thinking</thi"}, []piece{{"still thinking</thi", true}}},
		{"tag mentioned in the answer", d, false, []string{"Use <think> tags"}, []piece{{"Use <think> tags", false}}},
		{"second think block is answer", d, false, []string{"<think>a</think>b<think>c</think>"}, []piece{{"a", true}, {"b<think>c</think>", false}}},
		{"prefix that is not a tag", d, false, []string{"<thi", "s is not"}, []piece{{"<this is not", false}}},
		{"only whitespace", d, false, []string{" ", "\n"}, []piece{{" \n", false}}},
		{"close tag prefix inside", d, true, []string{"a</", "b</think>c"}, []piece{{"a</b", true}, {"c", false}}},
		{"empty thinking", d, false, []string{"<think></think>x"}, []piece{{"x", false}}},
		{"seed tags", ThinkingTags{"<seed:think>", "</seed:think>"}, false, []string{"<seed:think>r</seed:", "think>a"}, []piece{{"r", true}, {"a", false}}},
		{"no tags", ThinkingTags{}, false, []string{"<think>x</think>"}, []piece{{"<think>x</think>", false}}},
	}
	for _, c := range cases {
		got := split(c.tags, c.inside, c.chunks...)
		if len(got) != len(c.want) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
				break
			}
		}
	}
}

// FuzzSplitter checks that any chunking of a reply splits it as the
// whole reply does, and that nothing is lost but the tags (and the
// whitespace before the opening tag).
func FuzzSplitter(f *testing.F) {
	f.Add("<think>abc</think>def", uint64(1), false)
	f.Add("  <think>\nx</think>\n\ny", uint64(7), false)
	f.Add("reason</think>answer", uint64(3), true)
	f.Add("<thi<think>nk></think>", uint64(5), false)
	f.Add("</think></think>", uint64(9), true)
	f.Fuzz(func(t *testing.T, text string, seed uint64, inside bool) {
		tags := DefaultThinkingTags
		whole := split(tags, inside, text)
		r := rand.New(rand.NewPCG(seed, seed))
		var chunks []string
		for rest := text; rest != ""; {
			n := 1 + r.IntN(len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		parts := split(tags, inside, chunks...)
		if len(parts) != len(whole) {
			t.Fatalf("chunked %q: %+v, whole: %+v", chunks, parts, whole)
		}
		for i := range parts {
			if parts[i] != whole[i] {
				t.Fatalf("chunked %q: %+v, whole: %+v", chunks, parts, whole)
			}
		}
		th, ans := SplitThinking(text, tags, inside)
		var rebuilt string
		switch {
		case inside:
			rebuilt = th
			if strings.Contains(text, tags.Close) {
				rebuilt += tags.Close
			}
			rebuilt += ans
		case strings.HasPrefix(trimLeftSpace(text), tags.Open):
			rebuilt = tags.Open + th
			if strings.Contains(trimLeftSpace(text)[len(tags.Open):], tags.Close) {
				rebuilt += tags.Close
			}
			rebuilt += ans
			text = trimLeftSpace(text)
		default:
			rebuilt = ans
		}
		if rebuilt != text {
			t.Fatalf("lost text: %q -> thinking %q answer %q", text, th, ans)
		}
	})
}

func TestTemplateThinkingTags(t *testing.T) {
	if got := readTemplate(t, "qwen3").ThinkingTags(); got != DefaultThinkingTags {
		t.Errorf("qwen3: %v", got)
	}
	tmpl, err := ParseTemplate("{{ '<seed:think>' }}")
	if err != nil {
		t.Fatal(err)
	}
	if got := tmpl.ThinkingTags(); got.Open != "<seed:think>" {
		t.Errorf("seed: %v", got)
	}
}
