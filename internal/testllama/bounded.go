package testllama

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Limits of Bounded: far beyond what any one input should take, so that
// they catch only work or memory without end.
const (
	BoundedTime   = 60 * time.Second
	BoundedMemory = 4 << 30 // bytes of resident memory above the start
)

// Bounded runs f, the body of a fuzz target, under a time and a memory
// limit: if f runs past BoundedTime, or the process's resident memory
// grows by more than BoundedMemory while it runs, the process panics with
// input, which the fuzzer then records as a crasher. f may be stuck in a
// C call that no Go code can interrupt, hence the panic rather than a test
// failure. (Where the resident memory cannot be read, only the time is
// limited.)
func Bounded(input string, f func()) {
	done := make(chan struct{})
	start := rss()
	go func() {
		deadline := time.After(BoundedTime)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-deadline:
				panic(fmt.Sprintf("fuzz input ran for more than %v: %.500q", BoundedTime, input))
			case <-tick.C:
				if now := rss(); start > 0 && now > start+BoundedMemory {
					panic(fmt.Sprintf("fuzz input grew the resident memory by %d MiB: %.500q", (now-start)>>20, input))
				}
			}
		}
	}()
	defer close(done)
	f()
}

// rss is the process's resident memory in bytes, 0 if unknown.
func rss() uint64 {
	if runtime.GOOS != "linux" {
		return 0
	}
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
