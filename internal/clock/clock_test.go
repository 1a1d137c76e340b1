package clock

import (
	"testing"
	"time"
)

// TestResolution: the clock sees a busy wait of 50 µs, which Go's own
// monotonic clock on Windows (the interrupt time) does not, and agrees with
// time.Sleep over longer spans.
func TestResolution(t *testing.T) {
	start := Now()
	for time.Duration(0) == Since(start) {
	}
	if d := Since(start); d <= 0 || d > 10*time.Millisecond {
		t.Errorf("first tick of the clock after %v", d)
	}
	start = Now()
	for Since(start) < 50*time.Microsecond {
	}
	if d := Since(start); d > 10*time.Millisecond {
		t.Errorf("a 50 µs wait took %v", d)
	}
	start = Now()
	time.Sleep(20 * time.Millisecond)
	if d := Since(start); d < 19*time.Millisecond || d > 2*time.Second {
		t.Errorf("a 20 ms sleep measured %v", d)
	}
	if a, b := Now(), Now(); b.Sub(a) < 0 {
		t.Errorf("the clock went back %v", b.Sub(a))
	}
}

// TestAllocs: reading the clock allocates nothing (Generate's per-token
// path reads it).
func TestAllocs(t *testing.T) {
	start := Now()
	if n := testing.AllocsPerRun(100, func() { _ = Since(start) }); n != 0 {
		t.Errorf("%v allocations per reading", n)
	}
}
