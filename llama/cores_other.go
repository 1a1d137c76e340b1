//go:build !windows

package llama

// systemPhysicalCores is 0: physicalCores reads /proc/cpuinfo instead.
func systemPhysicalCores() int { return 0 }
