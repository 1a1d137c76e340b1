// Package bench holds the pure-Go half of `llamago bench`: the statistics
// of repeated measurements, the result record with llama-bench's field
// names, the report formats (markdown, CSV, JSON, JSON Lines), the plot,
// and measurements of the machine (memory bandwidth, peak RSS).
//
// The timed loops themselves live with the command, in cmd/llamago, and
// the C baseline loop in package llama (Context.NativeBench); nothing here
// needs cgo.
package bench
