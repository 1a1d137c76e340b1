package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/llamago/llamago/llama"
)

// Images in chat requests: image_url content parts, as OpenAI takes them,
// given to the model's projector (Config.Projector). data: URLs are
// decoded in the request; http(s) URLs only with Config.FetchImage, which
// the server leaves unset: a request must not make the server fetch what
// it names unless its operator says so.

// imageURL reads an image_url part's value: {"url": "..."} or the URL
// itself.
func imageURL(raw json.RawMessage) (string, error) {
	var obj struct {
		URL *string `json:"url"`
	}
	var s string
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return "", fieldError("content", "an image_url part needs an image_url")
	case json.Unmarshal(raw, &s) == nil:
	case json.Unmarshal(raw, &obj) == nil && obj.URL != nil:
		s = *obj.URL
	default:
		return "", fieldError("content", "image_url must be an object with a url, or a URL")
	}
	if s == "" {
		return "", fieldError("content", "image_url has an empty url")
	}
	return s, nil
}

// FetchHTTPImage is a Config.FetchImage that downloads http and https
// URLs with a timeout of 30 seconds and at most llama.MaxImageFileSize
// bytes.
func FetchHTTPImage(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, llama.MaxImageFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > llama.MaxImageFileSize {
		return nil, fmt.Errorf("larger than %d MiB", llama.MaxImageFileSize>>20)
	}
	return data, nil
}

// imageDecodes bounds the images decoded at once, across requests, so
// that concurrent requests hold at most that many decode buffers.
var imageDecodes = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// chatImages decodes the images of a chat request's messages, in order.
func (s *Server) chatImages(ctx context.Context, in []chatMessage) ([]*llama.Image, error) {
	var out []*llama.Image
	limit := s.cfg.MaxImagePixels
	if limit <= 0 {
		limit = llama.DefaultMaxImagePixels
	}
	budget := limit
	for i, m := range in {
		for j, url := range m.Content.images {
			param := fmt.Sprintf("messages[%d].content", i)
			switch {
			case s.cfg.Projector == nil:
				return nil, badRequest(param, "This model does not take images: the server has no vision projector (--mmproj).")
			case len(out) == llama.MaxImagesPerPrompt:
				return nil, badRequest(param, "More than %d images in one request.", llama.MaxImagesPerPrompt)
			}
			data, err := s.imageData(ctx, url)
			if err != nil {
				return nil, badRequest(param, "Image %d of message %d: %v.", j, i, err)
			}
			if budget <= 0 {
				return nil, badRequest(param, "Image %d of message %d: the request's images have more pixels than the %d allowed.", j, i, limit)
			}
			select {
			case imageDecodes <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			im, err := llama.DecodeImage(data, budget)
			<-imageDecodes
			if err != nil {
				return nil, badRequest(param, "Image %d of message %d: %s.", j, i, strings.TrimPrefix(err.Error(), "llama: "))
			}
			budget -= im.Width() * im.Height()
			out = append(out, im)
		}
	}
	return out, nil
}

// imageData returns the bytes an image URL holds or names.
func (s *Server) imageData(ctx context.Context, url string) ([]byte, error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, payload, ok := strings.Cut(rest, ",")
		if !ok {
			return nil, errors.New("a data: URL without a comma")
		}
		if !strings.HasSuffix(meta, ";base64") {
			return nil, errors.New("a data: URL that is not base64")
		}
		data, err := base64.StdEncoding.DecodeString(payload)
		if err != nil {
			if data, err = base64.RawStdEncoding.DecodeString(payload); err != nil {
				return nil, errors.New("invalid base64 in the data: URL")
			}
		}
		return data, nil
	}
	lower := strings.ToLower(url)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return nil, errors.New("the URL must be a data: URL (or http(s), where the server allows it)")
	}
	if s.cfg.FetchImage == nil {
		return nil, errors.New("remote image URLs are not allowed by this server: send the image as a data: URL")
	}
	data, err := s.cfg.FetchImage(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("fetching it: %v", err)
	}
	return data, nil
}
