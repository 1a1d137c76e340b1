package llama

// SetMemoryAvailable makes NewContext see n bytes available until restore
// is called.
func SetMemoryAvailable(n uint64) (restore func()) {
	old := memoryAvailable
	memoryAvailable = func() uint64 { return n }
	return func() { memoryAvailable = old }
}

// WidestStep is the most sequences one step of c's scheduler decoded
// together.
func WidestStep(c *Context) int {
	c.sched.mu.Lock()
	defer c.sched.mu.Unlock()
	return c.sched.widest
}

// MtmdDefaultMarker is mtmd's own media marker, which DefaultMediaMarker
// must equal.
var MtmdDefaultMarker = mtmdDefaultMarker
