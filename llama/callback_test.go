package llama_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
)

// panicHandler is a slog handler that panics on every record.
type panicHandler struct{}

func (panicHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (panicHandler) Handle(context.Context, slog.Record) error { panic("handler boom") }
func (h panicHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h panicHandler) WithGroup(string) slog.Handler           { return h }

// TestCallbackPanics: a panic in a function of the caller's that llama.cpp
// calls (the load progress function, the slog handler) is recovered where
// llama.cpp calls it, not unwound through its frames, and the call returns
// it as a *CallbackPanic; the next load works.
func TestCallbackPanics(t *testing.T) {
	path := modelPath(t, "stories260K.gguf")
	_, err := llama.Load(t.Context(), path, llama.WithProgress(func(float32) bool { panic("progress boom") }))
	var p *llama.CallbackPanic
	if !errors.As(err, &p) || p.Callback != "progress" || p.Value != "progress boom" {
		t.Errorf("Load with a panicking progress function: %v", err)
	}

	llama.SetLogger(slog.New(panicHandler{}))
	m, err := llama.Load(t.Context(), path)
	llama.SetLogger(nil)
	if err == nil {
		m.Close()
	}
	if !errors.As(err, &p) || p.Callback != "log" || p.Value != "handler boom" {
		t.Errorf("Load with a panicking log handler: %v", err)
	}

	m = loadModel(t, "stories260K.gguf")
	if r := mustGenerate(t, newContext(t, m), storiesPrompt, greedy(8)...); !strings.HasPrefix(storiesPrefix, r.text) && !strings.HasPrefix(r.text, storiesPrefix) {
		t.Errorf("after the panics: %q", r.text)
	}
}

// TestLlamaCppReasons: when llama.cpp refuses a file that passed the Go
// checks, the error carries the reason it logged, logger or not.
func TestLlamaCppReasons(t *testing.T) {
	// A vocabulary file has no weights: loaded as a model, a tensor is
	// missing.
	vocab := modelPath(t, "vocab/ggml-vocab-llama-spm.gguf")
	_, err := llama.Load(t.Context(), vocab)
	var le *llama.LoadError
	if !errors.As(err, &le) || !strings.Contains(le.Reason, "missing tensor 'token_embd.weight'") {
		t.Errorf("Load of a vocabulary: %v", err)
	}

	// stories260K's feed-forward rows (172 values) do not divide into
	// Q8_0's blocks: llama.cpp says so.
	err = llama.Quantize(t.Context(), modelPath(t, "stories260K.gguf"), filepath.Join(t.TempDir(), "q8.gguf"), mustFileType(t, "Q8_0"))
	if err == nil || !strings.HasSuffix(err.Error(), "to Q8_0: Unsupported tensor size encountered") {
		t.Errorf("Quantize to Q8_0: %v", err)
	}
}

func mustFileType(t *testing.T, name string) llama.FileType {
	t.Helper()
	ft, err := llama.ParseFileType(name)
	if err != nil {
		t.Fatal(err)
	}
	return ft
}

// TestQuantizeNonFinite: weights that quantization cannot represent are
// refused before llama.cpp quantizes them (it found them afterwards, and
// printed ggml's lines about them to stderr), naming the tensor.
func TestQuantizeNonFinite(t *testing.T) {
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(-1)), 1e6} {
		src := modelWithValue(t, "blk.1.ffn_up.weight", 7, v)
		typ, want := "Q8_0", "tensor blk.1.ffn_up.weight holds"
		if v == 1e6 {
			typ, want = "F16", "beyond F16's range"
		}
		err := llama.Quantize(t.Context(), src, filepath.Join(t.TempDir(), "out.gguf"), mustFileType(t, typ))
		if !errors.Is(err, llama.ErrInvalidModel) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "element 7") {
			t.Errorf("%v to %s: %v", v, typ, err)
		}
	}
	// Large F32 values quantize to a type other than F16.
	if err := llama.Quantize(t.Context(), modelWithValue(t, "blk.1.ffn_up.weight", 7, 1e6), filepath.Join(t.TempDir(), "out.gguf"), mustFileType(t, "BF16")); err != nil {
		t.Errorf("1e6 to BF16: %v", err)
	}
}

// modelWithValue is stories260K (F32) with element i of tensor name set to
// v.
func modelWithValue(t *testing.T, name string, i int, v float32) string {
	t.Helper()
	src := modelPath(t, "stories260K.gguf")
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), "model.gguf")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	err = gguf.Write(out, f, func(k int, w io.Writer) error {
		b, err := io.ReadAll(f.TensorReader(in, k))
		if err != nil {
			return err
		}
		if f.Tensors[k].Name == name {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		_, err = w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func nan() float64 { return math.NaN() }
