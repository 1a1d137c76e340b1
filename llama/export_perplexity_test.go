package llama

// CheckPerplexity runs the C computation of llama-perplexity's method
// (perplexity_check.c) on text in c.
func CheckPerplexity(c *Context, text string, window, nBatch, chunks int) (running []float64, nll, nll2 float64, count int, err error) {
	return c.checkPerplexity(text, window, nBatch, chunks)
}
