//go:build !llama_system

package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// synthVision makes a vision pair with llamago synth, as a user would.
func synthVision(t *testing.T, shape string) (model, mmproj string) {
	t.Helper()
	dir := t.TempDir()
	model, mmproj = filepath.Join(dir, shape+".gguf"), filepath.Join(dir, shape+"-mmproj.gguf")
	stdout, stderr, code := cli(t, "", "synth", "--shape", shape, "--vocab", modelPath(t, "vocab/ggml-vocab-llama-spm.gguf"),
		"-o", model, "--mmproj-out", mmproj)
	if code != 0 {
		t.Fatalf("synth: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, mmproj+": synthetic "+shape+" projector") {
		t.Errorf("synth printed %q", stdout)
	}
	return model, mmproj
}

// writePNG writes a w × h PNG: a gradient (kind 0) or stripes (kind 1).
func writePNG(t *testing.T, dir, name string, w, h, kind int) string {
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
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunImage(t *testing.T) {
	model, mmproj := synthVision(t, "tiny-llava")
	dir := t.TempDir()
	a, b := writePNG(t, dir, "a.png", 40, 30, 0), writePNG(t, dir, "b.png", 40, 30, 1)
	run := func(args ...string) runJSON {
		t.Helper()
		args = append([]string{"run", "-m", model, "--mmproj", mmproj, "--temp", "0", "-n", "12", "-t", "1", "--json"}, args...)
		stdout, stderr, code := cli(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var r runJSON
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("%q: %v", stdout, err)
		}
		return r
	}
	ra := run("--image", a, "What is this?")
	if len(ra.Tokens) != 12 || ra.Stats.Images != 1 || ra.Stats.ImageEncodeMs <= 0 {
		t.Errorf("with image a: %+v", ra)
	}
	if again := run("--image", a, "What is this?"); again.Text != ra.Text {
		t.Errorf("the same image again: %q, first %q", again.Text, ra.Text)
	}
	if rb := run("--image", b, "What is this?"); rb.Text == ra.Text {
		t.Errorf("different images, the same text %q", ra.Text)
	}
	// Two images, placed by markers; their order matters.
	ab := run("--image", a, "--image", b, "First <__media__>, then <__media__>. Which?")
	ba := run("--image", b, "--image", a, "First <__media__>, then <__media__>. Which?")
	if ab.Stats.Images != 2 || ab.Text == ba.Text {
		t.Errorf("a, b: %+v; b, a: %q", ab, ba.Text)
	}
	// --timings reports the encoding.
	_, stderr, code := cli(t, "", "run", "-m", model, "--mmproj", mmproj, "--image", a, "--temp", "0", "-n", "4", "-t", "1", "--timings", "Hi")
	if code != 0 || !strings.Contains(stderr, "images:     1, encoded in") {
		t.Errorf("--timings: exit %d, %q", code, stderr)
	}
}

func TestRunImageErrors(t *testing.T) {
	model, mmproj := synthVision(t, "tiny-llava")
	dir := t.TempDir()
	good := writePNG(t, dir, "good.png", 16, 16, 0)
	data, _ := os.ReadFile(good)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	truncated := write("truncated.png", data[:len(data)/2])
	text := write("notes.txt", []byte("not a picture"))
	// A PNG header declaring 30000 × 30000 pixels.
	ihdr := []byte{'I', 'H', 'D', 'R', 0, 0, 0x75, 0x30, 0, 0, 0x75, 0x30, 8, 2, 0, 0, 0}
	huge := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"), ihdr...)
	huge = binary.BigEndian.AppendUint32(huge, crc32.ChecksumIEEE(ihdr))
	hugePath := write("huge.png", huge)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"image without projector", []string{"run", "-m", model, "--image", good, "hi"}, exitUsage, "--image needs --mmproj"},
		{"missing image", []string{"run", "-m", model, "--mmproj", mmproj, "--image", filepath.Join(dir, "nope.png"), "hi"}, exitError, "nope.png"},
		{"truncated image", []string{"run", "-m", model, "--mmproj", mmproj, "--image", truncated, "hi"}, exitError, "invalid image: " + truncated + ": decoding png"},
		{"not an image", []string{"run", "-m", model, "--mmproj", mmproj, "--image", text, "hi"}, exitError, "unknown format"},
		{"30000x30000", []string{"run", "-m", model, "--mmproj", mmproj, "--image", hugePath, "hi"}, exitError, "30000x30000 pixels, more than"},
		{"projector is the model", []string{"run", "-m", model, "--mmproj", model, "--image", good, "hi"}, exitError, "not a projector"},
		{"markers and images", []string{"run", "-m", model, "--mmproj", mmproj, "--image", good, "<__media__> and <__media__>"}, exitError, "2 image markers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			oneLine(t, stderr)
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout = %q", stdout)
			}
		})
	}
}

// chat takes --image for the first message and /image for the next, and
// the replies depend on the images.
func TestChatImage(t *testing.T) {
	model, mmproj := synthVision(t, "tiny-llava")
	dir := t.TempDir()
	a, b := writePNG(t, dir, "a.png", 40, 30, 0), writePNG(t, dir, "b.png", 40, 30, 1)
	chatLines := func(stdin string, args ...string) []string {
		t.Helper()
		args = append([]string{"chat", "-m", model, "--mmproj", mmproj, "--chat-template", "chatml", "--temp", "0", "-n", "8", "-t", "1"}, args...)
		stdout, stderr, code := cli(t, stdin, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		return strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	}
	withA := chatLines("What is it?\n", "--image", a)
	withB := chatLines("What is it?\n", "--image", b)
	plain := chatLines("What is it?\n")
	if withA[0] == withB[0] || withA[0] == plain[0] {
		t.Errorf("replies: with a %q, with b %q, without %q", withA, withB, plain)
	}
	// /image attaches to the next message only: the first reply is the
	// plain one, the second differs from a plain second turn.
	slash := chatLines("What is it?\n/image " + a + "\nAnd this?\n")
	plain2 := chatLines("What is it?\nAnd this?\n")
	if len(slash) != 2 || len(plain2) != 2 || slash[0] != plain[0] || slash[1] == plain2[1] {
		t.Errorf("with /image: %q, without: %q", slash, plain2)
	}
	_, stderr, code := cli(t, "/image "+a+"\nhi\n", "chat", "-m", model, "--chat-template", "chatml", "-n", "4")
	if code == 0 || !strings.Contains(stderr, "/image needs the model's vision projector") {
		t.Errorf("/image without --mmproj: exit %d, %q", code, stderr)
	}
	_, stderr, code = cli(t, "/image "+filepath.Join(dir, "nope.png")+"\nhi\n", "chat", "-m", model, "--mmproj", mmproj, "--chat-template", "chatml", "-n", "4")
	if code == 0 || !strings.Contains(stderr, "nope.png") {
		t.Errorf("/image of a missing file: exit %d, %q", code, stderr)
	}
}

func TestInfoProjector(t *testing.T) {
	_, mmproj := synthVision(t, "tiny-qwen2vl")
	stdout, stderr, code := cli(t, "", "info", mmproj)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"architecture    clip\n",
		"projector       qwen2vl_merger, for images (use with --mmproj)\n",
		"output          embeddings of 64: for a language model of that embedding size\n",
		"encoder         2 blocks of 32, 4 heads, feed forward 48\n",
		"images          56×56 pixels, patches of 4 (14 a side), merged 2×2\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("info does not say %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "chat template") || strings.Contains(stdout, "KV cache") {
		t.Errorf("info of a projector speaks of a chat template or KV cache:\n%s", stdout)
	}
	stdout, _, _ = cli(t, "", "info", "--json", mmproj)
	var in struct {
		Projector struct {
			Type   string `json:"projector_type"`
			Output int    `json:"output_length"`
		} `json:"projector"`
	}
	if err := json.Unmarshal([]byte(stdout), &in); err != nil || in.Projector.Type != "qwen2vl_merger" || in.Projector.Output != 64 {
		t.Errorf("--json: %v, %+v", err, in)
	}
}

// bench --e2e with images times their encoding.
func TestBenchImages(t *testing.T) {
	model, mmproj := synthVision(t, "tiny-llava")
	img := writePNG(t, t.TempDir(), "a.png", 24, 24, 0)
	stdout, stderr, code := cli(t, "", "bench", "-m", model, "--mmproj", mmproj, "--image", img, "--image", img,
		"--e2e", "16,4", "-p", "0", "-n", "0", "-r", "2", "-t", "1", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rs []struct {
		Test     string   `json:"test"`
		NImages  int      `json:"n_images"`
		EncodeNS uint64   `json:"image_encode_avg_ns"`
		Samples  []uint64 `json:"image_encode_samples_ns"`
	}
	if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if len(rs) != 1 || rs[0].NImages != 2 || rs[0].EncodeNS == 0 || len(rs[0].Samples) != 2 {
		t.Errorf("results %+v", rs)
	}
	for _, args := range [][]string{
		{"bench", "-m", model, "--mmproj", mmproj, "--e2e", "16,4"},                              // no image
		{"bench", "-m", model, "--mmproj", mmproj, "--image", img},                               // no e2e
		{"bench", "-m", model, "-m", model, "--mmproj", mmproj, "--image", img, "--e2e", "16,4"}, // two models
	} {
		if _, stderr, code := cli(t, "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, %s", args, code, stderr)
		}
	}
}
