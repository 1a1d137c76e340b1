package llama_test

import (
	"context"
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

const storiesPrefix = ", there was a little girl named Lily. She loved to play outside in the park."

func TestGreedyStories(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m)
	res, err := c.Complete(context.Background(), "Once upon a time", llama.WithMaxTokens(40), llama.WithSampling(llama.WithGreedy()))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%q %+v", res.Text, res.Stats)
	if !strings.HasPrefix(res.Text, storiesPrefix) {
		t.Fatalf("greedy text = %q, want prefix %q", res.Text, storiesPrefix)
	}
}
