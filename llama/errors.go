package llama

import (
	"errors"
	"fmt"

	"github.com/llamago/llamago/gguf"
)

var (
	// ErrClosed is returned by every method that returns an error once
	// its Model, Context, Batch, Sampler or Adapter is closed (closing a
	// Model closes what was made from it). Methods without an error
	// result do not fail after Close: those that report a fixed property
	// (the sizes of a Context, a Model's description and hyperparameters,
	// a Sampler's Config, paths) report it as before, and those that ask
	// llama.cpp return their zero value: NullToken for the special
	// tokens, false from AddsBOS, IsEOG and Metadata, nothing from
	// AllMetadata, 0 from Threads, Perf, Seed and Batch.Len.
	ErrClosed = errors.New("llama: use of closed object")

	// ErrContextFull is returned when a prompt or a generation needs more
	// positions than the context (or its KV cache) has left.
	ErrContextFull = errors.New("llama: context is full")

	// ErrInvalidToken is returned for a token id outside the vocabulary, or
	// one a grammar does not allow.
	ErrInvalidToken = errors.New("llama: invalid token")

	// ErrNotGGUF is returned by Load for a file that is not a GGUF file.
	// It is the same value as gguf.ErrNotGGUF.
	ErrNotGGUF = gguf.ErrNotGGUF

	// ErrInvalidModel is returned by Load for a GGUF file whose metadata or
	// tensor table llama.cpp cannot use safely.
	ErrInvalidModel = errors.New("llama: invalid model file")

	// ErrBatchFull is returned by Batch.Add when the batch is at capacity.
	ErrBatchFull = errors.New("llama: batch is full")

	// ErrInvalidArgument is returned for an option or argument outside its
	// valid range.
	ErrInvalidArgument = errors.New("llama: invalid argument")

	// ErrInvalidGrammar is returned when a GBNF grammar does not parse.
	ErrInvalidGrammar = errors.New("llama: invalid grammar")

	// ErrOutOfMemory is returned by NewContext for a context that would
	// need more memory (its KV cache and compute buffers, estimated as
	// PlanFit does) than the system and its GPUs have available.
	ErrOutOfMemory = errors.New("llama: not enough memory")

	// ErrNoLogits is returned when logits are requested for a batch position
	// that was not marked for output in the last Decode.
	ErrNoLogits = errors.New("llama: no logits for that batch index")
)

// DecodeError reports a nonzero status from llama_decode or llama_encode
// that is not covered by ErrContextFull or a cancelled context.
type DecodeError struct {
	Code int
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("llama: decode failed with status %d", e.Code)
}

// LoadError reports that llama.cpp refused to load a model file that passed
// the Go-side checks, with llama.cpp's reason (the error lines of its log).
type LoadError struct {
	Path   string
	Reason string
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("llama: load %s: %s", e.Path, e.Reason)
}

// optErr records the first invalid option given to a constructor, which
// returns it: options themselves return nothing.
type optErr struct{ err error }

func (o *optErr) fail(err error) {
	if o.err == nil {
		o.err = err
	}
}

func invalidArg(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
