package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Write writes f as a GGUF file to w: the header, f.KV, the descriptions of
// f.Tensors, zero padding up to the alignment, and then the data of each
// tensor followed by zero padding up to the alignment, as llama.cpp writes
// files. A file without tensors ends after the tensor descriptions (as
// gguf-py writes it), without padding.
//
// The version written is f.Version, or Version if it is zero. The alignment
// is taken from the general.alignment key if there is one (it must be a
// uint32 power of two) and is DefaultAlignment otherwise; f.Alignment must be
// zero or equal to it. The tensors are laid out in order, each at the next
// multiple of the alignment; the Offset fields of f.Tensors, f.DataOffset
// and f.Size are ignored. Reading the result gives back f with those fields
// filled in.
//
// For each tensor i, data is called to write the tensor's data, which must
// be exactly f.Tensors[i].Size() bytes, to its writer argument. If data is
// nil the tensor data is written as zeros. To copy a file, pass a function
// that copies from File.TensorReader.
//
// Write checks f as Read checks a file and fails, before writing anything,
// if Read would not accept the result.
func Write(w io.Writer, f *File, data func(i int, w io.Writer) error) error {
	version := f.Version
	if version == 0 {
		version = Version
	}
	if version != 2 && version != 3 {
		return fmt.Errorf("gguf: cannot write version %d", version)
	}
	align, err := checkKVs(f.KV)
	if err != nil {
		return err
	}
	if f.Alignment != 0 && f.Alignment != align {
		return fmt.Errorf("gguf: File.Alignment %d differs from the %s %d", f.Alignment, KeyAlignment, align)
	}
	sizes, err := checkTensors(f.Tensors, align)
	if err != nil {
		return err
	}

	e := &encoder{w: bufio.NewWriterSize(w, bufferSize)}
	e.write([]byte(Magic))
	e.u32(version)
	e.u64(uint64(len(f.Tensors)))
	e.u64(uint64(len(f.KV)))
	for _, kv := range f.KV {
		e.str(short(kv.Key))
		e.value(kv.Value)
	}
	var off uint64
	for i, t := range f.Tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(off)
		off += pad(sizes[i], align)
	}
	if len(f.Tensors) > 0 {
		// Without tensors the padding serves no purpose, and with a large
		// alignment it could be huge; gguf-py omits it too.
		e.pad(align)
	}

	for i := range f.Tensors {
		if e.err != nil {
			break
		}
		if data == nil {
			e.zeros(sizes[i])
		} else {
			cw := &countWriter{w: e.w, limit: sizes[i]}
			if err := data(i, cw); err != nil {
				return fmt.Errorf("gguf: writing data of tensor %q: %w", f.Tensors[i].Name, err)
			}
			if cw.err != nil {
				return cw.err
			}
			if cw.n != sizes[i] {
				return fmt.Errorf("gguf: data of tensor %q is %d bytes, want %d", f.Tensors[i].Name, cw.n, sizes[i])
			}
			e.n += int64(cw.n)
		}
		e.pad(align)
	}
	if e.err != nil {
		return e.err
	}
	return e.w.Flush()
}

// pad rounds n up to a multiple of align, a power of two.
func pad(n, align uint64) uint64 { return (n + align - 1) &^ (align - 1) }

// checkKVs checks that kvs can be written and read back, and returns the
// alignment they specify.
func checkKVs(kvs []KV) (uint64, error) {
	align := uint64(DefaultAlignment)
	seen := make(map[string]struct{}, len(kvs))
	for _, kv := range kvs {
		switch {
		case kv.Key == "":
			return 0, errors.New("gguf: empty key")
		case strings.IndexByte(kv.Key, 0) >= 0:
			return 0, fmt.Errorf("gguf: key %q contains a NUL byte", short(kv.Key))
		}
		if _, dup := seen[kv.Key]; dup {
			return 0, fmt.Errorf("gguf: duplicate key %q", short(kv.Key))
		}
		seen[kv.Key] = struct{}{}
		v := kv.Value
		switch {
		case v.Type == TypeArray:
			if !v.elem.valid() || v.elem == TypeArray || (v.arr != nil && arrayType(v.arr) != v.elem) {
				return 0, fmt.Errorf("gguf: key %q has an invalid array value", short(kv.Key))
			}
		case !v.Type.valid():
			return 0, fmt.Errorf("gguf: key %q has invalid value type %d", kv.Key, uint32(v.Type))
		}
		if kv.Key == KeyAlignment {
			a := v.num
			if v.Type != TypeUint32 || a == 0 || a&(a-1) != 0 {
				return 0, fmt.Errorf("gguf: %s must be a uint32 power of two, not %s %v", KeyAlignment, typeString(v), v)
			}
			align = a
		}
	}
	return align, nil
}

// arrayType returns the element type of an array slice.
func arrayType(a any) ValueType {
	switch a.(type) {
	case []uint8:
		return TypeUint8
	case []int8:
		return TypeInt8
	case []uint16:
		return TypeUint16
	case []int16:
		return TypeInt16
	case []uint32:
		return TypeUint32
	case []int32:
		return TypeInt32
	case []float32:
		return TypeFloat32
	case []bool:
		return TypeBool
	case []string:
		return TypeString
	case []uint64:
		return TypeUint64
	case []int64:
		return TypeInt64
	case []float64:
		return TypeFloat64
	}
	return TypeArray // invalid
}

// checkTensors checks that the tensors can be written and read back with
// the given alignment, and returns their sizes in bytes.
func checkTensors(ts []TensorInfo, align uint64) ([]uint64, error) {
	sizes := make([]uint64, len(ts))
	var total uint64
	seen := make(map[string]struct{}, len(ts))
	for i := range ts {
		t := &ts[i]
		switch {
		case len(t.Name) > MaxNameLen:
			return nil, fmt.Errorf("gguf: tensor name %q is longer than %d bytes", short(t.Name), MaxNameLen)
		case strings.IndexByte(t.Name, 0) >= 0:
			return nil, fmt.Errorf("gguf: tensor name %q contains a NUL byte", short(t.Name))
		case len(t.Dims) > MaxDims:
			return nil, fmt.Errorf("gguf: tensor %q has %d dimensions, the limit is %d", t.Name, len(t.Dims), MaxDims)
		case !t.Type.Valid():
			return nil, fmt.Errorf("gguf: tensor %q has invalid type %s", t.Name, t.Type)
		}
		if _, dup := seen[t.Name]; dup {
			return nil, fmt.Errorf("gguf: duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = struct{}{}
		for j, d := range t.Dims {
			if d == 0 || d > math.MaxInt64 {
				return nil, fmt.Errorf("gguf: tensor %q dimension %d has invalid size %d", t.Name, j, d)
			}
		}
		if !elementsRepresentable(t.Dims) {
			return nil, fmt.Errorf("gguf: tensor %q has too many elements %v", t.Name, t.Dims)
		}
		size, reason := t.size()
		if reason != "" {
			return nil, fmt.Errorf("gguf: tensor %q: %s", t.Name, reason)
		}
		sizes[i] = size
		total += pad(size, align)
		if total > math.MaxInt64 {
			return nil, errors.New("gguf: total tensor data size overflows")
		}
	}
	return sizes, nil
}

// An encoder writes GGUF primitives, remembering the first error.
type encoder struct {
	w   *bufio.Writer
	n   int64 // bytes written
	err error
	buf [8]byte
}

func (e *encoder) write(p []byte) {
	if e.err != nil {
		return
	}
	n, err := e.w.Write(p)
	e.n += int64(n)
	e.err = err
}

func (e *encoder) u8(v uint8) {
	e.buf[0] = v
	e.write(e.buf[:1])
}

func (e *encoder) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], v)
	e.write(e.buf[:2])
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], v)
	e.write(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], v)
	e.write(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err != nil {
		return
	}
	n, err := e.w.WriteString(s)
	e.n += int64(n)
	e.err = err
}

// scalar writes the encoding of a number or bool held as in Value.num.
func (e *encoder) scalar(t ValueType, num uint64) {
	switch valueTypeSizes[t] {
	case 1:
		e.u8(uint8(num))
	case 2:
		e.u16(uint16(num))
	case 4:
		e.u32(uint32(num))
	case 8:
		e.u64(num)
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// value writes the type and contents of v, which checkKVs accepted.
func (e *encoder) value(v Value) {
	e.u32(uint32(v.Type))
	switch v.Type {
	case TypeString:
		e.str(v.str)
		return
	case TypeArray:
	default:
		e.scalar(v.Type, v.num)
		return
	}
	e.u32(uint32(v.elem))
	e.u64(uint64(v.Len()))
	switch a := v.arr.(type) {
	case []uint8:
		e.write(a)
	case []int8:
		for _, x := range a {
			e.u8(uint8(x))
		}
	case []uint16:
		for _, x := range a {
			e.u16(x)
		}
	case []int16:
		for _, x := range a {
			e.u16(uint16(x))
		}
	case []uint32:
		for _, x := range a {
			e.u32(x)
		}
	case []int32:
		for _, x := range a {
			e.u32(uint32(x))
		}
	case []float32:
		for _, x := range a {
			e.u32(math.Float32bits(x))
		}
	case []bool:
		for _, x := range a {
			e.u8(b2u(x))
		}
	case []string:
		for _, x := range a {
			e.str(x)
		}
	case []uint64:
		for _, x := range a {
			e.u64(x)
		}
	case []int64:
		for _, x := range a {
			e.u64(uint64(x))
		}
	case []float64:
		for _, x := range a {
			e.u64(math.Float64bits(x))
		}
	}
}

var zeroBlock [4096]byte

// zeros writes n zero bytes.
func (e *encoder) zeros(n uint64) {
	for n > 0 && e.err == nil {
		k := min(n, uint64(len(zeroBlock)))
		e.write(zeroBlock[:k])
		n -= k
	}
}

// pad writes zeros up to the next multiple of align.
func (e *encoder) pad(align uint64) {
	e.zeros(pad(uint64(e.n), align) - uint64(e.n))
}

// A countWriter passes at most limit bytes to w and counts them.
type countWriter struct {
	w     io.Writer
	n     uint64
	limit uint64
	err   error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if uint64(len(p)) > c.limit-c.n {
		c.err = fmt.Errorf("gguf: tensor data longer than %d bytes", c.limit)
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += uint64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}
