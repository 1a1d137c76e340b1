//go:build llama_system

package llama_test

import (
	"errors"
	"testing"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// The llama_system build has no multimodal library: projectors are
// refused with ErrNoVision, before llama.cpp sees the file.
func TestLoadProjectorNoVision(t *testing.T) {
	_, pp := testllama.VisionPair(t, "tiny-llava")
	m := loadModel(t, "stories260K.gguf")
	if p, err := m.LoadProjector(pp); !errors.Is(err, llama.ErrNoVision) || p != nil {
		t.Errorf("LoadProjector: %v, want ErrNoVision", err)
	}
}
