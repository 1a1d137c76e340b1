package llama_test

import (
	"errors"
	"io/fs"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// TestAdapter: a LoRA adapter changes what the model generates in the
// contexts that apply it, at the scale each gives, and in no other; a
// closed adapter stays with the contexts that apply it.
func TestAdapter(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	lora := testllama.LoRA(t, "stories260K.gguf", 4, 1)
	a, err := m.LoadAdapter(lora)
	if err != nil {
		t.Fatal(err)
	}
	if a.Path() != lora {
		t.Errorf("Path() = %q", a.Path())
	}
	base := newContext(t, m)
	want := mustGenerate(t, base, storiesPrompt, greedy(30)...).text

	c := newContext(t, m, llama.WithAdapter(a, 1))
	adapted := mustGenerate(t, c, storiesPrompt, greedy(30)...).text
	if adapted == want {
		t.Fatalf("with the adapter the text is the base model's: %q", adapted)
	}
	if got := c.Adapters(); len(got) != 1 || got[a] != 1 {
		t.Errorf("Adapters() = %v", got)
	}
	// Again, from the cache computed with the adapter.
	if again := mustGenerate(t, c, storiesPrompt, greedy(30)...).text; again != adapted {
		t.Errorf("second generation with the adapter %q, want %q", again, adapted)
	}
	// The base context is untouched; scale 0 is the base model, another
	// scale another text.
	if got := mustGenerate(t, base, storiesPrompt, greedy(30)...).text; got != want {
		t.Errorf("base context after another applied the adapter: %q, want %q", got, want)
	}
	if got := mustGenerate(t, newContext(t, m, llama.WithAdapter(a, 0)), storiesPrompt, greedy(30)...).text; got != want {
		t.Errorf("at scale 0: %q, want the base model's %q", got, want)
	}
	half := mustGenerate(t, newContext(t, m, llama.WithAdapter(a, 0.5)), storiesPrompt, greedy(30)...).text
	if half == want || half == adapted {
		t.Errorf("at scale 0.5 the text is another scale's: %q", half)
	}
	// Two adapters at once.
	a2, err := m.LoadAdapter(testllama.LoRA(t, "stories260K.gguf", 4, 2))
	if err != nil {
		t.Fatal(err)
	}
	both := mustGenerate(t, newContext(t, m, llama.WithAdapter(a, 1), llama.WithAdapter(a2, 1)), storiesPrompt, greedy(30)...).text
	if both == adapted || both == want {
		t.Errorf("with two adapters the text is one adapter's or none's: %q", both)
	}

	// Closed, it stays with the contexts that apply it, and no new one
	// can.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if got := mustGenerate(t, c, storiesPrompt, greedy(30)...).text; got != adapted {
		t.Errorf("after Close, the context that applies it: %q, want %q", got, adapted)
	}
	if _, err := m.NewContext(llama.WithAdapter(a, 1)); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("WithAdapter of a closed adapter: %v", err)
	}
	c.Close()

	// Bad arguments.
	for _, s := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		if _, err := m.NewContext(llama.WithAdapter(a2, s)); !errors.Is(err, llama.ErrInvalidArgument) {
			t.Errorf("scale %v: %v", s, err)
		}
	}
	if _, err := m.NewContext(llama.WithAdapter(nil, 1)); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("nil adapter: %v", err)
	}
	if _, err := m.NewContext(llama.WithAdapter(a2, 1), llama.WithAdapter(a2, 0.5)); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("the same adapter twice: %v", err)
	}
	other := loadModel(t, "stories260K.gguf")
	if _, err := other.NewContext(llama.WithAdapter(a2, 1)); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("adapter of another model: %v", err)
	}
	// Closing the model closes its adapters and contexts.
	c2 := newContext(t, m, llama.WithAdapter(a2, 1))
	m.Close()
	if _, err := c2.Complete(t.Context(), storiesPrompt); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("after the model's Close: %v", err)
	}
	a2.Close()
	if _, err := m.LoadAdapter(lora); !errors.Is(err, llama.ErrClosed) {
		t.Errorf("LoadAdapter on a closed model: %v", err)
	}
}

// TestAdapterConcurrentClose: closing an adapter while contexts are being
// made with it and apply it is safe (run with -race).
func TestAdapterConcurrentClose(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	lora := testllama.LoRA(t, "stories260K.gguf", 4, 1)
	for range 5 {
		a, err := m.LoadAdapter(lora)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithAdapter(a, 1))
				if err != nil {
					if !errors.Is(err, llama.ErrClosed) {
						t.Error(err)
					}
					return
				}
				defer c.Close()
				for _, err := range c.Generate(t.Context(), storiesPrompt, greedy(5)...) {
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Go(func() { a.Close() })
		wg.Wait()
	}
}

// TestAdapterBadFiles: files that are not LoRA adapters of the model are
// refused with a clear error, and the model goes on working.
func TestAdapterBadFiles(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	lora := testllama.LoRA(t, "stories260K.gguf", 4, 1)
	check := func(name, path string, want error, says string) {
		t.Helper()
		a, err := m.LoadAdapter(path)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want %v saying %q", name, err, want, says)
		}
		if a != nil {
			a.Close()
		}
	}
	check("missing", "/nonexistent/lora.gguf", fs.ErrNotExist, "lora.gguf")
	check("a model", modelPath(t, "stories260K.gguf"), llama.ErrInvalidModel, "not an adapter")
	check("truncated", modelPath(t, "ollama-test-truncated.gguf"), gguf.ErrNotGGUF, "too short")
	check("another model's", testllama.LoRA(t, "llama-2-tiny-random.gguf", 4, 1), llama.ErrInvalidModel, "do not fit the model's")
	check("i8 matrices", rewriteFile(t, lora, func(f *gguf.File) {
		for i := range f.Tensors {
			f.Tensors[i].Type = gguf.TensorI8
		}
	}), llama.ErrInvalidModel, "cannot multiply")
	check("another kind", rewriteFile(t, lora, func(f *gguf.File) { setKV(f, "adapter.type", gguf.StringValue("cvec")) }), llama.ErrInvalidModel, "not a LoRA")
	check("a stray tensor", rewriteFile(t, lora, func(f *gguf.File) { f.Tensors[0].Name = "blk.0.attn_q.weight" }), llama.ErrInvalidModel, "not a LoRA matrix")
	check("a missing half", rewriteFile(t, lora, func(f *gguf.File) { f.Tensors = f.Tensors[1:] }), llama.ErrInvalidModel, "could not load it")
	check("transposed", rewriteFile(t, lora, func(f *gguf.File) {
		f.Tensors[0].Dims[0], f.Tensors[0].Dims[1] = f.Tensors[0].Dims[1], f.Tensors[0].Dims[0]
	}), llama.ErrInvalidModel, "do not fit the model's")
	// llama.cpp checks two dimensions; ggml would abort on a third.
	check("three-dimensional", rewriteFile(t, lora, func(f *gguf.File) {
		f.Tensors[0].Dims = append(f.Tensors[0].Dims, 2)
	}), llama.ErrInvalidModel, "do not fit the model's")
	check("token_embd mismatch", rewriteFile(t, lora, func(f *gguf.File) {
		f.Tensors[0].Name, f.Tensors[1].Name = "token_embd.weight.lora_a", "token_embd.weight.lora_b"
		f.Tensors[0].Dims = []uint64{4, 512}
		f.Tensors[1].Dims = []uint64{8, 64} // rank 8 against A's 4
	}), llama.ErrInvalidModel, "do not fit the model's")

	c := newContext(t, m)
	if r := mustGenerate(t, c, storiesPrompt, greedy(20)...); !strings.HasPrefix(storiesPrefix, r.text) {
		t.Errorf("after the bad adapters: %q", r.text)
	}
}
