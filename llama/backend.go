package llama

/*
#include "llama.h"
#include "ggml-backend.h"
#include "shim.h"
*/
import "C"

import (
	"bufio"
	"os"
	"runtime"
	"strings"
	"sync"
)

// initBackend is the package's one-time initialisation: llama.cpp's log
// goes to SetLogger's logger, and the backends are initialised. Every entry
// point that reaches llama.cpp calls it first.
var initBackend = sync.OnceFunc(func() {
	C.llama_log_set(C.ggml_log_callback(C.llamago_log), nil)
	C.llama_backend_init()
})

// SystemInfo returns llama.cpp's description of the CPU features and
// backends compiled in, for example "CPU : AVX2 = 1 | ... | REPACK = 1".
func SystemInfo() string {
	initBackend()
	return strings.TrimSpace(C.GoString(C.llama_print_system_info()))
}

// DeviceType says what kind of hardware a Device is.
type DeviceType int

// Device types, as ggml reports them.
const (
	DeviceCPU DeviceType = iota
	DeviceGPU
	DeviceIntegratedGPU
	DeviceAccelerator
)

func (t DeviceType) String() string {
	switch t {
	case DeviceCPU:
		return "CPU"
	case DeviceGPU:
		return "GPU"
	case DeviceIntegratedGPU:
		return "iGPU"
	case DeviceAccelerator:
		return "ACCEL"
	}
	return "unknown"
}

// Device is a ggml backend device: the CPU or an accelerator.
type Device struct {
	Name        string
	Description string
	Type        DeviceType
	FreeMemory  uint64 // bytes
	TotalMemory uint64 // bytes
}

// Devices lists the ggml backend devices in the order ggml registered them.
func Devices() []Device {
	initBackend()
	n := int(C.ggml_backend_dev_count())
	devs := make([]Device, 0, n)
	for i := range n {
		d := C.ggml_backend_dev_get(C.size_t(i))
		var free, total C.size_t
		C.ggml_backend_dev_memory(d, &free, &total)
		var t DeviceType
		switch C.ggml_backend_dev_type(d) {
		case C.GGML_BACKEND_DEVICE_TYPE_GPU:
			t = DeviceGPU
		case C.GGML_BACKEND_DEVICE_TYPE_IGPU:
			t = DeviceIntegratedGPU
		case C.GGML_BACKEND_DEVICE_TYPE_ACCEL:
			t = DeviceAccelerator
		}
		devs = append(devs, Device{
			Name:        C.GoString(C.ggml_backend_dev_name(d)),
			Description: C.GoString(C.ggml_backend_dev_description(d)),
			Type:        t,
			FreeMemory:  uint64(free),
			TotalMemory: uint64(total),
		})
	}
	return devs
}

// SupportsMmap reports whether models can be memory-mapped on this system.
func SupportsMmap() bool { initBackend(); return bool(C.llama_supports_mmap()) }

// SupportsMlock reports whether model memory can be locked in RAM.
func SupportsMlock() bool { initBackend(); return bool(C.llama_supports_mlock()) }

// SupportsGPUOffload reports whether a GPU backend is available for
// offloading layers.
func SupportsGPUOffload() bool { initBackend(); return bool(C.llama_supports_gpu_offload()) }

// MaxSequences is the most parallel sequences a Context can hold.
func MaxSequences() int { return int(C.llama_max_parallel_sequences()) }

// DefaultThreads is the thread count used when none is set: the number of
// physical cores, never more than the CPUs this process may run on.
// Hyper-threads slow ggml down, and so does oversubscription.
func DefaultThreads() int { return defaultThreads() }

var defaultThreads = sync.OnceValue(func() int {
	n := runtime.NumCPU()
	if p := physicalCores(); p > 0 && p < n {
		n = p
	}
	return max(n, 1)
})

// physicalCores counts distinct (package, core) pairs in /proc/cpuinfo; 0
// where that is not available.
func physicalCores() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	cores := map[string]bool{}
	var phys string
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "physical id":
			phys = strings.TrimSpace(v)
		case "core id":
			cores[phys+"/"+strings.TrimSpace(v)] = true
		}
	}
	return len(cores)
}
