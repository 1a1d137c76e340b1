package llama

import (
	"syscall"
	"unsafe"
)

var procGetLogicalProcessorInformation = syscall.NewLazyDLL("kernel32.dll").NewProc("GetLogicalProcessorInformation")

// systemPhysicalCores counts the processor cores (RelationProcessorCore
// entries of GetLogicalProcessorInformation) of the process's processor
// group; 0 if the call fails.
func systemPhysicalCores() int {
	// SYSTEM_LOGICAL_PROCESSOR_INFORMATION: ProcessorMask (ULONG_PTR),
	// Relationship (an enum, int), and a 16-byte union.
	type info struct {
		mask         uintptr
		relationship uint32
		_            [4]byte
		_            [16]byte
	}
	if procGetLogicalProcessorInformation.Find() != nil {
		return 0
	}
	var size uint32
	procGetLogicalProcessorInformation.Call(0, uintptr(unsafe.Pointer(&size)))
	if size == 0 {
		return 0
	}
	buf := make([]info, int(size)/int(unsafe.Sizeof(info{}))+1)
	size = uint32(len(buf)) * uint32(unsafe.Sizeof(info{}))
	if r, _, _ := procGetLogicalProcessorInformation.Call(uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size))); r == 0 {
		return 0
	}
	n := 0
	for _, e := range buf[:int(size)/int(unsafe.Sizeof(info{}))] {
		if e.relationship == 0 { // RelationProcessorCore
			n++
		}
	}
	return n
}
