package llama_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

func TestModelInfo(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	if m.Architecture() != "llama" || m.Layers() != 5 || m.EmbeddingSize() != 64 || m.Heads() != 8 ||
		m.KVHeads() != 4 || m.TrainedContext() != 2048 || m.VocabOnly() {
		t.Errorf("arch %q layers %d embd %d heads %d/%d ctx %d vocab-only %v", m.Architecture(), m.Layers(),
			m.EmbeddingSize(), m.Heads(), m.KVHeads(), m.TrainedContext(), m.VocabOnly())
	}
	if m.ParameterCount() == 0 || m.Size() == 0 || m.Size() > 1185376 || !strings.HasPrefix(m.Description(), "llama") {
		t.Errorf("params %d size %d desc %q", m.ParameterCount(), m.Size(), m.Description())
	}
	if enc, err := m.HasEncoder(); enc || err != nil {
		t.Errorf("HasEncoder = %v, %v", enc, err)
	}
	if m.ChatTemplate() != "" {
		t.Errorf("stories260K has a chat template: %q", m.ChatTemplate())
	}
	if v, ok := m.Metadata("llama.block_count"); !ok || v != "5" {
		t.Errorf("Metadata(llama.block_count) = %q, %v", v, ok)
	}
	if _, ok := m.Metadata("no.such.key"); ok {
		t.Error("Metadata of a missing key")
	}
	all := map[string]string{}
	for k, v := range m.AllMetadata() {
		all[k] = v
	}
	if all["general.architecture"] != "llama" || all["llama.embedding_length"] != "64" || len(all) < 10 {
		t.Errorf("AllMetadata: %v", all)
	}
	for range m.AllMetadata() {
		break // stopping early is fine
	}

	// Vocab-only: hyperparameters are not loaded (and must not crash).
	v := loadModel(t, "stories260K.gguf", llama.WithVocabOnly())
	if !v.VocabOnly() || v.Layers() != 0 || v.Heads() != 0 || v.VocabSize() != 512 {
		t.Errorf("vocab-only: %v layers %d heads %d vocab %d", v.VocabOnly(), v.Layers(), v.Heads(), v.VocabSize())
	}
	phi := loadModel(t, "vocab/ggml-vocab-phi-3.gguf", llama.WithVocabOnly())
	if !strings.Contains(phi.ChatTemplate(), "<|user|>") {
		t.Errorf("phi-3 chat template %q", phi.ChatTemplate())
	}
}

func TestLoadCancel(t *testing.T) {
	path := modelPath(t, "stories260K.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if m, err := llama.Load(ctx, path); !errors.Is(err, context.Canceled) || m != nil {
		t.Errorf("Load with a cancelled context: %v", err)
	}
	calls := 0
	m, err := llama.Load(context.Background(), path, llama.WithProgress(func(float32) bool { calls++; return false }))
	if !errors.Is(err, context.Canceled) || m != nil || calls == 0 {
		t.Errorf("Load stopped by WithProgress: %v after %d calls", err, calls)
	}
	var last float32
	m, err = llama.Load(context.Background(), path, llama.WithProgress(func(f float32) bool {
		if f < last {
			t.Errorf("progress went back from %v to %v", last, f)
		}
		last = f
		return true
	}))
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if last != 1 {
		t.Errorf("progress ended at %v", last)
	}
}

// TestMetadataOverrides: overrides take effect, and are checked like the
// file's own metadata before llama.cpp sees them.
func TestMetadataOverrides(t *testing.T) {
	path := modelPath(t, "stories260K.gguf")
	m, err := llama.Load(context.Background(), path, llama.WithMetadataOverride("llama.context_length", 1024))
	if err != nil {
		t.Fatal(err)
	}
	if m.TrainedContext() != 1024 {
		t.Errorf("TrainedContext %d with the override 1024", m.TrainedContext())
	}
	m.Close()

	for _, tt := range []struct {
		key   string
		value any
	}{
		{"llama.block_count", 0},
		{"llama.block_count", -1},
		{"llama.block_count", int64(1 << 20)},
		{"llama.block_count", "five"},
		{"llama.embedding_length", 0},
		{"llama.context_length", -5},
		{"llama.attention.head_count", 0},
		{"llama.expert_count", 100000},
		{"llama.rope.scaling.type", "bogus"},
		{"general.architecture", "gpt2"}, // gpt2.block_count is missing
		{"tokenizer.ggml.model", "bert"}, // byte tokens in WordPiece: llama.cpp aborts
	} {
		for _, vocabOnly := range []bool{false, true} {
			opts := []llama.ModelOption{llama.WithMetadataOverride(tt.key, tt.value)}
			if vocabOnly {
				if !strings.HasPrefix(tt.key, "tokenizer.") {
					continue // hyperparameters are not used vocab-only
				}
				opts = append(opts, llama.WithVocabOnly())
			}
			err := loadErr(t, path, opts...)
			if !errors.Is(err, llama.ErrInvalidModel) {
				t.Errorf("override %s=%v (vocab only %v): %v, want ErrInvalidModel", tt.key, tt.value, vocabOnly, err)
			}
		}
	}

	// A model without a vocabulary loads vocab-only, but cannot tokenize:
	// llama.cpp would assert.
	m, err = llama.Load(context.Background(), path, llama.WithVocabOnly(), llama.WithMetadataOverride("tokenizer.ggml.model", "none"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.VocabType() != llama.VocabNone || m.VocabSize() != 0 {
		t.Errorf("VocabType %v VocabSize %d", m.VocabType(), m.VocabSize())
	}
	if _, err := m.Tokenize("Once", llama.AddSpecial); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Tokenize without a vocabulary: %v", err)
	}
	if _, err := m.TokenToPiece(0, false); !errors.Is(err, llama.ErrInvalidToken) {
		t.Errorf("TokenToPiece without a vocabulary: %v", err)
	}
	if s, err := m.Detokenize(nil, false, false); s != "" || err != nil {
		t.Errorf("Detokenize(nil) without a vocabulary: %q %v", s, err)
	}
	if m.IsEOG(0) || m.BOS() != llama.NullToken {
		t.Error("special tokens without a vocabulary")
	}
}
