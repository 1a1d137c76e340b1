package llama

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/gif" // first frame
	_ "image/jpeg"
	_ "image/png"
	"io"
	"os"
	"strings"

	_ "golang.org/x/image/webp"
)

// ErrInvalidImage is returned for image data that cannot be decoded: an
// unknown format, a truncated or corrupt file, no pixels, or more pixels
// than allowed.
var ErrInvalidImage = errors.New("llama: invalid image")

// DefaultMaxImagePixels is DecodeImage's bound on an image's declared
// width × height when none is given: 32 Mi pixels, 96 MiB of RGB. Vision
// projectors scale images down to a few hundred thousand pixels anyway.
const DefaultMaxImagePixels = 32 << 20

// MaxImageFileSize is the largest file LoadImage reads.
const MaxImageFileSize = 64 << 20

// Image is a picture for a vision model: its pixels as 8-bit RGB, row by
// row from the top left. It is immutable once made, and safe for
// concurrent use. Its hash, of its size and pixels, identifies it in a
// sequence's cache: a prompt that repeats an image already decoded into
// the sequence reuses it.
type Image struct {
	width, height int
	rgb           []byte
	hash          [sha256.Size]byte
}

// NewImage makes an image of width × height pixels from rgb, 3 bytes a
// pixel, which it copies.
func NewImage(width, height int, rgb []byte) (*Image, error) {
	if width <= 0 || height <= 0 {
		return nil, fmt.Errorf("%w: %dx%d pixels", ErrInvalidImage, width, height)
	}
	if int64(width)*int64(height) > 1<<31/3 {
		return nil, fmt.Errorf("%w: %dx%d pixels is too large", ErrInvalidImage, width, height)
	}
	if len(rgb) != 3*width*height {
		return nil, fmt.Errorf("%w: %d bytes of RGB for %dx%d pixels, want %d", ErrInvalidImage, len(rgb), width, height, 3*width*height)
	}
	return newImage(width, height, bytes.Clone(rgb)), nil
}

func newImage(width, height int, rgb []byte) *Image {
	im := &Image{width: width, height: height, rgb: rgb}
	h := sha256.New()
	var size [8]byte
	binary.LittleEndian.PutUint32(size[:], uint32(width))
	binary.LittleEndian.PutUint32(size[4:], uint32(height))
	h.Write(size[:])
	h.Write(rgb)
	h.Sum(im.hash[:0])
	return im
}

// Width is the image's width in pixels.
func (im *Image) Width() int { return im.width }

// Height is the image's height in pixels.
func (im *Image) Height() int { return im.height }

// Pixels returns a copy of the image's RGB bytes.
func (im *Image) Pixels() []byte { return bytes.Clone(im.rgb) }

// Hash is the hex SHA-256 of the image's size and pixels.
func (im *Image) Hash() string { return hex.EncodeToString(im.hash[:]) }

// LoadImage reads and decodes an image file, as DecodeImage does; files
// over MaxImageFileSize are refused unread.
func LoadImage(path string, maxPixels int) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxImageFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxImageFileSize {
		return nil, fmt.Errorf("%w: %s: larger than %d MiB", ErrInvalidImage, path, MaxImageFileSize>>20)
	}
	im, err := DecodeImage(data, maxPixels)
	if err != nil {
		// "llama: invalid image: PATH: what"
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalidImage, path, strings.TrimPrefix(err.Error(), ErrInvalidImage.Error()+": "))
	}
	return im, nil
}

// DecodeImage decodes a PNG, JPEG, GIF (its first frame) or WebP image
// into RGB; an alpha channel is dropped. The size the header declares is
// checked against maxPixels (DefaultMaxImagePixels if 0 or less) before
// any pixel is decoded, so that a small file cannot make it allocate
// gigabytes. Errors wrap ErrInvalidImage.
func DecodeImage(data []byte, maxPixels int) (*Image, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxImagePixels
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: no data", ErrInvalidImage)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	switch {
	case errors.Is(err, image.ErrFormat):
		return nil, fmt.Errorf("%w: unknown format (want PNG, JPEG, GIF or WebP)", ErrInvalidImage)
	case err != nil:
		return nil, fmt.Errorf("%w: reading the header: %v", ErrInvalidImage, err)
	case cfg.Width <= 0 || cfg.Height <= 0:
		return nil, fmt.Errorf("%w: %s of %dx%d pixels", ErrInvalidImage, format, cfg.Width, cfg.Height)
	case int64(cfg.Width)*int64(cfg.Height) > int64(maxPixels):
		return nil, fmt.Errorf("%w: %s of %dx%d pixels, more than the %d allowed", ErrInvalidImage, format, cfg.Width, cfg.Height, maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decoding %s: %v", ErrInvalidImage, format, err)
	}
	// A GIF's first frame may be smaller than the screen its header
	// declares; no decoder gives more than declared.
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 || b.Dx() > cfg.Width || b.Dy() > cfg.Height {
		return nil, fmt.Errorf("%w: %s declares %dx%d pixels but holds %dx%d", ErrInvalidImage, format, cfg.Width, cfg.Height, b.Dx(), b.Dy())
	}
	return newImage(b.Dx(), b.Dy(), toRGB(img)), nil
}

// toRGB copies an image's pixels as RGB, without alpha premultiplication.
func toRGB(img image.Image) []byte {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]byte, 0, 3*w*h)
	switch m := img.(type) {
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := m.YCbCrAt(x, y)
				r, g, bl := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
				out = append(out, r, g, bl)
			}
		}
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range w {
				out = append(out, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range w {
				out = append(out, row[x], row[x], row[x])
			}
		}
	case *image.Paletted:
		pal := make([][3]byte, len(m.Palette))
		for i, c := range m.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[i] = [3]byte{n.R, n.G, n.B}
		}
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):]
			for x := range w {
				var c [3]byte // an index past the palette is black
				if int(row[x]) < len(pal) {
					c = pal[row[x]]
				}
				out = append(out, c[0], c[1], c[2])
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				n := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				out = append(out, n.R, n.G, n.B)
			}
		}
	}
	return out
}
