package llama

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/llamago/llamago/gguf"
)

// ErrNoVision is returned by LoadProjector in a build without llama.cpp's
// multimodal library (the llama_system build), and for a projector file
// without a vision encoder.
var ErrNoVision = errors.New("llama: vision is not supported")

// DefaultMediaMarker is the text that stands for an image in a prompt
// given WithImages, llama.cpp's "<__media__>".
const DefaultMediaMarker = "<__media__>"

// Projector is a vision projector loaded for a Model: the image encoder
// and projection of a multimodal model (an "mmproj" GGUF file, as
// llama.cpp's converters write it), which turns images into embeddings of
// the model's input size. Prompts take images through WithImages.
//
// A Projector is safe for concurrent use; images are encoded one at a
// time. Close frees it; closing the model closes its projectors.
type Projector struct {
	m    *Model
	path string
	id   uint64 // tells projectors apart in the keys of cached images

	vision, mrope, nonCausal bool
	info                     ProjectorInfo

	mu     sync.Mutex
	h      unsafe.Pointer // *mtmd_context
	closed bool
}

// ProjectorInfo describes a projector file, from its metadata.
type ProjectorInfo struct {
	Type      string // clip.projector_type: mlp, gemma3, qwen2vl_merger...
	Name      string // general.name
	Embd      int    // the vision encoder's embedding size
	Layers    int    // its blocks
	ImageSize int    // the side of the square it was trained on
	PatchSize int
	Output    int // the size of the embeddings it makes, the model's; 0 if not known
}

// mtmdParams are the settings of a projector load.
type mtmdParams struct {
	gpu                bool
	threads            int
	warmup             bool
	minTokens, maxToks int // 0: the projector's own
}

var projectorIDs atomic.Uint64

type projectorConfig struct {
	params mtmdParams
	err    error
}

// ProjectorOption configures LoadProjector.
type ProjectorOption func(*projectorConfig)

// WithProjectorThreads sets the CPU threads of the image encoder (default
// DefaultThreads).
func WithProjectorThreads(n int) ProjectorOption {
	return func(c *projectorConfig) {
		if n < 1 || n > 1024 {
			c.err = invalidArg("projector threads %d", n)
			return
		}
		c.params.threads = n
	}
}

// WithProjectorGPU says whether the image encoder runs on a GPU when there
// is one (default true, as llama.cpp's).
func WithProjectorGPU(on bool) ProjectorOption {
	return func(c *projectorConfig) { c.params.gpu = on }
}

// WithProjectorWarmup makes LoadProjector encode a blank image of the
// projector's largest size, so that its compute buffers are allocated, and
// a lack of memory found, at load rather than at the first image (the
// default is off: the first image allocates for its own size).
func WithProjectorWarmup(on bool) ProjectorOption {
	return func(c *projectorConfig) { c.params.warmup = on }
}

// WithProjectorImageTokens bounds the embeddings the projector makes of
// an image, for projectors that keep an image's aspect ratio and scale it
// to fit (Qwen2-VL and its kind; others make a fixed number): llama.cpp's
// --image-min-tokens and --image-max-tokens. 0 leaves a bound at the
// projector's own (Qwen2-VL: 8 to 4096).
func WithProjectorImageTokens(min, max int) ProjectorOption {
	return func(c *projectorConfig) {
		if min < 0 || max < 0 || max > 1<<16 || max > 0 && min > max {
			c.err = invalidArg("image tokens %d to %d", min, max)
			return
		}
		c.params.minTokens, c.params.maxToks = min, max
	}
}

// LoadProjector loads a vision projector for m from path. The file is
// checked in Go first (the metadata llama.cpp reads with asserting
// getters); a projector whose output size is not the model's embedding
// size gives ErrInvalidModel.
func (m *Model) LoadProjector(path string, opts ...ProjectorOption) (*Projector, error) {
	cfg := projectorConfig{params: mtmdParams{gpu: true, threads: DefaultThreads()}}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	if !mtmdAvailable {
		return nil, fmt.Errorf("%w: this build has no multimodal library (llama_system)", ErrNoVision)
	}
	info, err := ReadProjectorInfo(path)
	if err != nil {
		return nil, err
	}
	if err := m.rlock(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	if m.vocabOnly {
		return nil, invalidArg("model %s was loaded vocab-only", m.path)
	}
	if n := m.nEmbdInp(); info.Output != 0 && info.Output != n {
		return nil, fmt.Errorf("%w: %s makes embeddings of %d, model %s takes %d: not its projector", ErrInvalidModel, path, info.Output, m.path, n)
	}
	initBackend()
	h, vision, mrope, nonCausal, err := mtmdLoad(m, path, cfg.params)
	if err != nil {
		return nil, err
	}
	if !vision {
		mtmdFree(h)
		return nil, fmt.Errorf("%w: %s has no vision encoder", ErrNoVision, path)
	}
	p := &Projector{m: m, path: path, id: projectorIDs.Add(1), h: h, vision: vision, mrope: mrope, nonCausal: nonCausal, info: info}
	m.addChild(p)
	return p, nil
}

// Path is the file the projector was loaded from.
func (p *Projector) Path() string { return p.path }

// Model is the model the projector was loaded for.
func (p *Projector) Model() *Model { return p.m }

// Info describes the projector.
func (p *Projector) Info() ProjectorInfo { return p.info }

// MRoPE reports whether the model places image embeddings with
// multi-dimensional rotary positions (Qwen2-VL and its kind): an image
// then takes fewer positions than embeddings.
func (p *Projector) MRoPE() bool { return p.mrope }

// Close frees the projector. It is safe to call more than once.
func (p *Projector) Close() error {
	if p.close() {
		p.m.removeChild(p)
	}
	return nil
}

func (p *Projector) closeFromModel() { p.close() }

func (p *Projector) close() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	mtmdFree(p.h)
	p.h, p.closed = nil, true
	return true
}

// ReadProjectorInfo reads a projector file's metadata and checks what
// llama.cpp's clip loader reads with getters that abort the process on a
// missing key or a wrong type.
func ReadProjectorInfo(path string) (ProjectorInfo, error) {
	f, err := openGGUF(path)
	if err != nil {
		return ProjectorInfo{}, err
	}
	bad := func(format string, args ...any) (ProjectorInfo, error) {
		return ProjectorInfo{}, fmt.Errorf("%w: %s: %s", ErrInvalidModel, path, fmt.Sprintf(format, args...))
	}
	if a, _ := f.String("general.architecture"); a != "clip" {
		return bad("not a projector (general.architecture %q, want clip)", a)
	}
	typed := map[string]gguf.ValueType{
		"general.name":                             gguf.TypeString,
		"general.description":                      gguf.TypeString,
		"clip.projector_type":                      gguf.TypeString,
		"clip.vision.projector_type":               gguf.TypeString,
		"clip.has_vision_encoder":                  gguf.TypeBool,
		"clip.has_audio_encoder":                   gguf.TypeBool,
		"clip.use_gelu":                            gguf.TypeBool,
		"clip.use_silu":                            gguf.TypeBool,
		"clip.vision.mm_patch_merge_type":          gguf.TypeString,
		"clip.vision.attention.layer_norm_epsilon": gguf.TypeFloat32,
	}
	u32 := []string{"embedding_length", "feed_forward_length", "block_count", "projection_dim", "attention.head_count",
		"image_size", "patch_size", "image_crop_resolution", "minicpmv_query_num", "projector.scale_factor",
		"spatial_merge_size", "n_wa_pattern", "window_size", "preproc_image_size"}
	for _, k := range u32 {
		typed["clip.vision."+k] = gguf.TypeUint32
	}
	for k, t := range typed {
		if v, ok := f.Lookup(k); ok && v.Type != t {
			return bad("%s is %s, not %s", k, v.Type, t)
		}
	}
	for _, k := range []string{"clip.vision.image_grid_pinpoints", "clip.vision.feature_layer"} {
		if v, ok := f.Lookup(k); ok && (!v.IsArray() || v.ElemType() != gguf.TypeInt32) {
			return bad("%s is not an array of int32", k)
		}
	}
	if v, _ := f.Bool("clip.has_vision_encoder"); !v {
		return bad("no vision encoder (clip.has_vision_encoder)")
	}
	for _, k := range []string{"clip.vision.image_mean", "clip.vision.image_std"} {
		v, ok := f.Lookup(k)
		if !ok || !v.IsArray() || v.ElemType() != gguf.TypeFloat32 || v.Len() < 3 {
			return bad("%s is not an array of 3 float32", k)
		}
	}
	get := func(k string) int {
		v, _ := f.Lookup("clip.vision." + k)
		n, _ := v.Uint()
		return int(n)
	}
	info := ProjectorInfo{Embd: get("embedding_length"), Layers: get("block_count"), ImageSize: get("image_size"),
		PatchSize: get("patch_size")}
	info.Type, _ = f.String("clip.projector_type")
	if info.Type == "" {
		info.Type, _ = f.String("clip.vision.projector_type")
	}
	if info.Type == "" {
		info.Type = "mlp" // clip's default
	}
	info.Name, _ = f.String("general.name")
	heads := get("attention.head_count")
	for _, k := range []string{"embedding_length", "feed_forward_length", "block_count", "projection_dim", "attention.head_count", "image_size", "patch_size"} {
		if _, ok := f.Lookup("clip.vision." + k); !ok {
			return bad("clip.vision.%s is missing", k)
		}
	}
	switch {
	case info.Embd <= 0 || heads <= 0 || info.Embd%heads != 0:
		return bad("embedding size %d and %d heads", info.Embd, heads)
	case info.PatchSize <= 0 || info.ImageSize < info.PatchSize || info.ImageSize > 1<<14:
		return bad("image size %d and patch size %d", info.ImageSize, info.PatchSize)
	case info.Layers <= 0 || info.Layers > 1024:
		return bad("%d blocks", info.Layers)
	}
	// The output size is that of the projection's last matrix, for the
	// kinds whose last matrix is known (mtmd checks the others at load).
	if t, ok := f.Tensor("mm.2.weight"); ok && len(t.Dims) == 2 && (info.Type == "mlp" || info.Type == "qwen2vl_merger" || info.Type == "qwen2.5vl_merger") {
		info.Output = int(t.Dims[1])
	} else if t, ok := f.Tensor("mm.input_projection.weight"); ok && len(t.Dims) == 2 && info.Type == "gemma3" {
		info.Output = int(t.Dims[0])
	}
	return info, nil
}

// ImagePositions returns how many positions of a sequence the image takes
// in a prompt, and how many embeddings (KV cells) the projector makes of
// it: the same with most projectors, fewer positions with M-RoPE. Nothing
// is encoded.
func (p *Projector) ImagePositions(im *Image) (positions, embeddings int, err error) {
	if im == nil || im.width <= 0 || im.height <= 0 || len(im.rgb) != 3*im.width*im.height {
		return 0, 0, fmt.Errorf("%w: not an Image made by NewImage or DecodeImage", ErrInvalidImage)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, 0, fmt.Errorf("%w: projector %s", ErrClosed, p.path)
	}
	chunks, err := mtmdTokenize(p.h, DefaultMediaMarker, []*Image{im}, 0)
	if err != nil {
		return 0, 0, err
	}
	defer mtmdFreeChunks(chunks)
	for _, ch := range chunks {
		positions += ch.nPos
		embeddings += ch.nTokens
	}
	return positions, embeddings, nil
}
