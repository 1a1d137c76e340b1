// Package bench is the benchmark runner of `llamago bench`: the timed
// loops (Run, with llama-bench's method for pp and tg, and end-to-end
// generations through package llama's sequences, several at once with
// Test.Parallel), the statistics of repeated measurements, the result
// record with llama-bench's field names, the report formats (markdown,
// CSV, JSON, JSON Lines), the plot, and measurements of the machine
// (memory bandwidth, peak RSS).
//
// The command keeps its flags and output; the C baseline loop is package
// llama's (Context.NativeBench).
package bench
