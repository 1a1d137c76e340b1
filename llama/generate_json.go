package llama

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"

	"github.com/invopop/jsonschema"
)

// ErrTruncated is returned (in a *JSONError) by GenerateJSON when the
// generation stopped, at WithMaxTokens, a stop string or a full context,
// before the JSON value was complete.
var ErrTruncated = errors.New("llama: output truncated before the JSON value was complete")

// JSONError reports a GenerateJSON output that is not a value of the type
// asked for: Err is ErrTruncated, or the decoding error.
type JSONError struct {
	Text  string // the generated text
	Stats Stats  // the generation's statistics
	Err   error
}

func (e *JSONError) Error() string {
	if errors.Is(e.Err, ErrTruncated) {
		return fmt.Sprintf("%v (%d tokens generated, stop reason %s)", e.Err, e.Stats.GeneratedTokens, e.Stats.StopReason)
	}
	return fmt.Sprintf("llama: generated JSON does not decode: %v", e.Err)
}

func (e *JSONError) Unwrap() error { return e.Err }

// JSONSchemaFor returns the JSON Schema that GenerateJSON derives from T,
// with github.com/invopop/jsonschema: exported fields by their json names,
// required unless tagged omitempty (or `jsonschema:"required"`), no
// properties beyond those, and the constraints of `jsonschema:"..."` tags
// (enum, minimum, maximum, minLength, maxLength, pattern, minItems,
// maxItems, format...). Named struct types go to $defs, so recursive
// types work; the root is the schema of T itself. Integers of sized
// types get their range as bounds.
func JSONSchemaFor[T any]() ([]byte, error) {
	return jsonSchemaOf(reflect.TypeFor[T]())
}

func jsonSchemaOf(t reflect.Type) (b []byte, err error) {
	defer func() {
		// invopop panics on types JSON cannot represent (chan, func...).
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%w: no JSON schema for %v: %v", ErrInvalidSchema, t, r)
		}
	}()
	if t == nil {
		return nil, fmt.Errorf("%w: no JSON schema for a nil interface type", ErrInvalidSchema)
	}
	r := &jsonschema.Reflector{Anonymous: true, Mapper: sizedInts}
	s := r.ReflectFromType(t)
	// A struct's schema is a $ref to its definition; llama.cpp's converter
	// does not resolve references inside a root that is a $ref, so the
	// definition is copied to the root (and kept, for recursive types).
	if name, ok := strings.CutPrefix(s.Ref, "#/$defs/"); ok {
		if def := s.Definitions[name]; def != nil {
			root := *def
			root.Version, root.Definitions = s.Version, s.Definitions
			s = &root
		}
	}
	return json.Marshal(s)
}

// sizedInts gives the integer types narrower than 64 bits their range.
func sizedInts(t reflect.Type) *jsonschema.Schema {
	if t.PkgPath() != "" {
		return nil // a named type may have its own schema
	}
	var lo, hi int64
	switch t.Kind() {
	case reflect.Int8:
		lo, hi = -1<<7, 1<<7-1
	case reflect.Int16:
		lo, hi = -1<<15, 1<<15-1
	case reflect.Int32:
		lo, hi = -1<<31, 1<<31-1
	case reflect.Uint8:
		lo, hi = 0, 1<<8-1
	case reflect.Uint16:
		lo, hi = 0, 1<<16-1
	case reflect.Uint32:
		lo, hi = 0, 1<<32-1
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return &jsonschema.Schema{Type: "integer", Minimum: "0"}
	default:
		return nil
	}
	return &jsonschema.Schema{Type: "integer", Minimum: json.Number(fmt.Sprint(lo)), Maximum: json.Number(fmt.Sprint(hi))}
}

// GenerateJSON generates a value of type T after prompt: it derives T's
// JSON Schema (see JSONSchemaFor), converts it to a grammar with
// llama.cpp's converter (see JSONSchemaGrammar), samples under that
// grammar, and decodes the output into T, refusing unknown fields. The
// model can only write JSON that the schema allows, and can only end the
// generation once the value is complete.
//
// The options are those of Generate; the grammar replaces any grammar of
// WithSampling, and WithIgnoreEOS in it is ignored. WithSampler is refused, since
// the grammar is part of the sampler. A generation that stops before the
// value is complete (WithMaxTokens, a stop string, a full context)
// returns a *JSONError wrapping ErrTruncated.
func GenerateJSON[T any](ctx context.Context, c *Context, prompt string, opts ...GenerateOption) (T, error) {
	var v T
	schema, err := JSONSchemaFor[T]()
	if err != nil {
		return v, err
	}
	grammar, err := JSONSchemaGrammar(string(schema))
	if err != nil {
		return v, err
	}
	err = generateJSON(ctx, c, prompt, grammar, &v, opts)
	return v, err
}

// generateJSON generates under grammar and decodes the output into v.
func generateJSON(ctx context.Context, c *Context, prompt, grammar string, v any, opts []GenerateOption) error {
	cfg := newGenerateConfig(opts)
	if cfg.sampler != nil {
		return invalidArg("GenerateJSON builds its own sampler: use WithSampling, not WithSampler")
	}
	callerStats := cfg.stats
	var stats Stats
	opts = append(slices.Clip(opts),
		WithSampling(WithGrammar(grammar, "root"), func(c *SamplerConfig) { c.IgnoreEOS = false }),
		WithStats(&stats))
	var text strings.Builder
	var genErr error
	for tok, err := range c.Generate(ctx, prompt, opts...) {
		if err != nil {
			genErr = err
			break
		}
		text.WriteString(tok.Text)
	}
	if callerStats != nil {
		*callerStats = stats
	}
	if genErr != nil && !(errors.Is(genErr, ErrContextFull) && stats.GeneratedTokens > 0) {
		return genErr
	}
	out := text.String()
	err := decodeStrict([]byte(out), v)
	if err == nil {
		return nil
	}
	if stats.StopReason != StopEOG && !json.Valid([]byte(out)) {
		err = ErrTruncated
	}
	return &JSONError{Text: out, Stats: stats, Err: err}
}

// decodeStrict decodes one JSON value, refusing unknown fields and
// anything after the value but white space.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}
