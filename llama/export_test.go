package llama

// WidestStep is the most sequences one step of c's scheduler decoded
// together.
func WidestStep(c *Context) int {
	c.sched.mu.Lock()
	defer c.sched.mu.Unlock()
	return c.sched.widest
}
