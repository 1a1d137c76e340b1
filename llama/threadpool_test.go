package llama_test

import (
	"os"
	"runtime"
	"testing"

	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// osThreads counts the process's OS threads (Linux only).
func osThreads(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skipf("no /proc/self/task: %v", err)
	}
	return len(es)
}

// Each context owns its CPU threads: a pool of n-1 workers for generation
// and one of nBatch-1 for batches, started with the context, joined when
// it closes, and rebuilt by SetThreads when it asks for more threads than
// they hold. Greedy text does not depend on
// the thread count. (At most two threads: more threads than cores make
// ggml's spinning barriers wait for preempted threads at every operation.)
func TestContextThreadpools(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts threads through /proc")
	}
	m := testllama.Load(t, "stories260K.gguf")
	one := testllama.NewContext(t, m, llama.WithThreads(1), llama.WithBatchThreads(1))
	want := mustGenerate(t, one, storiesPrompt, greedy(40)...).text

	before := osThreads(t)
	const n = 8
	var cs []*llama.Context
	for range n {
		cs = append(cs, testllama.NewContext(t, m, llama.WithThreads(2), llama.WithBatchThreads(1)))
	}
	// One generation worker per context (the caller is the other thread);
	// the batch pool of one thread has none.
	if got := osThreads(t) - before; got < n {
		t.Errorf("%d contexts of 2+1 threads added %d OS threads, want at least %d", n, got, n)
	}
	for i, c := range cs {
		if got := mustGenerate(t, c, storiesPrompt, greedy(40)...).text; got != want {
			t.Errorf("context %d, 2 threads: %q, want the one-thread text %q", i, got, want)
		}
	}
	if err := cs[0].SetThreads(1, 2); err != nil {
		t.Fatal(err)
	}
	if g, b := cs[0].Threads(); g != 1 || b != 2 {
		t.Errorf("Threads() = %d, %d after SetThreads(1, 2)", g, b)
	}
	cs[0].ClearMemory()
	if got := mustGenerate(t, cs[0], storiesPrompt, greedy(40)...).text; got != want {
		t.Errorf("after SetThreads(1, 2): %q, want %q", got, want)
	}
	// Going back and forth reuses the pools, which are never made smaller.
	n0 := osThreads(t)
	for i := range 20 {
		if err := cs[0].SetThreads(1+i%2, 2-i%2); err != nil {
			t.Fatal(err)
		}
	}
	if got := osThreads(t) - n0; got > 0 {
		t.Errorf("20 calls of SetThreads between (1, 2) and (2, 1) started %d OS threads", got)
	}
	cs[0].ClearMemory()
	if got := mustGenerate(t, cs[0], storiesPrompt, greedy(40)...).text; got != want {
		t.Errorf("after SetThreads back and forth: %q, want %q", got, want)
	}
	for _, c := range cs {
		c.Close()
		c.Close()
	}
	// The workers are joined; the Go runtime may have started a thread
	// or two of its own meanwhile.
	if got := osThreads(t) - before; got > 3 {
		t.Errorf("%d more OS threads after closing every context", got)
	}
}
