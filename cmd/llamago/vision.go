package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// visionFlags are the image flags of run and chat, llama.cpp's names:
// --mmproj loads a vision projector for the model, and each --image gives
// the prompt (run) or the first message (chat) a picture.
type visionFlags struct {
	MMProj          string
	Images          []string
	NoMMProjOffload bool
	ImageMaxTokens  int
}

// addVisionFlags registers --mmproj, --image (if images) and the
// projector's settings.
func addVisionFlags(f *pflag.FlagSet, v *visionFlags, images bool) {
	f.StringVar(&v.MMProj, "mmproj", "", "vision projector file (mmproj GGUF) of the model, for images")
	if images {
		f.StringArrayVar(&v.Images, "image", nil, "image file (PNG, JPEG, GIF or WebP) for the prompt, where it has "+llama.DefaultMediaMarker+" or else at its start (repeatable; needs --mmproj)")
	}
	f.BoolVar(&v.NoMMProjOffload, "no-mmproj-offload", false, "run the vision projector on the CPU, not a GPU")
	f.IntVar(&v.ImageMaxTokens, "image-max-tokens", 0, "most embeddings per image, for projectors that scale images (0: the projector's own)")
}

func (v *visionFlags) validate() error {
	switch {
	case len(v.Images) > 0 && v.MMProj == "":
		return usageErrorf("--image needs --mmproj, the model's vision projector")
	case len(v.Images) > llama.MaxImagesPerPrompt:
		return usageErrorf("at most %d images, not %d", llama.MaxImagesPerPrompt, len(v.Images))
	case v.ImageMaxTokens < 0:
		return usageErrorf("--image-max-tokens must be 0 (the projector's own) or positive, not %d", v.ImageMaxTokens)
	}
	return nil
}

// load loads the projector of --mmproj for m, or returns nil without it.
func (v *visionFlags) load(m *llama.Model, threads int) (*llama.Projector, error) {
	if v.MMProj == "" {
		return nil, nil
	}
	p, err := m.LoadProjector(v.MMProj, llama.WithProjectorThreads(threads), llama.WithProjectorGPU(!v.NoMMProjOffload),
		llama.WithProjectorImageTokens(0, v.ImageMaxTokens))
	if err != nil {
		return nil, fmt.Errorf("--mmproj %s: %w", v.MMProj, unprefixed{err})
	}
	return p, nil
}

// loadImages decodes image files, checking their declared sizes first.
func loadImages(paths []string) ([]*llama.Image, error) {
	var out []*llama.Image
	for _, p := range paths {
		im, err := llama.LoadImage(p, 0)
		if err != nil {
			return nil, fmt.Errorf("--image: %w", unprefixed{err})
		}
		out = append(out, im)
	}
	return out, nil
}

// printProjector prints the lines of info that describe a projector file.
func printProjector(line func(label, format string, args ...any), p *models.ProjectorInfo) {
	kinds := []string{}
	if p.Vision {
		kinds = append(kinds, "images")
	}
	if p.Audio {
		kinds = append(kinds, "audio")
	}
	what := "nothing llamago takes"
	if len(kinds) > 0 {
		what = strings.Join(kinds, " and ")
	}
	line("projector", "%s, for %s (use with --mmproj)", dash(p.Type), what)
	if p.Output > 0 {
		line("output", "embeddings of %d: for a language model of that embedding size", p.Output)
	}
	if p.Embd > 0 {
		enc := fmt.Sprintf("%d blocks of %d", p.Layers, p.Embd)
		if p.Heads > 0 {
			enc += fmt.Sprintf(", %d heads", p.Heads)
		}
		if p.FeedForward > 0 {
			enc += fmt.Sprintf(", feed forward %d", p.FeedForward)
		}
		line("encoder", "%s", enc)
	}
	if p.ImageSize > 0 && p.PatchSize > 0 {
		img := fmt.Sprintf("%d×%d pixels, patches of %d (%d a side)", p.ImageSize, p.ImageSize, p.PatchSize, p.ImageSize/p.PatchSize)
		if p.MergeSize > 1 {
			img += fmt.Sprintf(", merged %d×%d", p.MergeSize, p.MergeSize)
		}
		line("images", "%s", img)
	}
}
