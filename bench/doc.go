// Package bench is the benchmark runner of `llamago bench`: the timed
// loops (Run, with llama-bench's method for pp and tg, and end-to-end
// generations through package llama's sequences, several at once with
// Test.Parallel), the statistics of repeated measurements, the result
// record with llama-bench's field names, the report formats (markdown,
// CSV, JSON, JSON Lines), the plot, and measurements of the machine
// (memory bandwidth, peak RSS).
//
// Speed is half of choosing a quantization; the other half is quality.
// SaveKLBase saves a base model's log-probabilities over a text
// (Context.Perplexity's scored tokens, 16 bits each, identified by model,
// text and window) and CompareKL compares a quantization with them: KL
// divergence, top-1 agreement and the perplexity ratio, as
// llama-perplexity's --kl-divergence reports them. QuantResult,
// QuantsMarkdown and QuantsPlot make `llamago quants`' speed-versus-quality
// report.
//
// The command keeps its flags and output; the C baseline loop is package
// llama's (Context.NativeBench).
package bench
