package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/llamago/llamago/chat"
	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// startVisionServer serves a synthetic vision pair, with its projector
// unless noProjector, and returns the base URL.
func startVisionServer(t *testing.T, noProjector bool, mod func(*Config)) string {
	t.Helper()
	mp, pp := testllama.VisionPair(t, "tiny-llava")
	m, err := llama.Load(context.Background(), mp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	tmpl, err := chat.Builtin("chatml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Parallel: 2, SlotContext: 512, BatchSize: 256, UBatchSize: 256, Threads: 1, Template: tmpl}
	if !noProjector {
		p, err := m.LoadProjector(pp, llama.WithProjectorThreads(1))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Projector = p
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		<-done
		s.Close()
	})
	return "http://" + l.Addr().String()
}

// pngData is a w × h PNG, a gradient (kind 0) or stripes (kind 1).
func pngData(t *testing.T, w, h, kind int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 40, 255}
			if kind == 1 {
				c = color.NRGBA{uint8(255 * (x / 3 % 2)), 30, uint8(255 * (y / 5 % 2)), 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func dataURL(b []byte) string { return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b) }

// chatResponse is what the tests read of a chat completion.
type chatResponse struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage usageJSON `json:"usage"`
}

// imageChat posts a chat request of one user message with the content
// parts, greedy, and returns the status and the reply or error.
func imageChat(t *testing.T, base string, parts ...any) (int, chatResponse, []byte) {
	t.Helper()
	code, body := post(t, base+"/v1/chat/completions", map[string]any{
		"messages":    []any{map[string]any{"role": "user", "content": parts}},
		"temperature": 0, "max_tokens": 10,
	})
	var r chatResponse
	if code == http.StatusOK {
		r = decode[chatResponse](t, body)
	}
	return code, r, body
}

func textPart(s string) map[string]any { return map[string]any{"type": "text", "text": s} }
func imagePart(url string) map[string]any {
	return map[string]any{"type": "image_url", "image_url": map[string]any{"url": url}}
}

func TestChatImages(t *testing.T) {
	base := startVisionServer(t, false, nil)
	a, b := dataURL(pngData(t, 40, 30, 0)), dataURL(pngData(t, 40, 30, 1))
	reply := func(parts ...any) (string, chatResponse) {
		t.Helper()
		code, r, body := imageChat(t, base, parts...)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		return *r.Choices[0].Message.Content, r
	}
	ra, resp := reply(textPart("What is this?"), imagePart(a))
	if resp.Usage.PromptTokens < 16 || resp.Usage.CompletionTokens != 10 {
		t.Errorf("usage %+v: the prompt counts the image's positions", resp.Usage)
	}
	// Again: the same reply, the image found in a slot's cache.
	if again, r2 := reply(textPart("What is this?"), imagePart(a)); again != ra || r2.Usage.PromptTokensDetails.CachedTokens < 16 {
		t.Errorf("the same image again: %q (usage %+v), first %q", again, r2.Usage, ra)
	}
	if rb, _ := reply(textPart("What is this?"), imagePart(b)); rb == ra {
		t.Errorf("another image, the same reply %q", ra)
	}
	// Several images; their order matters.
	ab, _ := reply(textPart("Compare"), imagePart(a), imagePart(b))
	ba, _ := reply(textPart("Compare"), imagePart(b), imagePart(a))
	if ab == ba {
		t.Errorf("a, b and b, a: the same reply %q", ab)
	}
	// The image_url may be the URL itself.
	if r, _ := reply(textPart("What is this?"), map[string]any{"type": "image_url", "image_url": a}); r != ra {
		t.Errorf("image_url as a string: %q, want %q", r, ra)
	}
}

func TestChatImageErrors(t *testing.T) {
	var fetched int
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched++
		w.Write(pngData(t, 8, 8, 0))
	}))
	defer remote.Close()
	base := startVisionServer(t, false, nil)
	good := pngData(t, 16, 16, 0)
	ihdr := []byte{'I', 'H', 'D', 'R', 0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30, 8, 2, 0, 0, 0}
	huge := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"), ihdr...)
	huge = binary.BigEndian.AppendUint32(huge, crc32.ChecksumIEEE(ihdr))
	for _, tc := range []struct {
		name  string
		parts []any
		want  string
	}{
		{"remote URL", []any{imagePart(remote.URL + "/a.png")}, "remote image URLs are not allowed"},
		{"file URL", []any{imagePart("file:///etc/passwd")}, "must be a data: URL"},
		{"not base64", []any{imagePart("data:image/png;base64,@@@@")}, "invalid base64"},
		{"not base64 data URL", []any{imagePart("data:image/png,abc")}, "not base64"},
		{"truncated", []any{imagePart(dataURL(good[:len(good)/2]))}, "decoding png"},
		{"unknown format", []any{imagePart(dataURL([]byte("just some text, not an image")))}, "unknown format"},
		{"30000x30000", []any{imagePart(dataURL(huge))}, "30000x30000 pixels"},
		{"empty url", []any{map[string]any{"type": "image_url", "image_url": map[string]any{"url": ""}}}, "empty url"},
		{"no image_url", []any{map[string]any{"type": "image_url"}}, "needs an image_url"},
		{"markers and images", []any{textPart("<__media__> <__media__>"), imagePart(dataURL(good))}, "markers"},
		{"audio", []any{map[string]any{"type": "input_audio"}}, "only text and image_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := imageChat(t, base, tc.parts...)
			if code != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Errorf("status %d, %s; want 400 with %q", code, body, tc.want)
			}
		})
	}
	if fetched != 0 {
		t.Errorf("the server fetched a remote image %d times", fetched)
	}
	// The server still answers.
	if code, _, body := imageChat(t, base, textPart("Hi"), imagePart(dataURL(good))); code != http.StatusOK {
		t.Errorf("after the errors: %d %s", code, body)
	}
	// Without a projector, images are refused.
	plain := startVisionServer(t, true, nil)
	if code, _, body := imageChat(t, plain, imagePart(dataURL(good))); code != http.StatusBadRequest || !strings.Contains(string(body), "does not take images") {
		t.Errorf("no projector: %d %s", code, body)
	}
	// The pixel bound is the request's, all images together.
	bounded := startVisionServer(t, false, func(c *Config) { c.MaxImagePixels = 40*30 + 16*16 })
	one, two := imagePart(dataURL(pngData(t, 40, 30, 0))), imagePart(dataURL(good))
	if code, _, body := imageChat(t, bounded, textPart("Hi"), one, two); code != http.StatusOK {
		t.Errorf("images of exactly the bound: %d %s", code, body)
	}
	if code, _, body := imageChat(t, bounded, textPart("Hi"), one, two, two); code != http.StatusBadRequest || !strings.Contains(string(body), "allowed") {
		t.Errorf("images over the bound: %d %s", code, body)
	}
	// With FetchImage, remote URLs are fetched.
	fetching := startVisionServer(t, false, func(c *Config) { c.FetchImage = FetchHTTPImage })
	if code, _, body := imageChat(t, fetching, textPart("Hi"), imagePart(remote.URL+"/a.png")); code != http.StatusOK || fetched != 1 {
		t.Errorf("FetchImage: %d %s, fetched %d", code, body, fetched)
	}
}
