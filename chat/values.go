package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

// toValue converts a Go value to a template value. Maps, slices and
// structs go through encoding/json and are decoded in document order, so a
// struct's fields or a json.RawMessage's keys keep their order, as a
// Python dict would (map[string]any keys come out sorted: encoding/json
// sorts them).
func toValue(v any) (jinja.Value, error) {
	switch x := v.(type) {
	case nil:
		return jinja.None(), nil
	case jinja.Value:
		return x, nil
	case string:
		return jinja.NewString(x), nil
	case bool:
		return jinja.NewBool(x), nil
	case int:
		return jinja.NewInt(int64(x)), nil
	case int32:
		return jinja.NewInt(int64(x)), nil
	case int64:
		return jinja.NewInt(x), nil
	case float64:
		return jinja.NewFloat(x), nil
	case float32:
		return jinja.NewFloat(float64(x)), nil
	case json.RawMessage:
		return decodeJSON(x)
	case []byte:
		return jinja.NewString(string(x)), nil
	}
	rv := reflect.ValueOf(v)
	if (rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface) && rv.IsNil() {
		return jinja.None(), nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return jinja.Value{}, fmt.Errorf("chat: template value of type %T: %w", v, err)
	}
	return decodeJSON(data)
}

// decodeJSON decodes a JSON document into a template value, keeping the
// order of object keys and the difference between integers and floats.
func decodeJSON(data []byte) (jinja.Value, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := decodeValue(d, 0)
	if err != nil {
		return jinja.Value{}, fmt.Errorf("chat: template value: %w", err)
	}
	if _, err := d.Token(); err == nil {
		return jinja.Value{}, fmt.Errorf("chat: template value: trailing data after JSON value")
	}
	return v, nil
}

func decodeValue(d *json.Decoder, depth int) (jinja.Value, error) {
	if depth > 1000 {
		return jinja.Value{}, fmt.Errorf("JSON nested too deeply")
	}
	t, err := d.Token()
	if err != nil {
		return jinja.Value{}, err
	}
	switch x := t.(type) {
	case nil:
		return jinja.None(), nil
	case bool:
		return jinja.NewBool(x), nil
	case string:
		return jinja.NewString(x), nil
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := x.Int64(); err == nil {
				return jinja.NewInt(i), nil
			}
		}
		f, err := x.Float64()
		if err != nil {
			return jinja.NewString(s), nil
		}
		return jinja.NewFloat(f), nil
	case json.Delim:
		switch x {
		case '[':
			var items []jinja.Value
			for d.More() {
				v, err := decodeValue(d, depth+1)
				if err != nil {
					return jinja.Value{}, err
				}
				items = append(items, v)
			}
			if _, err := d.Token(); err != nil {
				return jinja.Value{}, err
			}
			if items == nil {
				items = []jinja.Value{}
			}
			return jinja.NewList(items), nil
		case '{':
			obj := jinja.NewDict()
			dict := obj.AsDict()
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return jinja.Value{}, err
				}
				k, _ := kt.(string)
				v, err := decodeValue(d, depth+1)
				if err != nil {
					return jinja.Value{}, err
				}
				dict.Set(k, v)
			}
			if _, err := d.Token(); err != nil {
				return jinja.Value{}, err
			}
			return obj, nil
		}
	}
	return jinja.Value{}, fmt.Errorf("unexpected JSON token %v", t)
}

// jsonOptions are the arguments of Python's json.dumps that tojson takes.
type jsonOptions struct {
	ensureASCII bool
	indent      string // "" for none; with hasIndent, "" means newlines only
	hasIndent   bool
	itemSep     string
	keySep      string
	sortKeys    bool
}

// toJSON is transformers' tojson filter:
//
//	json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
//
// with Python's formatting: ", " and ": " separators (", " becomes ","
// with an indent), floats as Python's repr, no HTML escaping.
func toJSON(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Value{}, fmt.Errorf("tojson: missing value")
	}
	o := jsonOptions{}
	pos := args[1:]
	arg := func(name string, i int) (jinja.Value, bool) {
		if v, ok := kwargs[name]; ok {
			return v, true
		}
		if i < len(pos) {
			return pos[i], true
		}
		return jinja.Value{}, false
	}
	// Positional order is that of transformers' tojson(x, ensure_ascii, indent, separators, sort_keys).
	if v, ok := arg("ensure_ascii", 0); ok {
		o.ensureASCII = v.IsTruthy()
	}
	if v, ok := arg("indent", 1); ok && !v.IsNone() && !v.IsUndefined() {
		o.hasIndent = true
		switch {
		case v.IsString():
			o.indent = v.AsString()
		case v.IsInt():
			n := v.AsInt()
			if n < 0 || n > 64 {
				n = max(0, min(n, 64))
			}
			o.indent = strings.Repeat(" ", int(n))
		default:
			return jinja.Value{}, fmt.Errorf("tojson: indent must be an integer or a string")
		}
	}
	o.itemSep, o.keySep = ", ", ": "
	if o.hasIndent {
		o.itemSep = ","
	}
	if v, ok := arg("separators", 2); ok && !v.IsNone() && !v.IsUndefined() {
		if !v.IsList() || v.AsList().Len() != 2 || !v.AsList().Get(0).IsString() || !v.AsList().Get(1).IsString() {
			return jinja.Value{}, fmt.Errorf("tojson: separators must be two strings")
		}
		o.itemSep, o.keySep = v.AsList().Get(0).AsString(), v.AsList().Get(1).AsString()
	}
	if v, ok := arg("sort_keys", 3); ok {
		o.sortKeys = v.IsTruthy()
	}
	var b strings.Builder
	if err := o.encode(&b, args[0], 0); err != nil {
		return jinja.Value{}, err
	}
	return jinja.NewString(b.String()), nil
}

func (o *jsonOptions) newline(b *strings.Builder, level int) {
	if !o.hasIndent {
		return
	}
	b.WriteByte('\n')
	for range level {
		b.WriteString(o.indent)
	}
}

func (o *jsonOptions) encode(b *strings.Builder, v jinja.Value, level int) error {
	if level > 1000 {
		return fmt.Errorf("tojson: value nested too deeply")
	}
	switch {
	case v.IsUndefined():
		return fmt.Errorf("tojson: Object of type Undefined is not JSON serializable")
	case v.IsNone():
		b.WriteString("null")
	case v.IsBool():
		if v.AsBool() {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case v.IsInt():
		b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		b.WriteString(pyFloat(v.AsFloat(), true))
	case v.IsString():
		o.quote(b, v.AsString())
	case v.IsList():
		items := v.AsList().Items
		if len(items) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			o.newline(b, level+1)
			if err := o.encode(b, it, level+1); err != nil {
				return err
			}
		}
		o.newline(b, level)
		b.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		keys := d.OrderedKeys()
		if len(keys) == 0 {
			b.WriteString("{}")
			return nil
		}
		if o.sortKeys {
			// Python sorts str keys by code point: byte order in UTF-8.
			slices.Sort(keys)
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			o.newline(b, level+1)
			o.quote(b, k)
			b.WriteString(o.keySep)
			val, _ := d.Get(k)
			if err := o.encode(b, val, level+1); err != nil {
				return err
			}
		}
		o.newline(b, level)
		b.WriteByte('}')
	default:
		return fmt.Errorf("tojson: value %s is not JSON serializable", v.String())
	}
	return nil
}

// quote writes s as a JSON string the way Python's json module does.
func (o *jsonOptions) quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (o.ensureASCII && r == 0x7f):
				fmt.Fprintf(b, `\u%04x`, r)
			case o.ensureASCII && r > 0x7f:
				if r == utf8.RuneError {
					r = 0xfffd
				}
				if r > 0xffff {
					r -= 0x10000
					fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
				} else {
					fmt.Fprintf(b, `\u%04x`, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

// pyFloat formats f as Python's repr does; json is for json.dumps, which
// writes NaN and Infinity.
func pyFloat(f float64, json bool) string {
	switch {
	case math.IsNaN(f):
		if json {
			return "NaN"
		}
		return "nan"
	case math.IsInf(f, 1):
		if json {
			return "Infinity"
		}
		return "inf"
	case math.IsInf(f, -1):
		if json {
			return "-Infinity"
		}
		return "-inf"
	}
	// Shortest round-tripping digits, laid out as repr: positional for
	// exponents in [-4, 16), scientific otherwise.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	digits := strings.Replace(mant, ".", "", 1)
	var out string
	if exp < -4 || exp >= 16 {
		out = digits[:1]
		if len(digits) > 1 {
			out += "." + digits[1:]
		}
		sign := "+"
		if exp < 0 {
			sign, exp = "-", -exp
		}
		out += fmt.Sprintf("e%s%02d", sign, exp)
	} else if exp < 0 {
		out = "0." + strings.Repeat("0", -exp-1) + digits
	} else if exp+1 >= len(digits) {
		out = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	} else {
		out = digits[:exp+1] + "." + digits[exp+1:]
	}
	if neg {
		out = "-" + out
	}
	return out
}
