package gguf

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// A ValueType is the type of a metadata value (enum gguf_type).
type ValueType uint32

// The metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

const numValueTypes = 13

var valueTypeNames = [numValueTypes]string{
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
}

// valueTypeSizes holds the encoded size of each fixed-size type, and the
// smallest encoded size (the length prefix) of a string.
var valueTypeSizes = [numValueTypes]uint64{1, 1, 2, 2, 4, 4, 4, 1, 8, 0, 8, 8, 8}

// String returns the name of the type, such as "uint32", or "ValueType(N)"
// for an unknown type.
func (t ValueType) String() string {
	if t < numValueTypes {
		return valueTypeNames[t]
	}
	return "ValueType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// valid reports whether t is a known type.
func (t ValueType) valid() bool { return t < numValueTypes }

func (t ValueType) signed() bool {
	return t == TypeInt8 || t == TypeInt16 || t == TypeInt32 || t == TypeInt64
}

func (t ValueType) unsigned() bool {
	return t == TypeUint8 || t == TypeUint16 || t == TypeUint32 || t == TypeUint64
}

// A Value is a metadata value: a scalar of one of the types other than
// TypeArray, or an array of such scalars. Arrays of arrays are not
// supported (llama.cpp rejects them).
//
// Arrays are stored as typed slices: an array of strings as a []string, an
// array of int32 as an []int32 and so on. The slice accessors return the
// stored slice without copying it; callers must not modify it.
//
// The zero Value is a uint8 scalar of value 0. Values are built with the
// constructors such as StringValue, Uint32Value and ArrayValue.
type Value struct {
	// Type is the type of a scalar, or TypeArray for an array.
	Type ValueType

	elem ValueType // element type of an array
	num  uint64    // scalar number: integer (signed ones sign-extended), bool or float bits
	str  string    // scalar string
	arr  any       // array: a slice of the Go type matching elem, or nil if empty
}

// Scalar constructors.

// Uint8Value returns a uint8 Value.
func Uint8Value(x uint8) Value { return Value{Type: TypeUint8, num: uint64(x)} }

// Int8Value returns an int8 Value.
func Int8Value(x int8) Value { return Value{Type: TypeInt8, num: uint64(int64(x))} }

// Uint16Value returns a uint16 Value.
func Uint16Value(x uint16) Value { return Value{Type: TypeUint16, num: uint64(x)} }

// Int16Value returns an int16 Value.
func Int16Value(x int16) Value { return Value{Type: TypeInt16, num: uint64(int64(x))} }

// Uint32Value returns a uint32 Value.
func Uint32Value(x uint32) Value { return Value{Type: TypeUint32, num: uint64(x)} }

// Int32Value returns an int32 Value.
func Int32Value(x int32) Value { return Value{Type: TypeInt32, num: uint64(int64(x))} }

// Uint64Value returns a uint64 Value.
func Uint64Value(x uint64) Value { return Value{Type: TypeUint64, num: x} }

// Int64Value returns an int64 Value.
func Int64Value(x int64) Value { return Value{Type: TypeInt64, num: uint64(x)} }

// Float32Value returns a float32 Value.
func Float32Value(x float32) Value {
	return Value{Type: TypeFloat32, num: uint64(math.Float32bits(x))}
}

// Float64Value returns a float64 Value.
func Float64Value(x float64) Value { return Value{Type: TypeFloat64, num: math.Float64bits(x)} }

// BoolValue returns a bool Value.
func BoolValue(x bool) Value {
	v := Value{Type: TypeBool}
	if x {
		v.num = 1
	}
	return v
}

// StringValue returns a string Value.
func StringValue(s string) Value { return Value{Type: TypeString, str: s} }

// ArrayElem is the set of Go types that can be array elements.
type ArrayElem interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string | uint64 | int64 | float64
}

// ArrayValue returns an array Value holding a copy of elems.
func ArrayValue[T ArrayElem](elems []T) Value {
	var elem ValueType
	switch any(elems).(type) {
	case []uint8:
		elem = TypeUint8
	case []int8:
		elem = TypeInt8
	case []uint16:
		elem = TypeUint16
	case []int16:
		elem = TypeInt16
	case []uint32:
		elem = TypeUint32
	case []int32:
		elem = TypeInt32
	case []float32:
		elem = TypeFloat32
	case []bool:
		elem = TypeBool
	case []string:
		elem = TypeString
	case []uint64:
		elem = TypeUint64
	case []int64:
		elem = TypeInt64
	case []float64:
		elem = TypeFloat64
	}
	v := Value{Type: TypeArray, elem: elem}
	if len(elems) > 0 {
		v.arr = slices.Clone(elems)
	}
	return v
}

// IsArray reports whether v is an array.
func (v Value) IsArray() bool { return v.Type == TypeArray }

// ElemType returns the type of the elements of an array, or v.Type for a
// scalar.
func (v Value) ElemType() ValueType {
	if v.Type == TypeArray {
		return v.elem
	}
	return v.Type
}

// Len returns the number of elements of an array, or 1 for a scalar.
func (v Value) Len() int {
	if v.Type != TypeArray {
		return 1
	}
	switch a := v.arr.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []bool:
		return len(a)
	case []string:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	}
	return 0
}

// Index returns element i of an array as a scalar Value. It panics if v is
// not an array or i is out of range.
func (v Value) Index(i int) Value {
	if v.Type != TypeArray {
		panic("gguf: Index of non-array Value")
	}
	switch a := v.arr.(type) {
	case []uint8:
		return Uint8Value(a[i])
	case []int8:
		return Int8Value(a[i])
	case []uint16:
		return Uint16Value(a[i])
	case []int16:
		return Int16Value(a[i])
	case []uint32:
		return Uint32Value(a[i])
	case []int32:
		return Int32Value(a[i])
	case []float32:
		return Float32Value(a[i])
	case []bool:
		return BoolValue(a[i])
	case []string:
		return StringValue(a[i])
	case []uint64:
		return Uint64Value(a[i])
	case []int64:
		return Int64Value(a[i])
	case []float64:
		return Float64Value(a[i])
	}
	panic("gguf: Index out of range")
}

// Uint returns the value of an integer scalar of any type if it is
// non-negative. It reports false for other values.
func (v Value) Uint() (uint64, bool) {
	switch {
	case v.Type.unsigned():
		return v.num, true
	case v.Type.signed() && int64(v.num) >= 0:
		return v.num, true
	}
	return 0, false
}

// Int returns the value of an integer scalar of any type if it fits in an
// int64. It reports false for other values.
func (v Value) Int() (int64, bool) {
	switch {
	case v.Type.signed():
		return int64(v.num), true
	case v.Type.unsigned() && v.num <= math.MaxInt64:
		return int64(v.num), true
	}
	return 0, false
}

// Float returns the value of a float32 or float64 scalar. It reports false
// for other values.
func (v Value) Float() (float64, bool) {
	switch v.Type {
	case TypeFloat32:
		return float64(math.Float32frombits(uint32(v.num))), true
	case TypeFloat64:
		return math.Float64frombits(v.num), true
	}
	return 0, false
}

// Bool returns the value of a bool scalar. It reports false as its second
// result for other values.
func (v Value) Bool() (bool, bool) {
	if v.Type == TypeBool {
		return v.num != 0, true
	}
	return false, false
}

// Str returns the value of a string scalar. It reports false for other
// values. (String formats any Value.)
func (v Value) Str() (string, bool) {
	if v.Type == TypeString {
		return v.str, true
	}
	return "", false
}

func arrayOf[T any](v Value, elem ValueType) []T {
	if v.Type != TypeArray || v.elem != elem {
		return nil
	}
	a, _ := v.arr.([]T)
	if a == nil {
		return []T{}
	}
	return a
}

// Strings returns the elements of an array of strings, or nil if v is not
// one.
func (v Value) Strings() []string { return arrayOf[string](v, TypeString) }

// Uint8s returns the elements of an array of uint8, or nil if v is not one.
func (v Value) Uint8s() []uint8 { return arrayOf[uint8](v, TypeUint8) }

// Int8s returns the elements of an array of int8, or nil if v is not one.
func (v Value) Int8s() []int8 { return arrayOf[int8](v, TypeInt8) }

// Uint16s returns the elements of an array of uint16, or nil if v is not
// one.
func (v Value) Uint16s() []uint16 { return arrayOf[uint16](v, TypeUint16) }

// Int16s returns the elements of an array of int16, or nil if v is not one.
func (v Value) Int16s() []int16 { return arrayOf[int16](v, TypeInt16) }

// Uint32s returns the elements of an array of uint32, or nil if v is not
// one.
func (v Value) Uint32s() []uint32 { return arrayOf[uint32](v, TypeUint32) }

// Int32s returns the elements of an array of int32, or nil if v is not one.
func (v Value) Int32s() []int32 { return arrayOf[int32](v, TypeInt32) }

// Uint64s returns the elements of an array of uint64, or nil if v is not
// one.
func (v Value) Uint64s() []uint64 { return arrayOf[uint64](v, TypeUint64) }

// Int64s returns the elements of an array of int64, or nil if v is not one.
func (v Value) Int64s() []int64 { return arrayOf[int64](v, TypeInt64) }

// Float32s returns the elements of an array of float32, or nil if v is not
// one.
func (v Value) Float32s() []float32 { return arrayOf[float32](v, TypeFloat32) }

// Float64s returns the elements of an array of float64, or nil if v is not
// one.
func (v Value) Float64s() []float64 { return arrayOf[float64](v, TypeFloat64) }

// Bools returns the elements of an array of bool, or nil if v is not one.
func (v Value) Bools() []bool { return arrayOf[bool](v, TypeBool) }

// Equal reports whether v and w have the same type and contents. Floats
// are compared by their bits, so a NaN equals itself.
func (v Value) Equal(w Value) bool {
	if v.Type != w.Type {
		return false
	}
	if v.Type != TypeArray {
		return v.num == w.num && v.str == w.str
	}
	if v.elem != w.elem || v.Len() != w.Len() {
		return false
	}
	if v.Len() == 0 {
		return true
	}
	switch a := v.arr.(type) {
	case []float32:
		b, _ := w.arr.([]float32)
		if len(b) != len(a) {
			return false
		}
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				return false
			}
		}
		return true
	case []float64:
		b, _ := w.arr.([]float64)
		if len(b) != len(a) {
			return false
		}
		for i := range a {
			if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
				return false
			}
		}
		return true
	case []uint8:
		return equalAs(a, w.arr)
	case []int8:
		return equalAs(a, w.arr)
	case []uint16:
		return equalAs(a, w.arr)
	case []int16:
		return equalAs(a, w.arr)
	case []uint32:
		return equalAs(a, w.arr)
	case []int32:
		return equalAs(a, w.arr)
	case []bool:
		return equalAs(a, w.arr)
	case []string:
		return equalAs(a, w.arr)
	case []uint64:
		return equalAs(a, w.arr)
	case []int64:
		return equalAs(a, w.arr)
	}
	return false
}

func equalAs[T comparable](a []T, w any) bool {
	b, ok := w.([]T)
	return ok && slices.Equal(a, b)
}

// Limits of the short form printed by String.
const (
	maxPrintElems  = 5
	maxPrintString = 64
)

// String returns a short, human-readable form of v. Strings are quoted and
// cut to 64 bytes; arrays show their element type, length and first five
// elements, as in `[512]string{"<unk>", "<s>", "</s>", "<0x00>", "<0x01>", ...}`.
func (v Value) String() string {
	var b strings.Builder
	if v.Type != TypeArray {
		v.appendScalar(&b)
		return b.String()
	}
	n := v.Len()
	b.WriteByte('[')
	b.WriteString(strconv.Itoa(n))
	b.WriteByte(']')
	b.WriteString(v.elem.String())
	b.WriteByte('{')
	for i := 0; i < n && i < maxPrintElems; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		e := v.Index(i)
		e.appendScalar(&b)
	}
	if n > maxPrintElems {
		b.WriteString(", ...")
	}
	b.WriteByte('}')
	return b.String()
}

func (v Value) appendScalar(b *strings.Builder) {
	switch {
	case v.Type.unsigned():
		b.WriteString(strconv.FormatUint(v.num, 10))
	case v.Type.signed():
		b.WriteString(strconv.FormatInt(int64(v.num), 10))
	case v.Type == TypeFloat32:
		b.WriteString(strconv.FormatFloat(float64(math.Float32frombits(uint32(v.num))), 'g', -1, 32))
	case v.Type == TypeFloat64:
		b.WriteString(strconv.FormatFloat(math.Float64frombits(v.num), 'g', -1, 64))
	case v.Type == TypeBool:
		b.WriteString(strconv.FormatBool(v.num != 0))
	case v.Type == TypeString:
		s := v.str
		if len(s) > maxPrintString {
			b.WriteString(strconv.Quote(s[:maxPrintString]))
			b.WriteString("...")
		} else {
			b.WriteString(strconv.Quote(s))
		}
	default:
		b.WriteString("<invalid ")
		b.WriteString(v.Type.String())
		b.WriteByte('>')
	}
}
