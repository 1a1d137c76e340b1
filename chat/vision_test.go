package chat

import (
	"context"
	"strings"
	"testing"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// visionSession starts a chatml session on a synthetic vision pair.
func visionSession(t *testing.T, opts ...Option) (*Session, *llama.Projector) {
	t.Helper()
	mp, pp := testllama.VisionPair(t, "tiny-llava")
	m, err := llama.Load(context.Background(), mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	p, err := m.LoadProjector(pp, llama.WithProjectorThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	c := newContext(t, m, llama.WithContextSize(1024))
	tmpl, err := Builtin("chatml")
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithProjector(p), WithSampling(llama.WithTemperature(0)), WithMaxTokens(8)}, opts...)
	s, err := NewSession(newSeq(t, c), tmpl, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, p
}

func imageReply(t *testing.T, s *Session, msg Message) string {
	t.Helper()
	var b strings.Builder
	for ch, err := range s.SendMessage(context.Background(), msg) {
		if err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
		b.WriteString(ch.Text)
	}
	return b.String()
}

// A message's images reach the model: the reply depends on them, is the
// same for the same image, and the next turn reuses the image in the cache.
func TestSessionImages(t *testing.T) {
	a, b := testllama.Picture(t, 32, 32, 0), testllama.Picture(t, 32, 32, 2)
	s1, _ := visionSession(t)
	r1 := imageReply(t, s1, Message{Role: "user", Content: "What is this?", Images: []*llama.Image{a}})
	first := s1.Stats()
	if first.Images != 1 || first.ImageEncode <= 0 {
		t.Errorf("first turn: %+v", first)
	}
	if h := s1.History(); !strings.HasPrefix(h[0].Content, llama.DefaultMediaMarker+"\n") || len(h[0].Images) != 1 {
		t.Errorf("history %+v: the message keeps its image and gets its marker", h[0])
	}
	s2, _ := visionSession(t)
	if r := imageReply(t, s2, Message{Role: "user", Content: "What is this?", Images: []*llama.Image{a}}); r != r1 {
		t.Errorf("the same image in another session: %q, first %q", r, r1)
	}
	s3, _ := visionSession(t)
	if r := imageReply(t, s3, Message{Role: "user", Content: "What is this?", Images: []*llama.Image{b}}); r == r1 {
		t.Errorf("another image, the same reply %q", r)
	}
	// The next turn decodes only what is new.
	imageReply(t, s1, Message{Role: "user", Content: "And now?"})
	st := s1.Stats()
	if st.ImageEncode != 0 || st.Images != 1 || st.CachedTokens < first.PromptTokens {
		t.Errorf("second turn: %+v", st)
	}
	if err := s1.Save(t.TempDir() + "/s.json"); err == nil || !strings.Contains(err.Error(), "images") {
		t.Errorf("Save with images: %v", err)
	}
}

func TestSessionImageErrors(t *testing.T) {
	img := testllama.Picture(t, 16, 16, 1)
	s, _ := visionSession(t)
	mp, _ := testllama.VisionPair(t, "tiny-llava")
	m, err := llama.Load(context.Background(), mp)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tmpl, _ := Builtin("chatml")
	plain, err := NewSession(newSeq(t, newContext(t, m)), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    *Session
		msg  Message
		want string
	}{
		{plain, Message{Role: "user", Content: "x", Images: []*llama.Image{img}}, "needs a session with a projector"},
		{s, Message{Role: "user", Content: "<__media__> <__media__>", Images: []*llama.Image{img}}, "1 images has 2 markers"},
	} {
		for _, err := range tc.s.SendMessage(context.Background(), tc.msg) {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%+v: %v, want %q", tc.msg, err, tc.want)
			}
		}
		if len(tc.s.History()) != 0 {
			t.Errorf("the history changed: %+v", tc.s.History())
		}
	}
}
