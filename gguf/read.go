package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Smallest encoded sizes, used to bound counts by the bytes left in the
// file before anything is allocated.
const (
	// A key-value pair has a key (8-byte length and at least one byte),
	// a 4-byte type and a value of at least one byte.
	minKVSize = 8 + 1 + 4 + 1
	// A tensor description has a name (8-byte length), a 4-byte number
	// of dimensions, a 4-byte type and an 8-byte offset.
	minTensorInfoSize = 8 + 4 + 4 + 8
)

// bufferSize is the size of the read and write buffers. Strings that fit in
// the read buffer are read without an intermediate copy.
const bufferSize = 64 << 10

// maxPrealloc bounds the capacity allocated up front for the KV and tensor
// slices, and maxPreallocElems that of arrays; beyond them they grow as
// entries are actually read.
const (
	maxPrealloc      = 1024
	maxPreallocElems = 1 << 20
)

// Read parses a GGUF file of size bytes read from r. It reads the header,
// the metadata and the tensor table, but not the tensor data, and checks
// that the tensor data lies within the file.
//
// Errors describing a malformed file are of type *FormatError; see also
// ErrNotGGUF and ErrUnsupportedVersion. Errors returned by r other than
// io.EOF are returned wrapped.
func Read(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: negative size %d", size)
	}
	// A small file gets a small buffer (bufio's minimum is 16 bytes).
	d := &decoder{
		r:    bufio.NewReaderSize(io.NewSectionReader(r, 0, size), int(min(size, bufferSize))),
		size: size,
	}
	return d.file()
}

// A decoder reads a GGUF file sequentially.
type decoder struct {
	r    *bufio.Reader
	off  int64 // offset of the next byte to read
	size int64 // size of the file
}

func (d *decoder) remaining() int64 { return d.size - d.off }

// errorf returns a *FormatError at offset off.
func (d *decoder) errorf(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// truncated returns the error for a read of n bytes of what that does not
// fit in the file.
func (d *decoder) truncated(what string, n uint64) error {
	return d.errorf(d.off, "unexpected end of file reading %s (%d bytes needed, %d left)", what, n, d.remaining())
}

// ioError converts an error from the underlying reader.
func (d *decoder) ioError(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The reader holds less than the size it was said to have.
		return d.errorf(d.off, "unexpected end of data reading %s", what)
	}
	return fmt.Errorf("gguf: reading %s at offset %d: %w", what, d.off, err)
}

// peek returns the next n bytes, n <= d.r.Size(), without consuming them.
func (d *decoder) peek(n int, what string) ([]byte, error) {
	if int64(n) > d.remaining() {
		return nil, d.truncated(what, uint64(n))
	}
	p, err := d.r.Peek(n)
	if err != nil {
		return nil, d.ioError(err, what)
	}
	return p, nil
}

// skip consumes n bytes that were peeked.
func (d *decoder) skip(n int) {
	d.r.Discard(n)
	d.off += int64(n)
}

func (d *decoder) u32(what string) (uint32, error) {
	p, err := d.peek(4, what)
	if err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(p)
	d.skip(4)
	return v, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	p, err := d.peek(8, what)
	if err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(p)
	d.skip(8)
	return v, nil
}

// str reads a GGUF string: a uint64 length and that many bytes.
func (d *decoder) str(what string) (string, error) {
	n, err := d.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(d.remaining()) {
		return "", d.errorf(d.off-8, "%s length %d exceeds the %d bytes left in the file", what, n, d.remaining())
	}
	if n == 0 {
		return "", nil
	}
	if n <= uint64(d.r.Size()) {
		p, err := d.peek(int(n), what)
		if err != nil {
			return "", err
		}
		s := string(p)
		d.skip(int(n))
		return s, nil
	}
	// Grow the buffer as the string is read rather than trusting n: a
	// reader can hold less than it was said to.
	buf, err := d.appendBytes(make([]byte, 0, min(n, maxPreallocElems)), n, what)
	if err != nil {
		return "", err
	}
	return string(buf), nil
}

// appendBytes reads n bytes, which the caller has checked fit in the file,
// and appends them to buf.
func (d *decoder) appendBytes(buf []byte, n uint64, what string) ([]byte, error) {
	for n > 0 {
		k := int(min(n, uint64(d.r.Size())))
		p, err := d.peek(k, what)
		if err != nil {
			return nil, err
		}
		buf = append(buf, p...)
		d.skip(k)
		n -= uint64(k)
	}
	return buf, nil
}

// file parses the whole file.
func (d *decoder) file() (*File, error) {
	f := &File{Size: d.size}
	nTensors, nKV, err := d.header(f)
	if err != nil {
		return nil, err
	}
	if err := d.kvs(f, nKV); err != nil {
		return nil, err
	}
	if err := d.tensors(f, nTensors); err != nil {
		return nil, err
	}
	return f, nil
}

// header parses the fixed header, setting f.Version, and returns the tensor
// and key-value counts.
func (d *decoder) header(f *File) (nTensors, nKV uint64, err error) {
	n := min(d.size, headerSize)
	buf := make([]byte, n)
	if _, err := io.ReadFull(d.r, buf); err != nil {
		return 0, 0, d.ioError(err, "header")
	}
	d.off = n
	m := min(n, 4)
	if string(buf[:m]) != Magic[:m] {
		return 0, 0, &FormatError{
			Offset: 0,
			Reason: fmt.Sprintf("bad magic %q, want %q", buf[:m], Magic),
			Err:    ErrNotGGUF,
		}
	}
	if n >= 8 {
		v := binary.LittleEndian.Uint32(buf[4:])
		if reason := checkVersion(v); reason != "" {
			return 0, 0, &FormatError{Offset: 4, Reason: reason, Err: ErrUnsupportedVersion}
		}
		f.Version = v
	}
	if n < headerSize {
		// Report the offset of the field that is cut short.
		var at int64
		for _, o := range []int64{4, 8, 16} {
			if o <= n {
				at = o
			}
		}
		return 0, 0, &FormatError{
			Offset: at,
			Reason: fmt.Sprintf("file too short for the GGUF header (%d bytes, need %d)", n, headerSize),
			Err:    ErrNotGGUF,
		}
	}
	nTensors = binary.LittleEndian.Uint64(buf[8:])
	nKV = binary.LittleEndian.Uint64(buf[16:])
	rem := uint64(d.remaining())
	if nKV > rem/minKVSize {
		return 0, 0, d.errorf(16, "key-value count %d exceeds what the %d bytes left in the file can hold", nKV, rem)
	}
	rem -= nKV * minKVSize
	if nTensors > rem/minTensorInfoSize {
		return 0, 0, d.errorf(8, "tensor count %d exceeds what the %d bytes left in the file can hold", nTensors, rem)
	}
	return nTensors, nKV, nil
}

// short cuts s to at most 64 bytes, for error messages about keys, which
// can be as long as the file.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// checkVersion returns why GGUF version v is unsupported, or "".
func checkVersion(v uint32) string {
	switch {
	case v == 2 || v == 3:
		return ""
	case v == 0:
		return "invalid version 0"
	case v == 1:
		return "GGUF version 1 is no longer supported"
	case v&0xFFFF == 0:
		if s := bits.ReverseBytes32(v); s == 2 || s == 3 {
			return fmt.Sprintf("big-endian GGUF version %d files are not supported", s)
		}
		return fmt.Sprintf("invalid version %#x (wrong byte order?)", v)
	default:
		return fmt.Sprintf("version %d is newer than the supported version %d", v, Version)
	}
}

// kvs parses n key-value pairs into f.KV and sets f.Alignment.
func (d *decoder) kvs(f *File, n uint64) error {
	f.KV = make([]KV, 0, min(n, maxPrealloc))
	seen := make(map[string]struct{}, min(n, maxPrealloc))
	alignOff := int64(-1)
	for i := uint64(0); i < n; i++ {
		off := d.off
		key, err := d.str("key")
		if err != nil {
			return err
		}
		switch {
		case key == "":
			return d.errorf(off, "key %d is empty", i)
		case strings.IndexByte(key, 0) >= 0:
			return d.errorf(off, "key %q contains a NUL byte", short(key))
		}
		if _, dup := seen[key]; dup {
			return d.errorf(off, "duplicate key %q", short(key))
		}
		seen[key] = struct{}{}
		if key == KeyAlignment {
			alignOff = off
		}
		v, err := d.value(key)
		if err != nil {
			return err
		}
		f.KV = append(f.KV, KV{Key: key, Value: v})
	}

	f.Alignment = DefaultAlignment
	if alignOff >= 0 {
		v, _ := f.Lookup(KeyAlignment)
		if v.Type != TypeUint32 {
			return d.errorf(alignOff, "%s has type %s, want uint32", KeyAlignment, typeString(v))
		}
		a := v.num
		if a == 0 || a&(a-1) != 0 {
			return d.errorf(alignOff, "%s %d is not a power of two", KeyAlignment, a)
		}
		f.Alignment = a
	}
	return nil
}

// typeString describes the type of v, including the element type of an
// array.
func typeString(v Value) string {
	if v.Type == TypeArray {
		return "array of " + v.elem.String()
	}
	return v.Type.String()
}

// value parses the type and value of the key-value pair for key.
func (d *decoder) value(key string) (Value, error) {
	off := d.off
	t, err := d.u32("value type")
	if err != nil {
		return Value{}, err
	}
	typ := ValueType(t)
	if typ != TypeArray {
		if !typ.valid() {
			return Value{}, d.errorf(off, "key %q has invalid value type %d", short(key), t)
		}
		return d.scalar(typ)
	}

	off = d.off
	t, err = d.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(t)
	switch {
	case elem == TypeArray:
		return Value{}, d.errorf(off, "key %q is an array of arrays, which is not supported", short(key))
	case !elem.valid():
		return Value{}, d.errorf(off, "key %q has invalid array element type %d", short(key), t)
	}
	n, err := d.u64("array length")
	if err != nil {
		return Value{}, err
	}
	// Every element takes at least minSize bytes (a string its length).
	minSize := valueTypeSizes[elem]
	if n > uint64(d.remaining())/minSize || n > math.MaxInt {
		return Value{}, d.errorf(d.off-8, "key %q: array of %d %s exceeds the %d bytes left in the file", short(key), n, elem, d.remaining())
	}
	v := Value{Type: TypeArray, elem: elem}
	switch elem {
	case TypeUint8:
		v.arr, err = readArray(d, n, 1, func(p []byte) uint8 { return p[0] })
	case TypeInt8:
		v.arr, err = readArray(d, n, 1, func(p []byte) int8 { return int8(p[0]) })
	case TypeUint16:
		v.arr, err = readArray(d, n, 2, binary.LittleEndian.Uint16)
	case TypeInt16:
		v.arr, err = readArray(d, n, 2, func(p []byte) int16 { return int16(binary.LittleEndian.Uint16(p)) })
	case TypeUint32:
		v.arr, err = readArray(d, n, 4, binary.LittleEndian.Uint32)
	case TypeInt32:
		v.arr, err = readArray(d, n, 4, func(p []byte) int32 { return int32(binary.LittleEndian.Uint32(p)) })
	case TypeFloat32:
		v.arr, err = readArray(d, n, 4, func(p []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(p)) })
	case TypeBool:
		v.arr, err = readArray(d, n, 1, func(p []byte) bool { return p[0] != 0 })
	case TypeUint64:
		v.arr, err = readArray(d, n, 8, binary.LittleEndian.Uint64)
	case TypeInt64:
		v.arr, err = readArray(d, n, 8, func(p []byte) int64 { return int64(binary.LittleEndian.Uint64(p)) })
	case TypeFloat64:
		v.arr, err = readArray(d, n, 8, func(p []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(p)) })
	case TypeString:
		v.arr, err = d.strings(int(n))
	}
	if err != nil {
		return Value{}, err
	}
	return v, nil
}

// strings reads an array of n strings. The caller has checked that n
// length prefixes fit in the file. To avoid an allocation per string (a
// vocabulary has up to a few hundred thousand), the bytes of all strings are
// gathered into one buffer and the strings are slices of one copy of it.
func (d *decoder) strings(n int) ([]string, error) {
	const what = "string array element"
	// Grow the buffers as the strings are read rather than trusting n
	// and the size: a reader can hold less than it was said to.
	ends := make([]int, 0, min(n, maxPreallocElems))
	buf := make([]byte, 0, min(d.remaining(), int64(min(n, maxPreallocElems))*8))
	for range n {
		l, err := d.u64(what + " length")
		if err != nil {
			return nil, err
		}
		if l > uint64(d.remaining()) {
			return nil, d.errorf(d.off-8, "%s length %d exceeds the %d bytes left in the file", what, l, d.remaining())
		}
		if buf, err = d.appendBytes(buf, l, what); err != nil {
			return nil, err
		}
		ends = append(ends, len(buf))
	}
	all := string(buf)
	s := make([]string, n)
	start := 0
	for i, end := range ends {
		s[i] = all[start:end]
		start = end
	}
	return s, nil
}

// readArray reads n elements of size bytes each, decoding each with dec.
// The caller has checked that n*size bytes are left in the file.
func readArray[T any](d *decoder, n uint64, size int, dec func([]byte) T) ([]T, error) {
	// Allocate large arrays as they are read, in case the reader holds
	// less than it was said to.
	out := make([]T, min(n, maxPreallocElems))
	for i := 0; uint64(i) < n; {
		if i == len(out) {
			extra := int(min(n-uint64(i), uint64(len(out))))
			out = slices.Grow(out, extra)[:len(out)+extra]
		}
		k := d.r.Buffered() / size
		if k == 0 {
			// Fill the buffer.
			if _, err := d.peek(size, "array element"); err != nil {
				return nil, err
			}
			k = d.r.Buffered() / size
		}
		k = min(k, len(out)-i)
		p, err := d.peek(k*size, "array element")
		if err != nil {
			return nil, err
		}
		for j := range k {
			out[i+j] = dec(p[j*size:])
		}
		d.skip(k * size)
		i += k
	}
	return out, nil
}

// scalar reads a value of type typ, which is neither TypeArray nor
// invalid.
func (d *decoder) scalar(typ ValueType) (Value, error) {
	v := Value{Type: typ}
	if typ == TypeString {
		s, err := d.str("string value")
		if err != nil {
			return Value{}, err
		}
		v.str = s
		return v, nil
	}
	size := int(valueTypeSizes[typ])
	p, err := d.peek(size, typ.String()+" value")
	if err != nil {
		return Value{}, err
	}
	switch typ {
	case TypeUint8:
		v.num = uint64(p[0])
	case TypeInt8:
		v.num = uint64(int64(int8(p[0])))
	case TypeBool:
		if p[0] != 0 {
			v.num = 1
		}
	case TypeUint16:
		v.num = uint64(binary.LittleEndian.Uint16(p))
	case TypeInt16:
		v.num = uint64(int64(int16(binary.LittleEndian.Uint16(p))))
	case TypeUint32, TypeFloat32:
		v.num = uint64(binary.LittleEndian.Uint32(p))
	case TypeInt32:
		v.num = uint64(int64(int32(binary.LittleEndian.Uint32(p))))
	case TypeUint64, TypeInt64, TypeFloat64:
		v.num = binary.LittleEndian.Uint64(p)
	}
	d.skip(size)
	return v, nil
}

// tensors parses n tensor descriptions into f.Tensors, sets f.DataOffset
// and checks the layout of the tensor data.
func (d *decoder) tensors(f *File, n uint64) error {
	f.Tensors = make([]TensorInfo, 0, min(n, maxPrealloc))
	seen := make(map[string]struct{}, min(n, maxPrealloc))
	var offsetAt []int64 // file offset of each tensor's offset field
	for i := uint64(0); i < n; i++ {
		off := d.off
		name, err := d.str("tensor name")
		if err != nil {
			return err
		}
		switch {
		case len(name) > MaxNameLen:
			return d.errorf(off, "tensor %d name is %d bytes long, the limit is %d", i, len(name), MaxNameLen)
		case strings.IndexByte(name, 0) >= 0:
			return d.errorf(off, "tensor name %q contains a NUL byte", name)
		}
		if _, dup := seen[name]; dup {
			return d.errorf(off, "duplicate tensor name %q", name)
		}
		seen[name] = struct{}{}

		dimsAt := d.off
		nd, err := d.u32("number of dimensions")
		if err != nil {
			return err
		}
		if nd > MaxDims {
			return d.errorf(dimsAt, "tensor %q has %d dimensions, the limit is %d", name, nd, MaxDims)
		}
		t := TensorInfo{Name: name, Dims: make([]uint64, nd)}
		for j := range t.Dims {
			dimAt := d.off
			if t.Dims[j], err = d.u64("dimension"); err != nil {
				return err
			}
			if t.Dims[j] == 0 || t.Dims[j] > math.MaxInt64 {
				return d.errorf(dimAt, "tensor %q dimension %d has invalid size %d", name, j, int64(t.Dims[j]))
			}
		}
		if !elementsRepresentable(t.Dims) {
			return d.errorf(dimsAt, "tensor %q has too many elements %v", name, t.Dims)
		}

		typeAt := d.off
		typ, err := d.u32("tensor type")
		if err != nil {
			return err
		}
		t.Type = TensorType(typ)
		if !t.Type.Valid() {
			return d.errorf(typeAt, "tensor %q has invalid type %s", name, t.Type)
		}
		if _, reason := t.size(); reason != "" {
			return d.errorf(typeAt, "tensor %q: %s", name, reason)
		}

		offsetAt = append(offsetAt, d.off)
		if t.Offset, err = d.u64("tensor offset"); err != nil {
			return err
		}
		f.Tensors = append(f.Tensors, t)
	}

	// The data section starts at the next multiple of the alignment.
	start := (uint64(d.off) + f.Alignment - 1) &^ (f.Alignment - 1)
	if start > math.MaxInt64 {
		return d.errorf(d.off, "data section offset overflows")
	}
	f.DataOffset = int64(start)

	// llama.cpp requires the tensors to be packed in order, each starting
	// at the next multiple of the alignment after the previous one. The
	// data of each tensor must lie in the file; the padding after the
	// last one may be missing.
	var avail uint64
	if f.DataOffset < d.size {
		avail = uint64(d.size - f.DataOffset)
	}
	var next uint64 // expected offset of the next tensor
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.Offset != next {
			return d.errorf(offsetAt[i], "tensor %q has data offset %d, want %d (tensors must be stored in order, each aligned to %d bytes)", t.Name, t.Offset, next, f.Alignment)
		}
		size := t.Size()
		if size > avail || next > avail-size {
			return d.errorf(offsetAt[i], "tensor %q data (%d bytes at offset %d) extends beyond the end of the file (%d bytes)",
				t.Name, size, uint64(f.DataOffset)+next, d.size)
		}
		next += (size + f.Alignment - 1) &^ (f.Alignment - 1)
	}
	return nil
}

// elementsRepresentable reports whether the product of dims, each in
// [1, MaxInt64], is less than MaxInt64, with the same checks as llama.cpp.
func elementsRepresentable(dims []uint64) bool {
	var ne [MaxDims]int64
	for i := range ne {
		ne[i] = 1
		if i < len(dims) {
			ne[i] = int64(dims[i])
		}
	}
	return math.MaxInt64/ne[1] > ne[0] &&
		math.MaxInt64/ne[2] > ne[0]*ne[1] &&
		math.MaxInt64/ne[3] > ne[0]*ne[1]*ne[2]
}
