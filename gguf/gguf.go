// Package gguf reads and writes GGUF files, the model file format of
// llama.cpp and ggml.
//
// The reader is written in pure Go and is meant to be run on untrusted input
// before the file is handed to llama.cpp, which aborts the process on many
// kinds of malformed files. It accepts what llama.cpp's gguf loader accepts
// (GGUF versions 2 and 3, little-endian) and rejects, with an error and
// without panicking or allocating more than a small multiple of the file
// size, everything that loader rejects or would abort on: lengths and counts
// that exceed the file, arrays of arrays, duplicate keys or tensor names,
// empty keys, keys and tensor names containing NUL bytes (llama.cpp looks
// keys up as C strings), a general.alignment that is not a power-of-two
// uint32, tensor names of 64 bytes or more, more than four dimensions,
// dimensions that are zero or negative as int64, element counts or byte
// sizes that overflow, unknown or removed tensor types, rows that are not a
// whole number of blocks, tensor offsets that do not follow the canonical
// packed layout, and tensor data that lies outside the file.
//
// It checks the format, not the model: whether the metadata holds the keys,
// types and array lengths a model architecture or tokenizer needs is left to
// the caller. Strings need not be valid UTF-8.
//
// A GGUF file consists of a fixed header (the magic "GGUF", a uint32
// version, a uint64 tensor count and a uint64 key-value count), the key-value
// metadata, a table of tensor descriptions, zero padding up to the alignment,
// and the tensor data, each tensor starting at a multiple of the alignment.
//
// Read and Open parse everything except the tensor data; use
// File.TensorReader to access the data of a tensor. Write produces a file
// that Read accepts.
package gguf

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Well-known metadata keys.
const (
	// KeyAlignment is the key of the optional uint32 alignment of the
	// tensor data.
	KeyAlignment = "general.alignment"
	// KeyArchitecture is the key of the model architecture name.
	KeyArchitecture = "general.architecture"
	// KeyFileType is the key of the llama_ftype of the file; see FileType.
	KeyFileType = "general.file_type"
)

const (
	// Magic is the four bytes at the start of every GGUF file.
	Magic = "GGUF"

	// Version is the newest GGUF version this package reads, and the
	// version Write uses when File.Version is zero.
	Version = 3

	// DefaultAlignment is the alignment of the tensor data when the file
	// has no general.alignment key.
	DefaultAlignment = 32

	// MaxDims is the largest number of dimensions a tensor may have.
	MaxDims = 4

	// MaxNameLen is the longest tensor name in bytes (ggml's GGML_MAX_NAME
	// minus the terminating NUL).
	MaxNameLen = 63

	// headerSize is the size of the fixed header in bytes.
	headerSize = 4 + 4 + 8 + 8
)

// ErrNotGGUF reports that the input is not a GGUF file: it does not start
// with the magic "GGUF" or is too short to hold the fixed header.
var ErrNotGGUF = errors.New("gguf: not a GGUF file")

// ErrUnsupportedVersion reports a GGUF version other than 2 or 3 (version 1
// files, files of a future version and big-endian files).
var ErrUnsupportedVersion = errors.New("gguf: unsupported GGUF version")

// A FormatError reports a malformed GGUF file. Every error Read returns
// for a bad file is a *FormatError. When the problem is that the input is
// not a GGUF file at all, or is of an unsupported version, Err is
// ErrNotGGUF or ErrUnsupportedVersion and errors.Is reports it.
type FormatError struct {
	Offset int64  // byte offset in the file of the offending item
	Reason string // what is wrong
	Err    error  // ErrNotGGUF, ErrUnsupportedVersion or nil
}

// Error implements the error interface.
func (e *FormatError) Error() string {
	return fmt.Sprintf("gguf: offset %d: %s", e.Offset, e.Reason)
}

// Unwrap returns e.Err.
func (e *FormatError) Unwrap() error { return e.Err }

// A KV is one metadata key-value pair.
type KV struct {
	Key   string
	Value Value
}

// A File is the parsed metadata of a GGUF file: everything but the tensor
// data.
//
// Read fills in every field. Write ignores DataOffset, Size and the Offset
// of each tensor, which follow from the rest; see Write.
type File struct {
	// Version is the GGUF version, 2 or 3.
	Version uint32
	// Alignment is the alignment of the tensor data in bytes, taken from
	// general.alignment or DefaultAlignment.
	Alignment uint64
	// KV holds the metadata in file order.
	KV []KV
	// Tensors describes the tensors in file order.
	Tensors []TensorInfo
	// DataOffset is the offset in the file of the tensor data section.
	// For a file without tensors it may lie beyond the end of the file.
	DataOffset int64
	// Size is the size of the file in bytes.
	Size int64
}

// Open opens and parses the GGUF file at path. It reads the metadata and
// tensor table but not the tensor data.
func Open(path string) (*File, error) {
	fp, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fp.Close()
	st, err := fp.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gguf: %s: not a regular file", path)
	}
	f, err := Read(fp, st.Size())
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Lookup returns the value of the metadata key and whether it is present.
func (f *File) Lookup(key string) (Value, bool) {
	for i := range f.KV {
		if f.KV[i].Key == key {
			return f.KV[i].Value, true
		}
	}
	return Value{}, false
}

// String returns the value of a string-valued key. It reports false if the
// key is missing or does not hold a single string.
func (f *File) String(key string) (string, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return "", false
	}
	return v.Str()
}

// Uint returns the value of a key holding a single integer of any integer
// type whose value is non-negative. It reports false otherwise.
func (f *File) Uint(key string) (uint64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.Uint()
}

// Int returns the value of a key holding a single integer of any integer
// type whose value fits in an int64. It reports false otherwise.
func (f *File) Int(key string) (int64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.Int()
}

// Float returns the value of a key holding a single float32 or float64. It
// reports false otherwise.
func (f *File) Float(key string) (float64, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, false
	}
	return v.Float()
}

// Bool returns the value of a key holding a single bool. It reports false
// as its second result if the key is missing or of another type.
func (f *File) Bool(key string) (bool, bool) {
	v, ok := f.Lookup(key)
	if !ok {
		return false, false
	}
	return v.Bool()
}

// Architecture returns the value of general.architecture, or "" if it is
// missing or not a string.
func (f *File) Architecture() string {
	s, _ := f.String(KeyArchitecture)
	return s
}

// ParameterCount returns the total number of elements of all tensors. It
// saturates at math.MaxUint64.
func (f *File) ParameterCount() uint64 {
	var n uint64
	for i := range f.Tensors {
		e := f.Tensors[i].Elements()
		if n > math.MaxUint64-e {
			return math.MaxUint64
		}
		n += e
	}
	return n
}

// TensorDataSize returns the total size in bytes of the data of all tensors,
// not counting the alignment padding between them. It saturates at
// math.MaxUint64.
func (f *File) TensorDataSize() uint64 {
	var n uint64
	for i := range f.Tensors {
		s := f.Tensors[i].Size()
		if n > math.MaxUint64-s {
			return math.MaxUint64
		}
		n += s
	}
	return n
}

// Tensor returns the description of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return f.Tensors[i], true
		}
	}
	return TensorInfo{}, false
}

// TensorReader returns a reader of the data of tensor i, given r, the file
// that f was read from. It panics if i is out of range.
func (f *File) TensorReader(r io.ReaderAt, i int) *io.SectionReader {
	t := &f.Tensors[i]
	return io.NewSectionReader(r, f.DataOffset+int64(t.Offset), int64(t.Size()))
}
