package llama_test

import (
	"context"
	"testing"

	"github.com/llamago/llamago/llama"
)

// Several texts of different lengths on a causal model with mean pooling
// (a server's /v1/embeddings request) must not trip llama.cpp's
// assertions when the embeddings context is made.
func TestEmbedSeveralTextsCausal(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	for _, texts := range [][]string{
		{"Once upon a time", "hello"},
		{"a", "bb", "ccc"},
		{"Once upon a time there was a little girl", "hi", "the end", "x"},
	} {
		vecs, err := m.Embed(context.Background(), texts, llama.WithPooling(llama.PoolingMean), llama.WithEmbedContext(llama.WithThreads(1)))
		if err != nil {
			t.Fatalf("%q: %v", texts, err)
		}
		if len(vecs) != len(texts) {
			t.Fatalf("%d vectors for %d texts", len(vecs), len(texts))
		}
	}
}
