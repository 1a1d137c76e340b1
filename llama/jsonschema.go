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
)

// ErrInvalidSchema is returned by JSONSchemaGrammar for a schema that is
// not valid JSON, that is too large or too deeply nested, or that
// llama.cpp's converter refuses.
var ErrInvalidSchema = errors.New("llama: invalid JSON schema")

// Limits on the schemas JSONSchemaGrammar accepts. llama.cpp's converter
// recurses on the nesting of the schema and of its patterns, and runs
// std::regex over property names and references, so these bound the stack
// it can use. On an 8 MiB thread stack it overflows past about 20000
// bytes of punctuation in a name, 10000 nested groups in a pattern or a
// few thousand levels of nesting; the limits leave a wide margin.
const (
	maxSchemaSize    = 1 << 20 // bytes
	maxSchemaDepth   = 128     // nested arrays and objects
	maxSchemaName    = 1024    // bytes in a property name or a $ref
	maxPatternDepth  = 64      // nested groups in a pattern
	maxPatternLength = 16 << 10
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
// numbers, and prints a warning to the process's stderr for pattern
// syntax it does not support. Remote references are not fetched. One
// departure: a root that is a $ref is passed as a one-way anyOf, since the
// converter leaves the references inside its definitions unresolved
// (allowing any object there).
//
// The schema is checked in Go first: it must be a JSON object of at most
// 1 MiB, nested at most 128 levels. A schema that does not pass, or that
// the converter refuses, returns an error wrapping ErrInvalidSchema.
func JSONSchemaGrammar(schema string) (string, error) {
	if err := checkSchema([]byte(schema)); err != nil {
		return "", err
	}
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

// checkSchema refuses what could take the converter past its stack.
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
	return walkSchema(v, 0)
}

func walkSchema(v any, depth int) error {
	if depth > maxSchemaDepth {
		return fmt.Errorf("%w: nested more than %d levels", ErrInvalidSchema, maxSchemaDepth)
	}
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			if err := walkSchema(x, depth+1); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, x := range v {
			if len(k) > maxSchemaName {
				return fmt.Errorf("%w: property name of %d bytes, at most %d", ErrInvalidSchema, len(k), maxSchemaName)
			}
			if s, ok := x.(string); ok {
				switch k {
				case "$ref":
					if len(s) > maxSchemaName {
						return fmt.Errorf("%w: $ref of %d bytes, at most %d", ErrInvalidSchema, len(s), maxSchemaName)
					}
				case "pattern":
					if err := checkPattern(s); err != nil {
						return err
					}
				}
			}
			if err := walkSchema(x, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkPattern(p string) error {
	if len(p) > maxPatternLength {
		return fmt.Errorf("%w: pattern of %d bytes, at most %d", ErrInvalidSchema, len(p), maxPatternLength)
	}
	depth, class := 0, false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			i++
		case class:
			class = c != ']'
		case c == '[':
			class = true
		case c == '(':
			if depth++; depth > maxPatternDepth {
				return fmt.Errorf("%w: pattern nests groups more than %d levels", ErrInvalidSchema, maxPatternDepth)
			}
		case c == ')':
			depth--
		}
	}
	return nil
}

// oneLine joins the lines of a converter message.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, ":\n", ": ")
	return strings.ReplaceAll(s, "\n", "; ")
}
