package llama

// SetMemoryAvailable makes NewContext see n bytes available until restore
// is called.
func SetMemoryAvailable(n uint64) (restore func()) {
	old := memoryAvailable
	memoryAvailable = func() uint64 { return n }
	return func() { memoryAvailable = old }
}
