package llama_test

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/llamago/llamago/llama"
)

// stderrOf runs f with the process's file descriptor 2 (where ggml writes
// what does not go through its log) in a pipe, and returns what was
// written there.
func stderrOf(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved, err := syscall.Dup(2)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	if err := syscall.Dup3(int(w.Fd()), 2, 0); err != nil {
		t.Fatal(err)
	}
	f()
	syscall.Dup3(saved, 2, 0)
	syscall.Close(saved)
	w.Close()
	out := <-done
	r.Close()
	return out
}

// TestQuantizeQuiet: a model quantization refuses is refused without a
// word on stderr (ggml's row validation wrote there).
func TestQuantizeQuiet(t *testing.T) {
	src := modelWithValue(t, "blk.0.attn_q.weight", 3, float32(nan()))
	var err error
	out := stderrOf(t, func() {
		err = llama.Quantize(t.Context(), src, filepath.Join(t.TempDir(), "out.gguf"), mustFileType(t, "F16"))
	})
	if err == nil || out != "" {
		t.Errorf("Quantize: %v, stderr %q", err, out)
	}
}
