package llama

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/llamago/llamago/gguf"
)

// Limits of llama.cpp (llama-hparams.h) that it asserts rather than checks.
const (
	maxLayers  = 512
	maxExperts = 512
)

// validateModelFile checks in Go what llama.cpp would otherwise assert on,
// aborting the process: a malformed GGUF structure, and hyperparameters or
// tokenizer arrays it trusts. The metadata is checked as llama.cpp will see
// it, with the overrides applied.
func validateModelFile(path string, vocabOnly bool, overrides ...kvOverride) error {
	_, err := readModelFile(path, vocabOnly, overrides...)
	return err
}

// readModelFile is validateModelFile, returning the file's metadata.
func readModelFile(path string, vocabOnly bool, overrides ...kvOverride) (*gguf.File, error) {
	f, err := openGGUF(path)
	if err != nil {
		return nil, err
	}
	applyOverrides(f, overrides)
	if err := checkMetadata(f, vocabOnly); err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalidModel, path, err)
	}
	return f, nil
}

// openGGUF reads the metadata of the GGUF file at path, bounded by the
// file's size; a file that is not GGUF gives ErrNotGGUF, a damaged one
// ErrInvalidModel.
func openGGUF(path string) (*gguf.File, error) {
	if err := fileExists(path); err != nil {
		return nil, err
	}
	f, err := gguf.Open(path)
	if err != nil {
		if errors.Is(err, gguf.ErrNotGGUF) {
			return nil, fmt.Errorf("llama: %s: %w", path, err)
		}
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidModel, path, err)
	}
	return f, nil
}

// applyOverrides sets the metadata overrides in f as llama.cpp reads them:
// integers as int64, floats as float64.
func applyOverrides(f *gguf.File, overrides []kvOverride) {
	for _, o := range overrides {
		var v gguf.Value
		switch x := o.value.(type) {
		case int:
			v = gguf.Int64Value(int64(x))
		case int64:
			v = gguf.Int64Value(x)
		case float64:
			v = gguf.Float64Value(x)
		case bool:
			v = gguf.BoolValue(x)
		case string:
			v = gguf.StringValue(x)
		default:
			continue
		}
		i := slices.IndexFunc(f.KV, func(kv gguf.KV) bool { return kv.Key == o.key })
		if i < 0 {
			f.KV = append(f.KV, gguf.KV{Key: o.key, Value: v})
		} else {
			f.KV[i].Value = v
		}
	}
}

func checkMetadata(f *gguf.File, vocabOnly bool) error {
	arch, ok := f.String("general.architecture")
	if !ok || arch == "" {
		return errors.New("general.architecture is missing")
	}
	if err := checkVocab(f); err != nil {
		return err
	}
	if vocabOnly {
		return nil
	}
	key := func(k string) string { return arch + "." + k }

	positive := func(k string, required bool, limit uint64) error {
		v, present := f.Lookup(key(k))
		if !present {
			if required {
				return fmt.Errorf("%s is missing", key(k))
			}
			return nil
		}
		if v.IsArray() {
			return nil // per-layer arrays are checked below
		}
		n, ok := v.Uint()
		if !ok {
			return fmt.Errorf("%s is not an unsigned integer", key(k))
		}
		if n == 0 || n > limit {
			return fmt.Errorf("%s is %d, want 1..%d", key(k), n, limit)
		}
		return nil
	}
	if err := positive("block_count", true, maxLayers); err != nil {
		return err
	}
	if err := positive("embedding_length", true, 1<<24); err != nil {
		return err
	}
	if err := positive("context_length", true, 1<<31-1); err != nil {
		return err
	}
	if err := positive("attention.head_count", false, 1<<16); err != nil {
		return err
	}
	if err := positive("attention.head_count_kv", false, 1<<16); err != nil {
		return err
	}
	nLayer, _ := f.Uint(key("block_count"))
	for _, k := range []string{"feed_forward_length", "attention.head_count", "attention.head_count_kv"} {
		v, ok := f.Lookup(key(k))
		if !ok || !v.IsArray() {
			continue
		}
		if t := v.ElemType(); t != gguf.TypeUint32 && t != gguf.TypeInt32 {
			return fmt.Errorf("%s is an array of %s, want integers", key(k), t)
		}
		if uint64(v.Len()) != nLayer {
			return fmt.Errorf("%s has %d entries for %d layers", key(k), v.Len(), nLayer)
		}
	}

	experts, _ := f.Uint(key("expert_count"))
	used, _ := f.Uint(key("expert_used_count"))
	groups, _ := f.Uint(key("expert_group_count"))
	groupUsed, _ := f.Uint(key("expert_group_used_count"))
	switch {
	case experts > maxExperts:
		return fmt.Errorf("%s is %d, at most %d", key("expert_count"), experts, maxExperts)
	case used > experts:
		return fmt.Errorf("%s (%d) exceeds expert_count (%d)", key("expert_used_count"), used, experts)
	case experts > 0 && used == 0:
		return fmt.Errorf("%s is 0 with %d experts", key("expert_used_count"), experts)
	case experts > 0 && groups >= experts:
		return fmt.Errorf("%s (%d) must be below expert_count (%d)", key("expert_group_count"), groups, experts)
	case experts > 0 && groups > 1 && (experts%groups != 0 || groupUsed == 0 || groupUsed >= groups):
		return fmt.Errorf("inconsistent expert groups: %d experts, %d groups, %d used", experts, groups, groupUsed)
	case experts == 0 && groups != 0:
		return fmt.Errorf("%s is %d without experts", key("expert_group_count"), groups)
	}

	// ggml asserts eps >= 0 in its normalisations (a NaN fails too).
	for _, k := range []string{"attention.layer_norm_epsilon", "attention.layer_norm_rms_epsilon", "attention.group_norm_epsilon"} {
		v, ok := f.Lookup(key(k))
		if !ok {
			continue
		}
		eps, ok := v.Float()
		if !ok || !(eps >= 0) || math.IsInf(eps, 0) {
			return fmt.Errorf("%s is %v, want a finite number >= 0", key(k), v)
		}
	}
	// llama.cpp's converters and quantizer keep one-dimensional tensors
	// (norm scales, biases) in f32, and ggml's CPU operations that apply
	// them to activations take no other type: they abort on one.
	// Matrices are multiplied with the type's dot product, which integer,
	// f64 and the activation-only q8_1/q8_K types lack: ggml would call a
	// null function.
	for _, t := range f.Tensors {
		if len(t.Dims) == 1 && t.Type != gguf.TensorF32 {
			return fmt.Errorf("tensor %q is %s: one-dimensional tensors (norms, biases) must be f32", t.Name, t.Type)
		}
		if err := checkWeightType(t); err != nil {
			return err
		}
	}

	if s, ok := f.String(key("rope.scaling.type")); ok {
		switch s {
		case "none", "linear", "yarn", "longrope":
		default:
			return fmt.Errorf("%s is %q", key("rope.scaling.type"), s)
		}
	}
	return nil
}

// checkVocab checks the tokenizer arrays llama.cpp indexes without bounds
// checks, and the uniqueness of token texts it asserts.
func checkVocab(f *gguf.File) error {
	toks, ok := f.Lookup("tokenizer.ggml.tokens")
	if !ok {
		return nil // llama.cpp reports a missing vocabulary itself
	}
	if !toks.IsArray() || toks.ElemType() != gguf.TypeString {
		return errors.New("tokenizer.ggml.tokens is not an array of strings")
	}
	n := toks.Len()
	if n == 0 || n > 1<<31-1 {
		return fmt.Errorf("tokenizer.ggml.tokens has %d entries", n)
	}
	// llama.cpp reads these as raw float and int arrays of n entries.
	for k, want := range map[string]gguf.ValueType{
		"tokenizer.ggml.scores":     gguf.TypeFloat32,
		"tokenizer.ggml.token_type": gguf.TypeInt32,
	} {
		v, ok := f.Lookup(k)
		if !ok {
			continue
		}
		t := v.ElemType()
		if t == gguf.TypeUint32 && want == gguf.TypeInt32 {
			t = want
		}
		if !v.IsArray() || t != want || v.Len() != n {
			return fmt.Errorf("%s must be an array of %d %s", k, n, want)
		}
	}
	// llama.cpp renders byte tokens only in SPM-like vocabularies: for a
	// WordPiece one (tokenizer.ggml.model "bert") it aborts while loading.
	if model, _ := f.String("tokenizer.ggml.model"); model == "bert" {
		if v, ok := f.Lookup("tokenizer.ggml.token_type"); ok {
			for i := range v.Len() {
				if t, _ := v.Index(i).Int(); t == 6 { // LLAMA_TOKEN_TYPE_BYTE
					return fmt.Errorf("byte token %d in a WordPiece vocabulary", i)
				}
			}
		}
	}
	if model, _ := f.String("tokenizer.ggml.model"); model == "rwkv" {
		if err := checkRWKV(toks.Strings()); err != nil {
			return err
		}
	}
	seen := make(map[string]struct{}, n)
	for _, s := range toks.Strings() {
		if _, dup := seen[s]; dup {
			return fmt.Errorf("tokenizer.ggml.tokens has the token %q twice", s)
		}
		seen[s] = struct{}{}
	}
	return nil
}

// checkRWKV checks that llama.cpp's RWKV tokenizer ends on any text. It
// takes the longest token at each position, and on a byte that begins
// tokens but is no token itself it finds none and never moves on: every
// byte that begins a token must be one.
func checkRWKV(tokens []string) error {
	var starts, single [256]bool
	for _, t := range tokens {
		b := rwkvUnescape(t)
		if len(b) == 0 {
			continue
		}
		starts[b[0]] = true
		if len(b) == 1 {
			single[b[0]] = true
		}
	}
	for c := range 256 {
		if starts[c] && !single[c] {
			return fmt.Errorf("RWKV vocabulary: byte %#02x begins tokens but is not a token (llama.cpp's tokenizer would never end)", c)
		}
	}
	return nil
}

// rwkvUnescape decodes an RWKV token as llama.cpp does
// (llama_unescape_rwkv_token): \t, \n, \r, \xHH, and \ before any other
// byte. Hex digits are read as it reads them, lowercase only, and bytes as
// C's signed char.
func rwkvUnescape(s string) []byte {
	out := make([]byte, 0, len(s))
	escaping := false
	hexLeft, acc := 0, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case hexLeft > 0:
			v := c - '0'
			if int8(c) >= 'a' {
				v = c - 'a' + 10
			}
			acc = acc<<4 + v
			if hexLeft--; hexLeft == 0 {
				out = append(out, acc)
				acc = 0
			}
		case escaping:
			switch c {
			case 't':
				out = append(out, '\t')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 'x':
				hexLeft = 2
			default:
				out = append(out, c)
			}
			escaping = false
		case c == '\\':
			escaping = true
		default:
			out = append(out, c)
		}
	}
	return out
}

// checkWeightType refuses a tensor of a type that ggml's CPU backend has
// no dot product for.
func checkWeightType(t gguf.TensorInfo) error {
	switch t.Type {
	case gguf.TensorQ8_1, gguf.TensorQ8_K, gguf.TensorI8, gguf.TensorI16, gguf.TensorI32, gguf.TensorI64, gguf.TensorF64:
		return fmt.Errorf("tensor %q is %s, which ggml cannot multiply: weights must be a float or quantized type", t.Name, t.Type)
	}
	return nil
}
