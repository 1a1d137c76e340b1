package llama_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

// pngHeader is a PNG signature and IHDR chunk declaring w × h RGB pixels,
// and no pixel data.
func pngHeader(w, h uint32) []byte {
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr, w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8 bits, truecolor
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// webpSolid is a lossless WebP (VP8L) of w × h pixels of one color: every
// prefix code has a single symbol, so the pixels take no bits.
func webpSolid(w, h int, c color.NRGBA) []byte {
	var bits []bool
	put := func(v uint32, n int) {
		for i := range n {
			bits = append(bits, v>>i&1 == 1)
		}
	}
	put(uint32(w-1), 14)
	put(uint32(h-1), 14)
	put(0, 1) // no alpha
	put(0, 3) // version
	put(0, 1) // no transform
	put(0, 1) // no color cache
	put(0, 1) // no meta prefix codes
	for _, sym := range []uint8{c.G, c.R, c.B, c.A} {
		put(1, 1) // simple code
		put(0, 1) // one symbol
		put(1, 1) // of 8 bits
		put(uint32(sym), 8)
	}
	put(1, 1) // distance: simple code
	put(0, 1)
	put(0, 1) // a 1-bit symbol
	put(0, 1)
	data := []byte{0x2f}
	for i := 0; i < len(bits); i += 8 {
		var v byte
		for j := 0; j < 8 && i+j < len(bits); j++ {
			if bits[i+j] {
				v |= 1 << j
			}
		}
		data = append(data, v)
	}
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+8+len(data)))
	b.WriteString("WEBPVP8L")
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func gradient(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), 77, 255})
		}
	}
	return img
}

func TestDecodeImageFormats(t *testing.T) {
	var pngData, jpegData, gifData, gifSmall bytes.Buffer
	if err := png.Encode(&pngData, gradient(40, 30)); err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(&jpegData, gradient(40, 30), &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	// An animated GIF: a red frame, then a blue one.
	frame := func(c color.Color) *image.Paletted {
		p := image.NewPaletted(image.Rect(0, 0, 8, 6), palette.Plan9)
		for i := range p.Pix {
			p.Pix[i] = uint8(p.Palette.Index(c))
		}
		return p
	}
	red, blue := color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}
	if err := gif.EncodeAll(&gifData, &gif.GIF{Image: []*image.Paletted{frame(red), frame(blue)}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	// A first frame smaller than the screen the header declares.
	small := image.NewPaletted(image.Rect(2, 1, 7, 4), palette.Plan9)
	for i := range small.Pix {
		small.Pix[i] = uint8(small.Palette.Index(blue))
	}
	if err := gif.EncodeAll(&gifSmall, &gif.GIF{Image: []*image.Paletted{small}, Delay: []int{0},
		Config: image.Config{Width: 16, Height: 12, ColorModel: small.Palette}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		w, h int
		px   [3]byte // the top-left pixel, within tol
		tol  int
	}{
		{"png", pngData.Bytes(), 40, 30, [3]byte{0, 0, 77}, 0},
		{"jpeg", jpegData.Bytes(), 40, 30, [3]byte{0, 0, 77}, 12},
		{"gif first frame", gifData.Bytes(), 8, 6, [3]byte{255, 0, 0}, 0},
		{"gif frame smaller than its screen", gifSmall.Bytes(), 5, 3, [3]byte{0, 0, 255}, 0},
		{"webp", webpSolid(5, 3, color.NRGBA{10, 200, 30, 255}), 5, 3, [3]byte{10, 200, 30}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := llama.DecodeImage(tc.data, 0)
			if err != nil {
				t.Fatal(err)
			}
			if im.Width() != tc.w || im.Height() != tc.h {
				t.Fatalf("%dx%d, want %dx%d", im.Width(), im.Height(), tc.w, tc.h)
			}
			px := im.Pixels()[:3]
			for i := range 3 {
				if d := int(px[i]) - int(tc.px[i]); d > tc.tol || -d > tc.tol {
					t.Errorf("top-left pixel %v, want %v", px, tc.px)
				}
			}
		})
	}
}

// Bad image data gives ErrInvalidImage with a message that says what is
// wrong, and a huge declared size is refused before any pixel is decoded.
func TestDecodeImageErrors(t *testing.T) {
	var good bytes.Buffer
	if err := png.Encode(&good, gradient(64, 64)); err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(good.Bytes())
	for i := len(corrupt) / 2; i < len(corrupt)/2+40; i++ {
		corrupt[i] ^= 0x5a
	}
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"empty", "no data", nil},
		{"unknown format", "unknown format", []byte("hello, this is not an image at all")},
		{"truncated", "decoding png", good.Bytes()[:good.Len()/2]},
		{"corrupt", "decoding png", corrupt},
		{"header only", "png", pngHeader(4, 4)},
		{"0x0", "", pngHeader(0, 0)},
		{"30000x30000", "30000x30000 pixels, more than", pngHeader(30000, 30000)},
		{"webp header only", "", webpSolid(5, 3, color.NRGBA{})[:20]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := llama.DecodeImage(tc.data, 0)
			if !errors.Is(err, llama.ErrInvalidImage) || im != nil {
				t.Fatalf("got %v, %v; want ErrInvalidImage", im, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q does not say %q", err, tc.want)
			}
		})
	}
	// The bound is the caller's.
	if _, err := llama.DecodeImage(good.Bytes(), 64*64-1); !errors.Is(err, llama.ErrInvalidImage) {
		t.Errorf("64x64 with a bound of 64*64-1 pixels: %v", err)
	}
	if _, err := llama.DecodeImage(good.Bytes(), 64*64); err != nil {
		t.Errorf("64x64 with a bound of 64*64 pixels: %v", err)
	}
	for _, tc := range []struct {
		w, h int
		n    int
	}{{0, 0, 0}, {-1, 4, 12}, {4, 4, 47}, {4, 4, 49}} {
		if _, err := llama.NewImage(tc.w, tc.h, make([]byte, tc.n)); !errors.Is(err, llama.ErrInvalidImage) {
			t.Errorf("NewImage(%d, %d, %d bytes): %v", tc.w, tc.h, tc.n, err)
		}
	}
}
