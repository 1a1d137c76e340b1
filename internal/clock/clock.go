// Package clock reads a monotonic clock fine enough to time one token.
//
// Go's own monotonic clock is that on Linux and macOS, but on Windows it is
// the system's interrupt time, which advances once per timer tick (15.6 ms
// unless some program asked for a finer one): a test of a small model would
// measure 0, or a whole tick. There the clock reads
// QueryPerformanceCounter instead.
package clock

import "time"

// A Time is a reading of the clock; only differences of readings mean
// anything.
type Time struct{ t reading }

// Now reads the clock.
func Now() Time { return Time{now()} }

// Since is the time elapsed since t.
func Since(t Time) time.Duration { return Now().Sub(t) }

// Sub is the time from u to t.
func (t Time) Sub(u Time) time.Duration { return sub(t.t, u.t) }
