package clock

import (
	"sync"
	"syscall"
	"time"
	"unsafe"
)

type reading = int64 // QueryPerformanceCounter's count

var (
	kernel32  = syscall.NewLazyDLL("kernel32.dll")
	qpc       = kernel32.NewProc("QueryPerformanceCounter")
	qpf       = kernel32.NewProc("QueryPerformanceFrequency")
	qpcAddr   = sync.OnceValue(func() uintptr { return qpc.Addr() })
	frequency = sync.OnceValue(func() int64 {
		var f int64
		qpf.Call(uintptr(unsafe.Pointer(&f)))
		return max(f, 1)
	})
)

// now calls QueryPerformanceCounter through syscall.SyscallN, which, unlike
// LazyProc.Call, leaves the counter on the stack: reading the clock
// allocates nothing.
func now() reading {
	var c int64
	syscall.SyscallN(qpcAddr(), uintptr(unsafe.Pointer(&c)))
	return c
}

func sub(t, u reading) time.Duration {
	d, f := t-u, frequency()
	return time.Duration(d/f)*time.Second + time.Duration(d%f*int64(time.Second)/f)
}
