//go:build unix

package bench

import (
	"runtime"
	"syscall"
)

// maxRSS is getrusage's maxrss in bytes, 0 if it fails.
func maxRSS() uint64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	n := uint64(ru.Maxrss)
	if runtime.GOOS != "darwin" { // kilobytes, but bytes on macOS
		n <<= 10
	}
	return n
}
