//go:build race

package main

// raceEnabled: the test binary has the race detector, and so the binary
// TestBinary builds, to reuse the cached build of llama.cpp.
const raceEnabled = true
