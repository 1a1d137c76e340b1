package models

import "github.com/llamago/llamago/gguf"

// ProjectorInfo describes a vision projector file (an mmproj GGUF, of
// architecture "clip"): the image encoder and the projection into a
// language model's embeddings.
type ProjectorInfo struct {
	Type        string    `json:"projector_type"`             // clip.projector_type: mlp, gemma3, qwen2vl_merger...
	Vision      bool      `json:"vision"`                     // has an image encoder
	Audio       bool      `json:"audio,omitempty"`            // has an audio encoder
	Embd        uint64    `json:"embedding_length,omitempty"` // the encoder's
	Layers      uint64    `json:"block_count,omitempty"`
	Heads       uint64    `json:"head_count,omitempty"`
	FeedForward uint64    `json:"feed_forward_length,omitempty"`
	ImageSize   uint64    `json:"image_size,omitempty"`
	PatchSize   uint64    `json:"patch_size,omitempty"`
	MergeSize   uint64    `json:"spatial_merge_size,omitempty"`
	Output      uint64    `json:"output_length,omitempty"` // the language model's embedding size, where known
	ImageMean   []float32 `json:"image_mean,omitempty"`
	ImageStd    []float32 `json:"image_std,omitempty"`
}

// inspectProjector reads a projector's metadata, or returns nil for a
// file that is not one.
func inspectProjector(f *gguf.File) *ProjectorInfo {
	if f.Architecture() != "clip" {
		return nil
	}
	u := func(k string) uint64 {
		v, _ := f.Uint("clip.vision." + k)
		return v
	}
	p := &ProjectorInfo{Embd: u("embedding_length"), Layers: u("block_count"), Heads: u("attention.head_count"),
		FeedForward: u("feed_forward_length"), ImageSize: u("image_size"), PatchSize: u("patch_size"),
		MergeSize: u("spatial_merge_size")}
	p.Vision, _ = f.Bool("clip.has_vision_encoder")
	p.Audio, _ = f.Bool("clip.has_audio_encoder")
	p.Type, _ = f.String("clip.projector_type")
	if p.Type == "" {
		p.Type, _ = f.String("clip.vision.projector_type")
	}
	if v, ok := f.Lookup("clip.vision.image_mean"); ok {
		p.ImageMean = v.Float32s()
	}
	if v, ok := f.Lookup("clip.vision.image_std"); ok {
		p.ImageStd = v.Float32s()
	}
	// The output size: the last matrix of the projection, for the kinds
	// whose last matrix is known.
	if t, ok := f.Tensor("mm.2.weight"); ok && len(t.Dims) == 2 {
		p.Output = t.Dims[1]
	} else if t, ok := f.Tensor("mm.input_projection.weight"); ok && len(t.Dims) == 2 {
		p.Output = t.Dims[0]
	}
	return p
}
