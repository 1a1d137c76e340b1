package llama

/*
#include <stdlib.h>
#include "jsonschema.h"
*/
import "C"

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unsafe"

	// llama.cpp's common library: json-schema-to-grammar.cpp, with
	// common.cpp, sampling.cpp and log.cpp, which it needs. It includes
	// nlohmann/json, which the module leaves out with its vendor
	// directory: the system's copy is used (Debian's nlohmann-json3-dev,
	// installed by `make deps`). Linking it adds no init-time work beyond
	// a few static tables, and no network code (LLAMA_USE_CURL stays
	// undefined).
	_ "github.com/ollama/ollama/llama/llama.cpp/common"

	// Says what to install when the C++ compiler lacks nlohmann/json.
	_ "github.com/llamago/llamago/internal/cdeps"
)

// ErrInvalidSchema is returned by JSONSchemaGrammar for a schema that is
// not valid JSON, that is too large or too deeply nested, or that
// llama.cpp's converter refuses.
var ErrInvalidSchema = errors.New("llama: invalid JSON schema")

// Limits on the schemas JSONSchemaGrammar accepts. llama.cpp's converter
// recurses on the nesting of the schema, of its references and of its
// patterns, and runs std::regex over property names and references, so
// these bound the stack it can use: on an 8 MiB thread stack it overflows
// past about 20000 bytes of punctuation in a name, 10000 nested groups in
// a pattern or a few thousand levels of nesting. The others bound its
// work, which grows faster than the schema: with the cube of an object's
// optional properties, with the product of the references and the
// schema's size (it copies the whole schema for each), with the square of
// the rules whose names collide, and with the length of the rule names it
// builds from the property names of every level.
const (
	maxSchemaSize     = 1 << 20 // bytes
	maxSchemaDepth    = 128     // nested arrays and objects
	maxSchemaName     = 1024    // bytes in a property name or a $ref
	maxPatternDepth   = 64      // nested groups in a pattern
	maxPatternLength  = 16 << 10
	maxSchemaObjects  = 4096    // JSON objects in the schema
	maxSchemaOptional = 256     // optional properties of an object
	maxSchemaOptWork  = 1 << 26 // the sum of their cubes
	maxSchemaRefWork  = 1 << 21 // distinct $refs × JSON values
	maxSchemaRefDepth = 1024    // nesting followed through $refs
	maxSchemaNames    = 16 << 20
)

// JSONSchemaGrammar converts a JSON Schema to a GBNF grammar (start rule
// "root") with llama.cpp's own converter, common/json-schema-to-grammar,
// so a schema constrains generation exactly as in llama.cpp's tools:
// pass the grammar to WithGrammar.
//
// The converter supports most of what structured output needs: types
// (and unions of them), properties with required and optional ones,
// additionalProperties (absent means none are allowed), items,
// prefixItems, minItems and maxItems, enum and const, anyOf and oneOf,
// allOf of objects, local $ref into $defs or definitions, string
// minLength, maxLength, pattern (anchored with ^ and $) and the formats
// date, time, date-time and uuid, and minimum, maximum, exclusiveMinimum
// and exclusiveMaximum for integers. It ignores bounds on non-integer
// numbers, and does not know regular-expression classes such as \d
// (the grammar it makes of them does not parse). Remote references are
// not fetched. One departure: a root that is a $ref is passed as a
// one-way anyOf, since the converter leaves the references inside its
// definitions unresolved (allowing any object there).
//
// The schema is checked in Go first, for what the converter would crash,
// loop or labour on: it must be a JSON object of at most 1 MiB, nested at
// most 128 levels (through its references too), of at most 4096 objects,
// none with more than 256 optional properties; patterns may not use
// (?...) groups or quantifiers with nothing to repeat; minimums may not
// exceed maximums; type arrays list distinct types; references may not
// refer to themselves. The grammar it converts to must pass NewSampler's
// bounds (see WithGrammar). A schema that does not pass, or that the
// converter refuses, returns an error wrapping ErrInvalidSchema.
func JSONSchemaGrammar(schema string) (string, error) {
	if err := checkSchema([]byte(schema)); err != nil {
		return "", err
	}
	g, err := convertSchema(schema)
	if err != nil {
		return "", err
	}
	// What the schema's repetitions and alternatives expand to, as
	// NewSampler would refuse it.
	if err := checkGrammar(g, "root"); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	return g, nil
}

// convertSchema runs llama.cpp's converter.
func convertSchema(schema string) (string, error) {
	cs := C.CBytes([]byte(schema))
	defer C.free(cs)
	var cerr *C.char
	g := C.llamago_json_schema_to_grammar((*C.char)(cs), C.size_t(len(schema)), &cerr)
	if g == nil {
		msg := "out of memory"
		if cerr != nil {
			msg = C.GoString(cerr)
			C.free(unsafe.Pointer(cerr))
		}
		return "", fmt.Errorf("%w: %s", ErrInvalidSchema, oneLine(msg))
	}
	defer C.free(unsafe.Pointer(g))
	return C.GoString(g), nil
}

// checkSchema refuses what could take the converter past its stack, into
// a crash or a loop, or into work or memory out of proportion to the
// schema.
func checkSchema(schema []byte) error {
	if len(schema) > maxSchemaSize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidSchema, len(schema), maxSchemaSize)
	}
	d := json.NewDecoder(bytes.NewReader(schema))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the schema", ErrInvalidSchema)
	}
	if _, ok := v.(map[string]any); !ok {
		return fmt.Errorf("%w: the schema must be a JSON object", ErrInvalidSchema)
	}
	c := schemaChecker{root: v, refs: map[string]bool{}}
	if err := c.walk(v, 0, 0); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	if err := c.checkRefs(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	return nil
}

// schemaChecker walks a schema, counting what the converter's work grows
// with.
type schemaChecker struct {
	root     any
	refs     map[string]bool // distinct $ref values
	values   int             // JSON values
	objects  int
	depth    int // of the whole schema
	optWork  uint64
	nameWork int
}

func (c *schemaChecker) walk(v any, depth, path int) error {
	if depth > maxSchemaDepth {
		return fmt.Errorf("nested more than %d levels", maxSchemaDepth)
	}
	c.values++
	c.depth = max(c.depth, depth)
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			if err := c.walk(x, depth+1, path+16); err != nil {
				return err
			}
		}
	case map[string]any:
		if c.objects++; c.objects > maxSchemaObjects {
			return fmt.Errorf("more than %d objects", maxSchemaObjects)
		}
		// The converter names rules after the path of property names
		// down to them, and a few words more.
		if c.nameWork += path; c.nameWork > maxSchemaNames {
			return fmt.Errorf("the rule names made of its property names would take more than %d bytes: property names too long for its nesting", maxSchemaNames)
		}
		if err := c.node(v); err != nil {
			return err
		}
		for k, x := range v {
			if len(k) > maxSchemaName {
				return fmt.Errorf("property name of %d bytes, at most %d", len(k), maxSchemaName)
			}
			if s, ok := x.(string); ok {
				switch k {
				case "$ref":
					if len(s) > maxSchemaName {
						return fmt.Errorf("$ref of %d bytes, at most %d", len(s), maxSchemaName)
					}
					c.refs[s] = true
				case "pattern":
					if err := checkPattern(s); err != nil {
						return err
					}
				}
			}
			if err := c.walk(x, depth+1, path+len(k)+16); err != nil {
				return err
			}
		}
	}
	return nil
}

// node checks the keywords of one schema object.
func (c *schemaChecker) node(v map[string]any) error {
	// A type array is converted as a union of copies of the node, one per
	// type: a repeated type converts the node's subschemas again, at
	// every level.
	if ts, ok := v["type"].([]any); ok {
		seen := map[string]bool{}
		for _, t := range ts {
			s, ok := t.(string)
			if !ok || seen[s] {
				return fmt.Errorf("a type array must list distinct type names, not %s", jsonText(ts))
			}
			seen[s] = true
		}
	}
	for _, b := range [][2]string{{"minLength", "maxLength"}, {"minItems", "maxItems"}} {
		lo, okLo := jsonInt(v[b[0]])
		hi, okHi := jsonInt(v[b[1]])
		if okLo && okHi && lo > hi {
			return fmt.Errorf("%s %d is greater than %s %d", b[0], lo, b[1], hi)
		}
	}
	// The converter builds an object's rule from every suffix of its
	// optional properties, in time that grows with their cube.
	var k uint64
	if props, ok := v["properties"].(map[string]any); ok {
		k = uint64(len(props))
		if req, ok := v["required"].([]any); ok {
			seen := map[string]bool{}
			for _, r := range req {
				if s, ok := r.(string); ok && !seen[s] {
					if _, ok := props[s]; ok {
						seen[s] = true
						k--
					}
				}
			}
		}
		if ap, ok := v["additionalProperties"]; ok && ap != false {
			k++
		}
	} else if all, ok := v["allOf"].([]any); ok {
		// Merged into one object, all of them optional at most.
		var comps []any
		for _, x := range all {
			if m, ok := x.(map[string]any); ok {
				if any, ok := m["anyOf"].([]any); ok {
					comps = append(comps, any...)
					continue
				}
			}
			comps = append(comps, x)
		}
		for _, x := range comps {
			m, _ := x.(map[string]any)
			if ref, ok := m["$ref"].(string); ok {
				m, _ = c.resolve(ref).(map[string]any)
			}
			if props, ok := m["properties"].(map[string]any); ok {
				k += uint64(len(props))
			}
		}
	}
	if k > maxSchemaOptional {
		return fmt.Errorf("an object with %d optional properties, at most %d", k, maxSchemaOptional)
	}
	if c.optWork += k * k * k; c.optWork > maxSchemaOptWork {
		return fmt.Errorf("too many optional properties in its objects together")
	}
	return nil
}

// checkRefs bounds the converter's work on the references: it copies the
// whole schema to resolve each, and converts a referenced schema where it
// is first referred to, nesting it there.
func (c *schemaChecker) checkRefs() error {
	if n := len(c.refs); n*c.values > maxSchemaRefWork {
		return fmt.Errorf("%d references in a schema of %d values: more than %d references × values", n, c.values, maxSchemaRefWork)
	}
	nesting := c.depth
	for ref := range c.refs {
		t := c.resolve(ref)
		if t == nil {
			continue // the converter refuses it
		}
		nesting += jsonDepth(t, 0)
		// A reference to a reference, and so on, must end: the
		// converter follows such chains in allOf without a guard.
		seen := map[string]bool{ref: true}
		for {
			m, ok := t.(map[string]any)
			if !ok {
				break
			}
			next, ok := m["$ref"].(string)
			if !ok {
				break
			}
			if seen[next] {
				return fmt.Errorf("$ref %q refers to itself", ref)
			}
			seen[next] = true
			t = c.resolve(next)
		}
	}
	if nesting > maxSchemaRefDepth {
		return fmt.Errorf("nested more than %d levels through its references", maxSchemaRefDepth)
	}
	return nil
}

// resolve finds a local reference ("#/$defs/x") as the converter does:
// one step per "/"-separated name, array elements by number; nil if it
// does not resolve.
func (c *schemaChecker) resolve(ref string) any {
	_, frag, ok := strings.Cut(ref, "#")
	if !ok || !strings.HasPrefix(frag, "/") {
		return nil
	}
	t := c.root
	for _, sel := range strings.Split(frag, "/")[1:] {
		switch x := t.(type) {
		case map[string]any:
			t = x[sel]
		case []any:
			// std::stoul: leading blanks, then the digits it can read.
			sel = strings.TrimLeft(sel, " \t\n\v\f\r")
			end := 0
			for end < len(sel) && isDigit(sel[end]) {
				end++
			}
			i, err := strconv.ParseUint(sel[:end], 10, 64)
			if err != nil || i >= uint64(len(x)) {
				return nil
			}
			t = x[i]
		default:
			return nil
		}
		if t == nil {
			return nil
		}
	}
	return t
}

func jsonDepth(v any, depth int) int {
	d := depth
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			d = max(d, jsonDepth(x, depth+1))
		}
	case map[string]any:
		for _, x := range v {
			d = max(d, jsonDepth(x, depth+1))
		}
	}
	return d
}

// jsonInt reads a JSON integer decoded with UseNumber.
func jsonInt(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	return i, err == nil
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkPattern refuses the patterns llama.cpp's converter (_visit_pattern)
// mishandles: it reads the item before a quantifier without checking
// there is one (a segmentation fault for "^+a$", "^(*)$", and for every
// (?...) group, whose "?" it takes for a quantifier), and loops forever on
// a "]" or "}" outside a class or repetition. It walks the pattern as the
// converter does.
func checkPattern(p string) error {
	if len(p) > maxPatternLength {
		return fmt.Errorf("pattern of %d bytes, at most %d", len(p), maxPatternLength)
	}
	if p == "" || p[0] != '^' || p[len(p)-1] != '$' || len(p) < 2 {
		return nil // the converter refuses it
	}
	sub := p[1 : len(p)-1]
	n, i := len(sub), 0
	bad := func(format string, args ...any) error {
		return fmt.Errorf("pattern %q: %s", p, fmt.Sprintf(format, args...))
	}
	nonLiteral := func(c byte) bool { return strings.IndexByte("|.()[]{}*+?", c) >= 0 }
	var group func(depth int) error
	group = func(depth int) error {
		if depth > maxPatternDepth {
			return fmt.Errorf("pattern nests groups more than %d levels", maxPatternDepth)
		}
		empty := true // nothing before a quantifier yet
		for i < n {
			switch c := sub[i]; c {
			case '.', '|':
				i++
			case '(':
				i++
				if i < n && sub[i] == '?' {
					return bad("(?...) groups (non-capturing, named, lookahead, lookbehind) are not supported, at offset %d", i)
				}
				if err := group(depth + 1); err != nil {
					return err
				}
			case ')':
				i++
				return nil
			case '[':
				for i++; i < n && sub[i] != ']'; {
					if sub[i] == '\\' {
						i += 2
					} else {
						i++
					}
				}
				i++
			case '*', '+', '?', '{':
				if empty {
					return bad("%q at offset %d has nothing before it to repeat", c, i+1)
				}
				i++
				if c != '{' {
					continue
				}
				start := i
				for i < n && sub[i] != '}' {
					i++
				}
				body := sub[start:min(i, n)]
				i++
				// A count std::stoi cannot read ends the converter's
				// group there.
				for _, num := range strings.Split(body, ",") {
					if (num != "" || !strings.Contains(body, ",")) && !stoiReads(num) {
						return nil
					}
				}
			default:
				// A run of literal characters, as the converter takes
				// them; a "]" or "}" here it never steps over.
				lit := 0
				for i < n {
					switch {
					case sub[i] == '\\' && i < n-1:
						i += 2
					case sub[i] == '"':
						i++
					case !nonLiteral(sub[i]) && (i == n-1 || lit == 0 || sub[i+1] == '.' || !nonLiteral(sub[i+1])):
						i++
					default:
						goto done
					}
					lit++
				}
			done:
				if lit == 0 {
					return bad("unbalanced %q at offset %d", sub[i], i+1)
				}
			}
			empty = false
		}
		return nil
	}
	return group(0)
}

// stoiReads reports whether std::stoi finds a number at the start of s.
func stoiReads(s string) bool {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	return s != "" && isDigit(s[0])
}

// oneLine joins the lines of a converter message.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, ":\n", ": ")
	return strings.ReplaceAll(s, "\n", "; ")
}
