package gguf

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// A TensorType is a ggml tensor element type (enum ggml_type).
type TensorType uint32

// The ggml tensor types. Values missing from the sequence belong to types
// that ggml removed and that GGUF files may no longer contain.
const (
	TensorF32     TensorType = 0
	TensorF16     TensorType = 1
	TensorQ4_0    TensorType = 2
	TensorQ4_1    TensorType = 3
	TensorQ5_0    TensorType = 6
	TensorQ5_1    TensorType = 7
	TensorQ8_0    TensorType = 8
	TensorQ8_1    TensorType = 9
	TensorQ2_K    TensorType = 10
	TensorQ3_K    TensorType = 11
	TensorQ4_K    TensorType = 12
	TensorQ5_K    TensorType = 13
	TensorQ6_K    TensorType = 14
	TensorQ8_K    TensorType = 15
	TensorIQ2_XXS TensorType = 16
	TensorIQ2_XS  TensorType = 17
	TensorIQ3_XXS TensorType = 18
	TensorIQ1_S   TensorType = 19
	TensorIQ4_NL  TensorType = 20
	TensorIQ3_S   TensorType = 21
	TensorIQ2_S   TensorType = 22
	TensorIQ4_XS  TensorType = 23
	TensorI8      TensorType = 24
	TensorI16     TensorType = 25
	TensorI32     TensorType = 26
	TensorI64     TensorType = 27
	TensorF64     TensorType = 28
	TensorIQ1_M   TensorType = 29
	TensorBF16    TensorType = 30
	TensorTQ1_0   TensorType = 34
	TensorTQ2_0   TensorType = 35
	TensorMXFP4   TensorType = 39
)

// numTensorTypes is ggml's GGML_TYPE_COUNT.
const numTensorTypes = 40

const qkK = 256 // ggml's QK_K, the super-block size of the k-quants

// tensorTypes holds the name, block size (elements per block) and type size
// (bytes per block) of each tensor type, as in ggml's type_traits. Removed
// types have a zero block size.
var tensorTypes = [numTensorTypes]struct {
	name      string
	blockSize uint64
	typeSize  uint64
}{
	TensorF32:     {"F32", 1, 4},
	TensorF16:     {"F16", 1, 2},
	TensorQ4_0:    {"Q4_0", 32, 2 + 16},
	TensorQ4_1:    {"Q4_1", 32, 2 + 2 + 16},
	4:             {"Q4_2", 0, 0}, // removed
	5:             {"Q4_3", 0, 0}, // removed
	TensorQ5_0:    {"Q5_0", 32, 2 + 4 + 16},
	TensorQ5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16},
	TensorQ8_0:    {"Q8_0", 32, 2 + 32},
	TensorQ8_1:    {"Q8_1", 32, 2 + 2 + 32},
	TensorQ2_K:    {"Q2_K", qkK, 2 + 2 + qkK/16 + qkK/4},
	TensorQ3_K:    {"Q3_K", qkK, 2 + qkK/4 + qkK/8 + 12},
	TensorQ4_K:    {"Q4_K", qkK, 2 + 2 + 12 + qkK/2},
	TensorQ5_K:    {"Q5_K", qkK, 2 + 2 + 12 + qkK/2 + qkK/8},
	TensorQ6_K:    {"Q6_K", qkK, 2 + qkK/16 + 3*qkK/4},
	TensorQ8_K:    {"Q8_K", qkK, 4 + qkK + qkK/16*2},
	TensorIQ2_XXS: {"IQ2_XXS", qkK, 2 + qkK/8*2},
	TensorIQ2_XS:  {"IQ2_XS", qkK, 2 + qkK/8*2 + qkK/32},
	TensorIQ3_XXS: {"IQ3_XXS", qkK, 2 + 3*(qkK/8)},
	TensorIQ1_S:   {"IQ1_S", qkK, 2 + qkK/8 + qkK/16},
	TensorIQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	TensorIQ3_S:   {"IQ3_S", qkK, 2 + 13*(qkK/32) + 4},
	TensorIQ2_S:   {"IQ2_S", qkK, 2 + qkK/4 + qkK/16},
	TensorIQ4_XS:  {"IQ4_XS", qkK, 2 + 2 + qkK/64 + qkK/2},
	TensorI8:      {"I8", 1, 1},
	TensorI16:     {"I16", 1, 2},
	TensorI32:     {"I32", 1, 4},
	TensorI64:     {"I64", 1, 8},
	TensorF64:     {"F64", 1, 8},
	TensorIQ1_M:   {"IQ1_M", qkK, qkK/8 + qkK/16 + qkK/32},
	TensorBF16:    {"BF16", 1, 2},
	31:            {"Q4_0_4_4", 0, 0}, // removed
	32:            {"Q4_0_4_8", 0, 0}, // removed
	33:            {"Q4_0_8_8", 0, 0}, // removed
	TensorTQ1_0:   {"TQ1_0", qkK, 2 + qkK/64 + (qkK-4*qkK/64)/5},
	TensorTQ2_0:   {"TQ2_0", qkK, 2 + qkK/4},
	36:            {"IQ4_NL_4_4", 0, 0}, // removed
	37:            {"IQ4_NL_4_8", 0, 0}, // removed
	38:            {"IQ4_NL_8_8", 0, 0}, // removed
	TensorMXFP4:   {"MXFP4", 32, 1 + 16},
}

// String returns the ggml name of the type in upper case, such as "F32" or
// "Q4_K", or "TensorType(N)" for a value outside ggml's range.
func (t TensorType) String() string {
	if t < numTensorTypes {
		return tensorTypes[t].name
	}
	return "TensorType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// Valid reports whether t is a tensor type that GGUF files may contain.
func (t TensorType) Valid() bool {
	return t < numTensorTypes && tensorTypes[t].blockSize != 0
}

// BlockSize returns the number of elements in one block of the type, 1 for
// unquantized types and 0 for invalid types.
func (t TensorType) BlockSize() uint64 {
	if t < numTensorTypes {
		return tensorTypes[t].blockSize
	}
	return 0
}

// TypeSize returns the size in bytes of one block of the type, or 0 for
// invalid types.
func (t TensorType) TypeSize() uint64 {
	if t < numTensorTypes {
		return tensorTypes[t].typeSize
	}
	return 0
}

// A TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	// Name is the tensor name, at most MaxNameLen bytes.
	Name string
	// Type is the element type.
	Type TensorType
	// Dims holds the number of elements along each dimension, innermost
	// (contiguous) first, as ggml's ne. There are at most MaxDims.
	Dims []uint64
	// Offset is the offset of the tensor data from File.DataOffset.
	Offset uint64
}

// Elements returns the number of elements of the tensor, the product of its
// dimensions (1 for a tensor without dimensions). It returns 0 if the
// product overflows a uint64, which cannot happen for a tensor of a file
// that Read accepted.
func (t TensorInfo) Elements() uint64 {
	n, ok := t.elements()
	if !ok {
		return 0
	}
	return n
}

func (t TensorInfo) elements() (uint64, bool) {
	n := uint64(1)
	for _, d := range t.Dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 {
			return 0, false
		}
		n = lo
	}
	return n, true
}

// Size returns the size of the tensor data in bytes. It returns 0 if the
// type is invalid, the size overflows or the number of elements in a row
// (Dims[0]) is not a multiple of the block size; none of these can happen
// for a tensor of a file that Read accepted.
func (t TensorInfo) Size() uint64 {
	n, _ := t.size()
	return n
}

// size returns the byte size of the tensor, or a reason why it has none.
func (t TensorInfo) size() (uint64, string) {
	bs := t.Type.BlockSize()
	if bs == 0 {
		return 0, "invalid tensor type " + t.Type.String()
	}
	n, ok := t.elements()
	if !ok {
		return 0, "number of elements overflows"
	}
	row := uint64(1)
	if len(t.Dims) > 0 {
		row = t.Dims[0]
	}
	if row%bs != 0 {
		return 0, "row of " + strconv.FormatUint(row, 10) + " elements is not a multiple of the block size " + strconv.FormatUint(bs, 10) + " of type " + t.Type.String()
	}
	hi, lo := bits.Mul64(n/bs, t.Type.TypeSize())
	if hi != 0 || lo > math.MaxInt64 {
		return 0, "size in bytes overflows"
	}
	return lo, ""
}

// String returns a short description of the tensor such as
// "blk.0.attn_q.weight Q4_K [4096 4096]".
func (t TensorInfo) String() string {
	var b strings.Builder
	b.WriteString(t.Name)
	b.WriteByte(' ')
	b.WriteString(t.Type.String())
	b.WriteString(" [")
	for i, d := range t.Dims {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatUint(d, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// fileTypes are the names of llama.cpp's llama_ftype values, in the short
// form used in model file names.
var fileTypes = map[uint32]string{
	0:  "F32",
	1:  "F16",
	2:  "Q4_0",
	3:  "Q4_1",
	4:  "Q4_1_SOME_F16", // removed
	5:  "Q4_2",          // removed
	6:  "Q4_3",          // removed
	7:  "Q8_0",
	8:  "Q5_0",
	9:  "Q5_1",
	10: "Q2_K",
	11: "Q3_K_S",
	12: "Q3_K_M",
	13: "Q3_K_L",
	14: "Q4_K_S",
	15: "Q4_K_M",
	16: "Q5_K_S",
	17: "Q5_K_M",
	18: "Q6_K",
	19: "IQ2_XXS",
	20: "IQ2_XS",
	21: "Q2_K_S",
	22: "IQ3_XS",
	23: "IQ3_XXS",
	24: "IQ1_S",
	25: "IQ4_NL",
	26: "IQ3_S",
	27: "IQ3_M",
	28: "IQ2_S",
	29: "IQ2_M",
	30: "IQ4_XS",
	31: "IQ1_M",
	32: "BF16",
	33: "Q4_0_4_4", // removed
	34: "Q4_0_4_8", // removed
	35: "Q4_0_8_8", // removed
	36: "TQ1_0",
	37: "TQ2_0",
	38: "MXFP4_MOE",
}

// fileTypeGuessed is llama.cpp's LLAMA_FTYPE_GUESSED flag.
const fileTypeGuessed = 1024

// FileType returns the name of a general.file_type value (llama.cpp's enum
// llama_ftype), such as "F16" or "Q4_K_M". Values with the "guessed" flag
// (1024) get the suffix " (guessed)"; unknown values give "unknown(N)".
func FileType(ft uint32) string {
	if s, ok := fileTypes[ft]; ok {
		return s
	}
	if ft&fileTypeGuessed != 0 {
		if s, ok := fileTypes[ft&^fileTypeGuessed]; ok {
			return s + " (guessed)"
		}
	}
	return "unknown(" + strconv.FormatUint(uint64(ft), 10) + ")"
}
