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
// goes to SetLogger's logger, the GPU backend libraries of
// BackendSearchPath are loaded (BackendLoads), the backends are
// initialised, a portable build may swap its CPU backend for a faster
// library (CPUVariant), and a CPU backend built without the SIMD this CPU
// has is reported (MissingCPUFeatures). Every entry point that reaches
// llama.cpp calls it first.
var initBackend = sync.OnceFunc(func() {
	C.llama_log_set(C.ggml_log_callback(C.llamago_log), nil)
	loadBackends()
	C.llama_backend_init()
	loadCPUVariant()
	checkCPUBuild()
	logBuildInfo()
})

// SystemInfo returns llama.cpp's description of the CPU features and
// backends compiled in, for example "CPU : AVX2 = 1 | ... | REPACK = 1".
// If ggml's CPU code was built without SIMD features this CPU has
// (MissingCPUFeatures), it ends with a warning that names them and the fix.
func SystemInfo() string {
	initBackend()
	s := strings.TrimSpace(C.GoString(C.llama_print_system_info()))
	if len(cpuMissing) > 0 {
		s += " WARNING: " + cpuWarning()
	}
	return s
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

// MarshalText encodes the type as String does ("GPU"), for JSON.
func (t DeviceType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText decodes what MarshalText encodes.
func (t *DeviceType) UnmarshalText(b []byte) error {
	for _, c := range []DeviceType{DeviceCPU, DeviceGPU, DeviceIntegratedGPU, DeviceAccelerator} {
		if c.String() == string(b) {
			*t = c
			return nil
		}
	}
	return invalidArg("device type %q", b)
}

// Device is a ggml backend device: the CPU or an accelerator.
type Device struct {
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Type        DeviceType `json:"type"`
	FreeMemory  uint64     `json:"free_memory"`  // bytes
	TotalMemory uint64     `json:"total_memory"` // bytes
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

// physicalCores counts distinct (package, core) pairs in /proc/cpuinfo, or
// asks the system where it can (systemPhysicalCores: Windows); 0 where
// neither is available.
func physicalCores() int {
	if n := systemPhysicalCores(); n > 0 {
		return n
	}
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
