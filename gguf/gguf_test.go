package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/llamago/llamago/internal/testmodels"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// modelsDir returns the directory holding the test models: $LLAMAGO_TEST_MODELS
// or shared/models next to the repository root. The models are always present
// in CI, so a missing directory is a failure, not a reason to skip.
func modelsDir(t testing.TB) string {
	t.Helper()
	return testmodels.Dir(t)
}

// readModel returns the contents of a file in the models directory.
func readModel(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(modelsDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vocabFiles lists the vocab-only test files with their architecture and
// vocabulary size.
var vocabFiles = []struct {
	name  string
	arch  string
	model string
	nVoc  int
}{
	{"ggml-vocab-bert-bge.gguf", "bert", "bert", 30522},
	{"ggml-vocab-deepseek-coder.gguf", "llama", "gpt2", 32256},
	{"ggml-vocab-deepseek-llm.gguf", "llama", "gpt2", 102400},
	{"ggml-vocab-falcon.gguf", "falcon", "gpt2", 65024},
	{"ggml-vocab-gpt-2.gguf", "gpt2", "gpt2", 50257},
	{"ggml-vocab-llama-spm.gguf", "llama", "llama", 32000},
	{"ggml-vocab-mpt.gguf", "mpt", "gpt2", 50432},
	{"ggml-vocab-phi-3.gguf", "phi3", "llama", 32064},
	{"ggml-vocab-refact.gguf", "refact", "gpt2", 49216},
	{"ggml-vocab-starcoder.gguf", "starcoder2", "gpt2", 49152},
}

// checkLayout checks the invariants Read guarantees for the tensor data.
func checkLayout(t testing.TB, f *File) {
	t.Helper()
	if f.Alignment == 0 || f.Alignment&(f.Alignment-1) != 0 {
		t.Fatalf("alignment %d is not a power of two", f.Alignment)
	}
	if f.DataOffset%int64(f.Alignment) != 0 {
		t.Fatalf("data offset %d not aligned to %d", f.DataOffset, f.Alignment)
	}
	next := uint64(0)
	for _, ti := range f.Tensors {
		if ti.Offset != next {
			t.Fatalf("tensor %s offset %d, want %d", ti.Name, ti.Offset, next)
		}
		end := uint64(f.DataOffset) + ti.Offset + ti.Size()
		if end > uint64(f.Size) {
			t.Fatalf("tensor %s ends at %d, beyond the file size %d", ti.Name, end, f.Size)
		}
		if ti.Size() == 0 {
			t.Fatalf("tensor %s has size 0", ti.Name)
		}
		next += pad(ti.Size(), f.Alignment)
	}
}

func TestStories260K(t *testing.T) {
	f, err := Open(filepath.Join(modelsDir(t), "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, f)
	if f.Version != 3 || f.Alignment != 32 || len(f.KV) != 19 || f.Size != 1185376 {
		t.Errorf("version %d, alignment %d, %d KVs, size %d; want 3, 32, 19, 1185376", f.Version, f.Alignment, len(f.KV), f.Size)
	}
	if got := f.Architecture(); got != "llama" {
		t.Errorf("Architecture() = %q, want llama", got)
	}
	if len(f.Tensors) != 48 {
		t.Errorf("%d tensors, want 48", len(f.Tensors))
	}
	uints := map[string]uint64{
		"llama.block_count":                 5,
		"llama.embedding_length":            64,
		"llama.feed_forward_length":         172,
		"llama.attention.head_count":        8,
		"llama.attention.head_count_kv":     4,
		"llama.context_length":              2048,
		"tokenizer.ggml.bos_token_id":       1,
		"tokenizer.ggml.eos_token_id":       2,
		"tokenizer.ggml.unknown_token_id":   0,
		"tokenizer.ggml.padding_token_id":   0xFFFFFFFF,
		"tokenizer.ggml.seperator_token_id": 0xFFFFFFFF,
		"llama.rope.dimension_count":        8,
	}
	for k, want := range uints {
		if got, ok := f.Uint(k); !ok || got != want {
			t.Errorf("Uint(%q) = %d, %v; want %d", k, got, ok, want)
		}
	}
	if eps, ok := f.Float("llama.attention.layer_norm_rms_epsilon"); !ok || float32(eps) != 1e-5 {
		t.Errorf("rms epsilon = %v, %v", eps, ok)
	}
	if s, ok := f.String("tokenizer.ggml.model"); !ok || s != "llama" {
		t.Errorf("tokenizer model = %q, %v", s, ok)
	}
	if _, ok := f.Lookup("tokenizer.chat_template"); ok {
		t.Error("unexpected chat template")
	}
	tokens, _ := f.Lookup("tokenizer.ggml.tokens")
	if tokens.Len() != 512 || tokens.ElemType() != TypeString || len(tokens.Strings()) != 512 {
		t.Fatalf("tokens: %v", tokens)
	}
	if got := tokens.Strings()[:3]; got[0] != "<unk>" || got[1] != "<s>" || got[2] != "</s>" {
		t.Errorf("first tokens %q", got)
	}
	scores, _ := f.Lookup("tokenizer.ggml.scores")
	if len(scores.Float32s()) != 512 {
		t.Errorf("scores: %v", scores)
	}
	types, _ := f.Lookup("tokenizer.ggml.token_type")
	if tt := types.Int32s(); len(tt) != 512 || tt[0] != 2 || tt[1] != 3 || tt[3] != 6 {
		t.Errorf("token types: %v", types)
	}

	for _, ti := range f.Tensors {
		if ti.Type != TensorF32 {
			t.Errorf("tensor %s has type %s, want F32", ti.Name, ti.Type)
		}
	}
	if ti, ok := f.Tensor("token_embd.weight"); !ok || len(ti.Dims) != 2 || ti.Dims[0] != 64 || ti.Dims[1] != 512 || ti.Offset != 0 {
		t.Errorf("token_embd.weight = %v, %v", ti, ok)
	}
	if got := f.ParameterCount(); got != 292800 {
		t.Errorf("ParameterCount() = %d, want 292800", got)
	}
	if got := f.TensorDataSize(); got != 4*292800 {
		t.Errorf("TensorDataSize() = %d, want %d", got, 4*292800)
	}
	// The last tensor ends at the end of the file, or within the padding.
	last := f.Tensors[len(f.Tensors)-1]
	end := f.DataOffset + int64(last.Offset+last.Size())
	if end > f.Size || f.Size-end >= int64(f.Alignment) {
		t.Errorf("last tensor ends at %d, file size %d", end, f.Size)
	}
	if f.DataOffset != 14176 {
		t.Errorf("DataOffset = %d, want 14176", f.DataOffset)
	}
}

func TestLlama2TinyRandom(t *testing.T) {
	path := filepath.Join(modelsDir(t), "llama-2-tiny-random.gguf")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, f)
	if len(f.Tensors) != 12 || len(f.KV) != 18 || f.Architecture() != "llama" {
		t.Errorf("%d tensors, %d KVs, arch %q; want 12, 18, llama", len(f.Tensors), len(f.KV), f.Architecture())
	}
	tokens, _ := f.Lookup("tokenizer.ggml.tokens")
	if len(tokens.Strings()) != 32000 {
		t.Errorf("%d tokens, want 32000", tokens.Len())
	}
	ft, ok := f.Uint(KeyFileType)
	if !ok || FileType(uint32(ft)) != "F16" {
		t.Errorf("file type %d (%s), want F16", ft, FileType(uint32(ft)))
	}
	types := map[TensorType]int{}
	for _, ti := range f.Tensors {
		types[ti.Type]++
	}
	if types[TensorF16] == 0 || types[TensorF32] == 0 || types[TensorF16]+types[TensorF32] != 12 {
		t.Errorf("tensor types %v, want F16 and F32 only", types)
	}
	last := f.Tensors[len(f.Tensors)-1]
	if end := f.DataOffset + int64(last.Offset+last.Size()); end != f.Size {
		t.Errorf("last tensor ends at %d, file size %d", end, f.Size)
	}

	// The tensor data is reachable through TensorReader.
	fp, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fp.Close()
	n, err := io.Copy(io.Discard, f.TensorReader(fp, len(f.Tensors)-1))
	if err != nil || uint64(n) != last.Size() {
		t.Errorf("TensorReader read %d bytes, %v; want %d", n, err, last.Size())
	}
}

func TestVocabFiles(t *testing.T) {
	dir := filepath.Join(modelsDir(t), "vocab")
	for _, tc := range vocabFiles {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Open(filepath.Join(dir, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			checkLayout(t, f)
			if len(f.Tensors) != 0 {
				t.Errorf("%d tensors, want 0", len(f.Tensors))
			}
			if f.Architecture() != tc.arch {
				t.Errorf("architecture %q, want %q", f.Architecture(), tc.arch)
			}
			if m, _ := f.String("tokenizer.ggml.model"); m != tc.model {
				t.Errorf("tokenizer model %q, want %q", m, tc.model)
			}
			tokens, _ := f.Lookup("tokenizer.ggml.tokens")
			if len(tokens.Strings()) != tc.nVoc {
				t.Errorf("%d tokens, want %d", tokens.Len(), tc.nVoc)
			}
			types, _ := f.Lookup("tokenizer.ggml.token_type")
			if len(types.Int32s()) != tc.nVoc {
				t.Errorf("%d token types, want %d", types.Len(), tc.nVoc)
			}
			if tc.model == "gpt2" {
				merges, _ := f.Lookup("tokenizer.ggml.merges")
				if len(merges.Strings()) == 0 {
					t.Errorf("no merges")
				}
			}
		})
	}
}

func TestTruncatedFixture(t *testing.T) {
	_, err := Open(filepath.Join(modelsDir(t), "ollama-test-truncated.gguf"))
	if !errors.Is(err, ErrNotGGUF) {
		t.Fatalf("err = %v, want ErrNotGGUF", err)
	}
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Offset != 4 || !strings.Contains(fe.Reason, "too short") {
		t.Fatalf("err = %#v, want a FormatError at offset 4 about the short header", err)
	}
	if !strings.HasPrefix(err.Error(), "gguf: ") {
		t.Errorf("message %q lacks the gguf: prefix", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Errorf("directory: no error")
	}
	empty := filepath.Join(dir, "empty.gguf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(empty)
	var fe *FormatError
	if !errors.Is(err, ErrNotGGUF) || !errors.As(err, &fe) || fe.Offset != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func TestRandomBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.IntN(200))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 1 && len(b) >= 8 {
			// Valid magic and version, random rest.
			copy(b, "GGUF\x03\x00\x00\x00")
		}
		f, err := Read(bytes.NewReader(b), int64(len(b)))
		if err == nil {
			checkLayout(t, f) // random bytes can form a valid file
			continue
		}
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("input %x: error %v is not a *FormatError", b, err)
		}
		if i%2 == 0 && !errors.Is(err, ErrNotGGUF) && !(len(b) >= 4 && string(b[:4]) == Magic) {
			t.Fatalf("input %x: error %v, want ErrNotGGUF", b, err)
		}
	}
}

// TestTruncations cuts stories260K at many offsets: every offset in the
// metadata and tensor table, and many within the tensor data. All must fail
// cleanly, except cuts that keep all of the tensor data.
func TestTruncations(t *testing.T) {
	data := readModel(t, "stories260K.gguf")
	full, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	last := full.Tensors[len(full.Tensors)-1]
	dataEnd := full.DataOffset + int64(last.Offset+last.Size())

	var cuts []int64
	for n := int64(0); n <= full.DataOffset; n++ {
		cuts = append(cuts, n)
	}
	for n := full.DataOffset; n < int64(len(data)); n += 4099 {
		cuts = append(cuts, n)
	}
	for n := int64(len(data)) - 64; n <= int64(len(data)); n++ {
		cuts = append(cuts, n)
	}
	for _, n := range cuts {
		f, err := Read(bytes.NewReader(data[:n]), n)
		if n >= dataEnd {
			if err != nil {
				t.Fatalf("cut at %d (data ends at %d): %v", n, dataEnd, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("cut at %d: parsed %d tensors without error", n, len(f.Tensors))
		}
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("cut at %d: error %v is not a *FormatError", n, err)
		}
		if fe.Offset < 0 || fe.Offset > n {
			t.Fatalf("cut at %d: error offset %d out of range: %v", n, fe.Offset, err)
		}
		if n < headerSize && !errors.Is(err, ErrNotGGUF) {
			t.Fatalf("cut at %d: %v, want ErrNotGGUF", n, err)
		}
		if n >= headerSize && errors.Is(err, ErrNotGGUF) {
			t.Fatalf("cut at %d: %v, want a structural error", n, err)
		}
	}

	// A reader that holds less than the size claimed for it.
	_, err = Read(bytes.NewReader(data[:5000]), int64(len(data)))
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(fe.Reason, "unexpected end") {
		t.Errorf("short reader: %v", err)
	}
}

// errReaderAt fails every read after off.
type errReaderAt struct {
	r   io.ReaderAt
	off int64
}

var errDisk = errors.New("disk on fire")

func (e errReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > e.off {
		return 0, errDisk
	}
	return e.r.ReadAt(p, off)
}

func TestReaderError(t *testing.T) {
	data := readModel(t, "stories260K.gguf")
	_, err := Read(errReaderAt{bytes.NewReader(data), 100}, int64(len(data)))
	var fe *FormatError
	if !errors.Is(err, errDisk) || errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "gguf: ") {
		t.Errorf("err = %v, want wrapped errDisk", err)
	}
}

// copyData returns a data function for Write that copies the tensor data of
// f from r.
func copyData(f *File, r io.ReaderAt) func(int, io.Writer) error {
	return func(i int, w io.Writer) error {
		_, err := io.Copy(w, f.TensorReader(r, i))
		return err
	}
}

// sameFile reports the first difference between the parsed files a and b.
func sameFile(t testing.TB, a, b *File) {
	t.Helper()
	if a.Version != b.Version || a.Alignment != b.Alignment || a.DataOffset != b.DataOffset {
		t.Fatalf("header: version %d/%d, alignment %d/%d, data offset %d/%d",
			a.Version, b.Version, a.Alignment, b.Alignment, a.DataOffset, b.DataOffset)
	}
	if len(a.KV) != len(b.KV) {
		t.Fatalf("%d KVs, then %d", len(a.KV), len(b.KV))
	}
	for i := range a.KV {
		if a.KV[i].Key != b.KV[i].Key || !a.KV[i].Value.Equal(b.KV[i].Value) {
			t.Fatalf("KV %d: %s=%v, then %s=%v", i, a.KV[i].Key, a.KV[i].Value, b.KV[i].Key, b.KV[i].Value)
		}
	}
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d tensors, then %d", len(a.Tensors), len(b.Tensors))
	}
	for i := range a.Tensors {
		ta, tb := a.Tensors[i], b.Tensors[i]
		if ta.String() != tb.String() || ta.Offset != tb.Offset || len(ta.Dims) != len(tb.Dims) {
			t.Fatalf("tensor %d: %v at %d, then %v at %d", i, ta, ta.Offset, tb, tb.Offset)
		}
	}
}

// TestRoundTrip reads every real file, writes it back and checks that the
// output is byte-identical.
func TestRoundTrip(t *testing.T) {
	names := []string{"stories260K.gguf", "llama-2-tiny-random.gguf"}
	for _, v := range vocabFiles {
		names = append(names, filepath.Join("vocab", v.name))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data := readModel(t, name)
			f, err := Read(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := Write(&buf, f, copyData(f, bytes.NewReader(data))); err != nil {
				t.Fatal(err)
			}
			out := buf.Bytes()
			if !bytes.Equal(out, data) {
				i := 0
				for i < min(len(out), len(data)) && out[i] == data[i] {
					i++
				}
				t.Errorf("output differs from input (%d and %d bytes) at offset %d", len(out), len(data), i)
			}
			g, err := Read(bytes.NewReader(out), int64(len(out)))
			if err != nil {
				t.Fatal(err)
			}
			sameFile(t, f, g)
		})
	}
}

// builder assembles raw GGUF bytes, including invalid ones.
type builder struct{ b []byte }

func gguf(version uint32, nTensors, nKV uint64) *builder {
	b := &builder{b: []byte(Magic)}
	return b.u32(version).u64(nTensors).u64(nKV)
}

func (b *builder) u32(v uint32) *builder { b.b = binary.LittleEndian.AppendUint32(b.b, v); return b }
func (b *builder) u64(v uint64) *builder { b.b = binary.LittleEndian.AppendUint64(b.b, v); return b }
func (b *builder) raw(p ...byte) *builder {
	b.b = append(b.b, p...)
	return b
}
func (b *builder) str(s string) *builder { return b.u64(uint64(len(s))).raw([]byte(s)...) }

// kv appends a key and a uint32 value.
func (b *builder) kvU32(key string, v uint32) *builder {
	return b.str(key).u32(uint32(TypeUint32)).u32(v)
}

// tensor appends a tensor description.
func (b *builder) tensor(name string, typ TensorType, off uint64, dims ...uint64) *builder {
	b.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		b.u64(d)
	}
	return b.u32(uint32(typ)).u64(off)
}

// data pads to align and appends n zero bytes of tensor data.
func (b *builder) data(align, n int) []byte {
	for len(b.b)%align != 0 {
		b.b = append(b.b, 0)
	}
	return append(b.b, make([]byte, n)...)
}

func (b *builder) bytes() []byte { return b.b }

type hostileCase struct {
	name string
	data []byte
	err  error  // ErrNotGGUF, ErrUnsupportedVersion or nil for structural errors
	want string // substring of the FormatError reason; "" means the input is valid
}

func hostileCases() []hostileCase {
	long := strings.Repeat("x", MaxNameLen)
	return []hostileCase{
		// Valid inputs, to show the invalid ones fail for the stated reason.
		{"valid empty", gguf(3, 0, 0).bytes(), nil, ""},
		{"valid v2", gguf(2, 0, 0).bytes(), nil, ""},
		{"valid kv", gguf(3, 0, 1).kvU32("a.b", 7).bytes(), nil, ""},
		{"valid tensors", gguf(3, 2, 0).tensor("a", TensorF32, 0, 4).tensor("b", TensorQ4_0, 32, 32, 2).data(32, 32+36), nil, ""},
		{"valid last tensor unpadded", gguf(3, 2, 0).tensor("a", TensorF32, 0, 4).tensor("b", TensorF32, 32, 3).data(32, 32+12), nil, ""},
		{"valid alignment 64", gguf(3, 2, 1).kvU32(KeyAlignment, 64).tensor("a", TensorF32, 0, 4).tensor("b", TensorI8, 64, 1).data(64, 65), nil, ""},
		{"valid 63-byte name", gguf(3, 1, 0).tensor(long, TensorF32, 0, 1).data(32, 4), nil, ""},
		{"valid 0 dims", gguf(3, 1, 0).tensor("s", TensorF32, 0).data(32, 4), nil, ""},
		{"valid empty array", gguf(3, 0, 1).str("a").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(0).bytes(), nil, ""},

		// Not GGUF.
		{"empty", nil, ErrNotGGUF, "too short"},
		{"one byte", []byte("G"), ErrNotGGUF, "too short"},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), ErrNotGGUF, "bad magic"},
		{"bad short magic", []byte("GX"), ErrNotGGUF, "bad magic"},
		{"magic only", []byte(Magic), ErrNotGGUF, "too short"},
		{"header cut", gguf(3, 0, 0).bytes()[:20], ErrNotGGUF, "too short"},

		// Versions.
		{"version 0", gguf(0, 0, 0).bytes(), ErrUnsupportedVersion, "invalid version 0"},
		{"version 1", gguf(1, 0, 0).bytes(), ErrUnsupportedVersion, "version 1"},
		{"version 4", gguf(4, 0, 0).bytes(), ErrUnsupportedVersion, "newer"},
		{"big-endian", gguf(3<<24, 0, 0).bytes(), ErrUnsupportedVersion, "big-endian"},
		{"version 0x10000", gguf(0x10000, 0, 0).bytes(), ErrUnsupportedVersion, "byte order"},
		{"version 1 short", []byte("GGUF\x01\x00\x00\x00"), ErrUnsupportedVersion, "version 1"},

		// Counts.
		{"huge kv count", gguf(3, 0, 1<<60).bytes(), nil, "key-value count"},
		{"max kv count", gguf(3, 0, math.MaxUint64).bytes(), nil, "key-value count"},
		{"huge tensor count", gguf(3, 1<<60, 0).bytes(), nil, "tensor count"},
		{"max tensor count", gguf(3, math.MaxUint64, 0).bytes(), nil, "tensor count"},
		{"tensor count too big", gguf(3, 2, 0).tensor("a", TensorF32, 0, 1).bytes(), nil, "tensor count"},
		{"counts together too big", gguf(3, 1, 1).kvU32("k", 1).raw(make([]byte, 20)...).bytes(), nil, "tensor count"},

		// Strings and arrays.
		{"huge key length", gguf(3, 0, 1).u64(1 << 62).raw(make([]byte, 16)...).bytes(), nil, "key length"},
		{"max key length", gguf(3, 0, 1).u64(math.MaxUint64).raw(make([]byte, 16)...).bytes(), nil, "key length"},
		{"key past end", gguf(3, 0, 1).u64(15).raw([]byte("abcdefghijklmn")...).bytes(), nil, "key length"},
		{"huge string value", gguf(3, 0, 1).str("k").u32(uint32(TypeString)).u64(1 << 63).bytes(), nil, "string value length"},
		{"huge string array", gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1 << 40).bytes(), nil, "array of"},
		{"max string array", gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(math.MaxUint64).bytes(), nil, "array of"},
		{"huge u64 array", gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint64)).u64(math.MaxUint64 / 4).bytes(), nil, "array of"},
		{"u32 array one too long", gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint32)).u64(3).u64(0).bytes(), nil, "array of"},
		{"string array element past end", gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(2).str("a").u64(100).bytes(), nil, "string array element length"},
		{"array of arrays", gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeArray)).u64(1).u32(uint32(TypeUint8)).u64(1).raw(0).bytes(), nil, "array of arrays"},
		{"invalid value type", gguf(3, 0, 1).str("k").u32(13).u64(0).bytes(), nil, "invalid value type 13"},
		{"invalid element type", gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(0xFFFFFFFF).u64(0).bytes(), nil, "invalid array element type"},
		{"value past end", gguf(3, 0, 1).str("k").u32(uint32(TypeUint64)).raw(1, 2, 3, 4, 5).bytes(), nil, "unexpected end"},

		// Keys.
		{"duplicate key", gguf(3, 0, 2).kvU32("a", 1).kvU32("a", 2).bytes(), nil, "duplicate key"},
		{"empty key", gguf(3, 0, 1).str("").u32(uint32(TypeUint8)).raw(0, 0, 0, 0, 0, 0).bytes(), nil, "empty"},
		{"NUL in key", gguf(3, 0, 1).kvU32("general.alignment\x00x", 3).bytes(), nil, "NUL"},

		// Alignment.
		{"alignment 0", gguf(3, 0, 1).kvU32(KeyAlignment, 0).bytes(), nil, "power of two"},
		{"alignment 3", gguf(3, 0, 1).kvU32(KeyAlignment, 3).bytes(), nil, "power of two"},
		{"alignment uint64", gguf(3, 0, 1).str(KeyAlignment).u32(uint32(TypeUint64)).u64(32).bytes(), nil, "want uint32"},
		{"alignment string", gguf(3, 0, 1).str(KeyAlignment).u32(uint32(TypeString)).str("32").bytes(), nil, "want uint32"},
		{"alignment array", gguf(3, 0, 1).str(KeyAlignment).u32(uint32(TypeArray)).u32(uint32(TypeUint32)).u64(1).u32(32).bytes(), nil, "want uint32"},

		// Tensor descriptions.
		{"n_dims 5", gguf(3, 1, 0).tensor("t", TensorF32, 0, 1, 1, 1, 1, 1).data(32, 4), nil, "5 dimensions"},
		{"n_dims max", gguf(3, 1, 0).str("t").u32(math.MaxUint32).raw(make([]byte, 24)...).bytes(), nil, "dimensions"},
		{"unknown type 40", gguf(3, 1, 0).tensor("t", 40, 0, 32).data(32, 128), nil, "invalid type"},
		{"removed type 4", gguf(3, 1, 0).tensor("t", 4, 0, 32).data(32, 128), nil, "invalid type"},
		{"removed type 31", gguf(3, 1, 0).tensor("t", 31, 0, 32).data(32, 128), nil, "invalid type"},
		{"type -1", gguf(3, 1, 0).tensor("t", math.MaxUint32, 0, 32).data(32, 128), nil, "invalid type"},
		{"zero dimension", gguf(3, 1, 0).tensor("t", TensorF32, 0, 4, 0).data(32, 16), nil, "invalid size 0"},
		{"negative dimension", gguf(3, 1, 0).tensor("t", TensorF32, 0, 1<<63).data(32, 16), nil, "invalid size"},
		{"element overflow", gguf(3, 1, 0).tensor("t", TensorI8, 0, 1<<32, 1<<32).data(32, 16), nil, "too many elements"},
		{"element count max", gguf(3, 1, 0).tensor("t", TensorI8, 0, math.MaxInt64).data(32, 16), nil, "too many elements"},
		{"byte size overflow", gguf(3, 1, 0).tensor("t", TensorF64, 0, 1<<61).data(32, 16), nil, "overflows"},
		{"row not whole blocks", gguf(3, 1, 0).tensor("t", TensorQ4_0, 0, 16, 2).data(32, 36), nil, "block size"},
		{"duplicate tensor", gguf(3, 2, 0).tensor("a", TensorF32, 0, 4).tensor("a", TensorF32, 32, 4).data(32, 48), nil, "duplicate tensor name"},
		{"name too long", gguf(3, 1, 0).tensor(long+"x", TensorF32, 0, 1).data(32, 4), nil, "name is 64 bytes"},
		{"NUL in name", gguf(3, 1, 0).tensor("a\x00b", TensorF32, 0, 1).data(32, 4), nil, "NUL"},

		// Tensor layout.
		{"tensor past EOF", gguf(3, 1, 0).tensor("t", TensorF32, 0, 4).data(32, 15), nil, "beyond the end"},
		{"data section past EOF", gguf(3, 1, 1).kvU32(KeyAlignment, 1<<31).tensor("t", TensorF32, 0, 4).data(1, 16), nil, "beyond the end"},
		{"first offset not 0", gguf(3, 1, 0).tensor("t", TensorF32, 32, 4).data(32, 64), nil, "want 0"},
		{"misaligned offset", gguf(3, 2, 0).tensor("a", TensorF32, 0, 4).tensor("b", TensorF32, 16, 4).data(32, 48), nil, "want 32"},
		{"overlapping tensors", gguf(3, 2, 0).tensor("a", TensorF32, 0, 8).tensor("b", TensorF32, 0, 8).data(32, 64), nil, "want 32"},
		{"gap between tensors", gguf(3, 2, 0).tensor("a", TensorF32, 0, 4).tensor("b", TensorF32, 64, 4).data(32, 80), nil, "want 32"},
		{"tensors out of order", gguf(3, 2, 0).tensor("a", TensorF32, 32, 4).tensor("b", TensorF32, 0, 4).data(32, 48), nil, "want 0"},
		{"huge offset", gguf(3, 1, 0).tensor("t", TensorF32, math.MaxUint64-8, 4).data(32, 16), nil, "want 0"},
	}
}

func TestHostile(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			f, err := Read(bytes.NewReader(tc.data), int64(len(tc.data)))
			runtime.ReadMemStats(&ms1)
			if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 1<<20 {
				t.Errorf("allocated %d bytes for a %d-byte input", alloc, len(tc.data))
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("valid input: %v", err)
				}
				checkLayout(t, f)
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Err != tc.err {
				t.Errorf("FormatError.Err = %v, want %v", fe.Err, tc.err)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.err)
			}
			if !strings.Contains(fe.Reason, tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "gguf: ") {
				t.Errorf("message %q lacks the gguf: prefix", err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(tc.data)) {
				t.Errorf("offset %d outside the %d-byte input", fe.Offset, len(tc.data))
			}
		})
	}
}

// TestLyingSize reads inputs through a reader that holds far less than the
// size it is said to have, which defeats the bounds checks against the
// remaining size; memory use must still follow the bytes actually read.
func TestLyingSize(t *testing.T) {
	inputs := [][]byte{
		gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeUint32)).u64(1 << 50).bytes(),
		gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1 << 50).bytes(),
		gguf(3, 0, 1).str("k").u32(uint32(TypeArray)).u32(uint32(TypeString)).u64(1 << 50).u64(1 << 40).bytes(),
		gguf(3, 0, 1).str("k").u32(uint32(TypeString)).u64(1 << 40).bytes(),
		gguf(3, 1<<40, 1<<40).bytes(),
	}
	for _, in := range inputs {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		_, err := Read(bytes.NewReader(in), 1<<62)
		runtime.ReadMemStats(&ms1)
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%x: error %v, want a FormatError", in, err)
		}
		if alloc := ms1.TotalAlloc - ms0.TotalAlloc; alloc > 64<<20 {
			t.Errorf("%x: allocated %d bytes", in, alloc)
		}
	}
}

func TestHostileOffsets(t *testing.T) {
	tests := []struct {
		data []byte
		off  int64
	}{
		{[]byte("GGML"), 0},
		{gguf(1, 0, 0).bytes(), 4},
		{gguf(3, 0, 1<<60).bytes(), 16},
		{gguf(3, 1<<60, 0).bytes(), 8},
		{gguf(3, 0, 2).kvU32("a", 1).kvU32("a", 2).bytes(), 24 + 8 + 1 + 4 + 4},
		{gguf(3, 1, 0).tensor("t", TensorF32, 32, 4).data(32, 64), 24 + 8 + 1 + 4 + 8 + 4},
	}
	for _, tc := range tests {
		_, err := Read(bytes.NewReader(tc.data), int64(len(tc.data)))
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Offset != tc.off {
			t.Errorf("%x: error %v, want offset %d", tc.data, err, tc.off)
		}
	}
}

// allTypesFile returns a File with a value of every type and tensors of
// several types.
func allTypesFile() *File {
	return &File{
		KV: []KV{
			{KeyArchitecture, StringValue("test")},
			{KeyAlignment, Uint32Value(64)},
			{"u8", Uint8Value(200)},
			{"i8", Int8Value(-100)},
			{"u16", Uint16Value(60000)},
			{"i16", Int16Value(-30000)},
			{"u32", Uint32Value(4000000000)},
			{"i32", Int32Value(-2000000000)},
			{"f32", Float32Value(1.5)},
			{"bool", BoolValue(true)},
			{"str", StringValue("héllo\x00\xff")},
			{"u64", Uint64Value(math.MaxUint64)},
			{"i64", Int64Value(math.MinInt64)},
			{"f64", Float64Value(math.Pi)},
			{"a.u8", ArrayValue([]uint8{1, 2, 3})},
			{"a.i8", ArrayValue([]int8{-1, 2})},
			{"a.u16", ArrayValue([]uint16{1, 65535})},
			{"a.i16", ArrayValue([]int16{-1, 32767})},
			{"a.u32", ArrayValue([]uint32{7})},
			{"a.i32", ArrayValue([]int32{-7, 7})},
			{"a.f32", ArrayValue([]float32{0.25, float32(math.NaN()), float32(math.Inf(-1))})},
			{"a.bool", ArrayValue([]bool{true, false, true})},
			{"a.str", ArrayValue([]string{"a", "", "ccc"})},
			{"a.u64", ArrayValue([]uint64{1 << 63})},
			{"a.i64", ArrayValue([]int64{-1 << 63})},
			{"a.f64", ArrayValue([]float64{-0.0, 1e300})},
			{"a.empty", ArrayValue([]int32{})},
		},
		Tensors: []TensorInfo{
			{Name: "a", Type: TensorF32, Dims: []uint64{3, 2}},
			{Name: "b", Type: TensorQ4_K, Dims: []uint64{256, 2}},
			{Name: "c", Type: TensorQ8_0, Dims: []uint64{64}},
			{Name: "d", Type: TensorI8, Dims: []uint64{5, 1, 1, 1}},
		},
	}
}

func TestWriteRead(t *testing.T) {
	src := allTypesFile()
	// Tensor i is filled with byte i+1.
	fill := func(i int, w io.Writer) error {
		_, err := w.Write(bytes.Repeat([]byte{byte(i + 1)}, int(src.Tensors[i].Size())))
		return err
	}
	var buf bytes.Buffer
	if err := Write(&buf, src, fill); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, f)
	if f.Version != Version || f.Alignment != 64 || f.Size != int64(len(data)) {
		t.Errorf("version %d, alignment %d, size %d", f.Version, f.Alignment, f.Size)
	}
	if len(f.KV) != len(src.KV) {
		t.Fatalf("%d KVs, want %d", len(f.KV), len(src.KV))
	}
	for i, kv := range src.KV {
		if f.KV[i].Key != kv.Key || !f.KV[i].Value.Equal(kv.Value) {
			t.Errorf("KV %d: %s=%v, want %s=%v", i, f.KV[i].Key, f.KV[i].Value, kv.Key, kv.Value)
		}
	}
	wantOff := []uint64{0, 64, 64 + 320, 64 + 320 + 128}
	wantSize := []uint64{24, 288, 68, 5}
	for i, ti := range f.Tensors {
		if ti.Name != src.Tensors[i].Name || ti.Type != src.Tensors[i].Type || ti.Offset != wantOff[i] || ti.Size() != wantSize[i] {
			t.Errorf("tensor %d: %v at %d size %d; want offset %d size %d", i, ti, ti.Offset, ti.Size(), wantOff[i], wantSize[i])
		}
		got, err := io.ReadAll(f.TensorReader(bytes.NewReader(data), i))
		if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{byte(i + 1)}, int(wantSize[i]))) {
			t.Errorf("tensor %d data %x, %v", i, got, err)
		}
	}
	if int64(len(data))%64 != 0 {
		t.Errorf("file size %d not padded to the alignment", len(data))
	}

	// Writing again gives the same bytes.
	var again bytes.Buffer
	if err := Write(&again, f, copyData(f, bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), data) {
		t.Errorf("second write differs")
	}

	// Zero-filled data, version 2.
	buf.Reset()
	src2 := *src
	src2.Version = 2
	if err := Write(&buf, &src2, nil); err != nil {
		t.Fatal(err)
	}
	f2, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil || f2.Version != 2 {
		t.Fatalf("version 2 file: %v", err)
	}
	if got, _ := io.ReadAll(f2.TensorReader(bytes.NewReader(buf.Bytes()), 1)); bytes.Count(got, []byte{0}) != 288 {
		t.Errorf("zero data: %x", got)
	}
}

// TestWriteNoTensors checks that a file without tensors is not padded,
// however large its alignment.
func TestWriteNoTensors(t *testing.T) {
	f := &File{KV: []KV{{KeyAlignment, Uint32Value(1 << 31)}}}
	var buf bytes.Buffer
	if err := Write(&buf, f, nil); err != nil {
		t.Fatal(err)
	}
	want := gguf(3, 0, 1).kvU32(KeyAlignment, 1<<31).bytes()
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("wrote %x, want %x", buf.Bytes(), want)
	}
	g, err := Read(bytes.NewReader(want), int64(len(want)))
	if err != nil || g.Alignment != 1<<31 || g.DataOffset != 1<<31 {
		t.Fatalf("read back: %v, %+v", err, g)
	}
}

func TestWriteErrors(t *testing.T) {
	ok := func() *File {
		return &File{
			KV:      []KV{{"k", Uint32Value(1)}},
			Tensors: []TensorInfo{{Name: "t", Type: TensorF32, Dims: []uint64{4}}},
		}
	}
	tests := []struct {
		name   string
		modify func(*File)
		data   func(int, io.Writer) error
		want   string
	}{
		{"bad version", func(f *File) { f.Version = 1 }, nil, "version"},
		{"empty key", func(f *File) { f.KV[0].Key = "" }, nil, "empty key"},
		{"NUL key", func(f *File) { f.KV[0].Key = "a\x00" }, nil, "NUL"},
		{"duplicate key", func(f *File) { f.KV = append(f.KV, f.KV[0]) }, nil, "duplicate key"},
		{"invalid value type", func(f *File) { f.KV[0].Value = Value{Type: 99} }, nil, "invalid value type"},
		{"array without elements type", func(f *File) { f.KV[0].Value = Value{Type: TypeArray, elem: TypeArray} }, nil, "invalid array"},
		{"alignment type", func(f *File) { f.KV = append(f.KV, KV{KeyAlignment, Uint64Value(32)}) }, nil, "power of two"},
		{"alignment value", func(f *File) { f.KV = append(f.KV, KV{KeyAlignment, Uint32Value(48)}) }, nil, "power of two"},
		{"alignment mismatch", func(f *File) { f.Alignment = 64 }, nil, "differs"},
		{"tensor type", func(f *File) { f.Tensors[0].Type = 4 }, nil, "invalid type"},
		{"tensor dims", func(f *File) { f.Tensors[0].Dims = []uint64{1, 1, 1, 1, 1} }, nil, "dimensions"},
		{"tensor zero dim", func(f *File) { f.Tensors[0].Dims = []uint64{0} }, nil, "invalid size"},
		{"tensor blocks", func(f *File) { f.Tensors[0].Type = TensorQ8_0 }, nil, "block size"},
		{"tensor name", func(f *File) { f.Tensors[0].Name = strings.Repeat("n", 64) }, nil, "longer"},
		{"tensor duplicate", func(f *File) { f.Tensors = append(f.Tensors, f.Tensors[0]) }, nil, "duplicate tensor"},
		{"data too short", nil, func(i int, w io.Writer) error { _, err := w.Write(make([]byte, 15)); return err }, "is 15 bytes, want 16"},
		{"data too long", nil, func(i int, w io.Writer) error { _, err := w.Write(make([]byte, 17)); return err }, "longer than 16"},
		{"data error", nil, func(i int, w io.Writer) error { return errDisk }, "disk on fire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := ok()
			if tc.modify != nil {
				tc.modify(f)
			}
			err := Write(io.Discard, f, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "gguf: ") {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if err := Write(io.Discard, ok(), nil); err != nil {
		t.Errorf("valid file: %v", err)
	}
	if err := Write(failWriter{}, ok(), nil); !errors.Is(err, errDisk) {
		t.Errorf("failing writer: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errDisk }

func TestValueAccessors(t *testing.T) {
	type want struct {
		u    uint64
		uok  bool
		i    int64
		iok  bool
		f    float64
		fok  bool
		s    string
		str  string
		n    int
		elem ValueType
	}
	tests := []struct {
		v Value
		want
	}{
		{Uint8Value(7), want{7, true, 7, true, 0, false, "7", "", 1, TypeUint8}},
		{Int8Value(-7), want{0, false, -7, true, 0, false, "-7", "", 1, TypeInt8}},
		{Int32Value(7), want{7, true, 7, true, 0, false, "7", "", 1, TypeInt32}},
		{Uint64Value(math.MaxUint64), want{math.MaxUint64, true, 0, false, 0, false, "18446744073709551615", "", 1, TypeUint64}},
		{Int64Value(math.MinInt64), want{0, false, math.MinInt64, true, 0, false, "-9223372036854775808", "", 1, TypeInt64}},
		{Float32Value(0.5), want{0, false, 0, false, 0.5, true, "0.5", "", 1, TypeFloat32}},
		{Float64Value(1e-5), want{0, false, 0, false, 1e-5, true, "1e-05", "", 1, TypeFloat64}},
		{BoolValue(true), want{0, false, 0, false, 0, false, "true", "", 1, TypeBool}},
		{StringValue("llama"), want{0, false, 0, false, 0, false, `"llama"`, "llama", 1, TypeString}},
		{StringValue(strings.Repeat("ab", 40)), want{0, false, 0, false, 0, false, `"` + strings.Repeat("ab", 32) + `"...`, strings.Repeat("ab", 40), 1, TypeString}},
		{ArrayValue([]string{"a", "b", "c", "d", "e", "f"}), want{0, false, 0, false, 0, false, `[6]string{"a", "b", "c", "d", "e", ...}`, "", 6, TypeString}},
		{ArrayValue([]int32{1, -2}), want{0, false, 0, false, 0, false, `[2]int32{1, -2}`, "", 2, TypeInt32}},
		{ArrayValue([]float32{}), want{0, false, 0, false, 0, false, `[0]float32{}`, "", 0, TypeFloat32}},
		{ArrayValue([]bool{true}), want{0, false, 0, false, 0, false, `[1]bool{true}`, "", 1, TypeBool}},
	}
	for _, tc := range tests {
		u, uok := tc.v.Uint()
		i, iok := tc.v.Int()
		f, fok := tc.v.Float()
		s, _ := tc.v.Str()
		if u != tc.u || uok != tc.uok || i != tc.i || iok != tc.iok || f != tc.f || fok != tc.fok || s != tc.str {
			t.Errorf("%v: Uint %d %v, Int %d %v, Float %g %v, Str %q", tc.v, u, uok, i, iok, f, fok, s)
		}
		if got := tc.v.String(); got != tc.s {
			t.Errorf("String() = %s, want %s", got, tc.s)
		}
		if tc.v.Len() != tc.n || tc.v.ElemType() != tc.elem {
			t.Errorf("%v: Len %d, ElemType %s; want %d, %s", tc.v, tc.v.Len(), tc.v.ElemType(), tc.n, tc.elem)
		}
	}
	if b, ok := BoolValue(true).Bool(); !b || !ok {
		t.Error("BoolValue(true).Bool()")
	}
	if _, ok := Uint8Value(1).Bool(); ok {
		t.Error("Uint8Value.Bool() ok")
	}

	a := ArrayValue([]uint16{5, 6})
	if a.Uint16s()[1] != 6 || a.Uint32s() != nil || a.Strings() != nil || !a.IsArray() {
		t.Error("typed slice accessors")
	}
	if e := a.Index(1); !e.Equal(Uint16Value(6)) {
		t.Errorf("Index(1) = %v", e)
	}
	if ArrayValue([]string{}).Strings() == nil {
		t.Error("empty string array gives nil slice")
	}
	src := []int64{1, 2}
	c := ArrayValue(src)
	src[0] = 9
	if c.Int64s()[0] != 1 {
		t.Error("ArrayValue does not copy")
	}
	if ArrayValue([]int8{1}).Equal(ArrayValue([]uint8{1})) || !ArrayValue([]int8{}).Equal(ArrayValue([]int8(nil))) {
		t.Error("Equal on arrays")
	}
	if Int8Value(-1).Equal(Uint8Value(255)) || !Float32Value(float32(math.NaN())).Equal(Float32Value(float32(math.NaN()))) {
		t.Error("Equal on scalars")
	}
	if s := (Value{Type: 42}).String(); s != "<invalid ValueType(42)>" {
		t.Errorf("invalid value String() = %s", s)
	}
	if TypeFloat64.String() != "float64" || ValueType(13).String() != "ValueType(13)" {
		t.Error("ValueType.String")
	}
}

func TestFileAccessors(t *testing.T) {
	f := allTypesFile()
	if f.Architecture() != "test" {
		t.Errorf("Architecture() = %q", f.Architecture())
	}
	if u, ok := f.Uint("u16"); !ok || u != 60000 {
		t.Errorf("Uint(u16) = %d, %v", u, ok)
	}
	if _, ok := f.Uint("i8"); ok {
		t.Error("Uint of a negative int8")
	}
	if _, ok := f.Uint("str"); ok {
		t.Error("Uint of a string")
	}
	if i, ok := f.Int("i32"); !ok || i != -2000000000 {
		t.Errorf("Int(i32) = %d, %v", i, ok)
	}
	if _, ok := f.Int("u64"); ok {
		t.Error("Int of MaxUint64")
	}
	if x, ok := f.Float("f64"); !ok || x != math.Pi {
		t.Errorf("Float(f64) = %v, %v", x, ok)
	}
	if b, ok := f.Bool("bool"); !ok || !b {
		t.Errorf("Bool(bool) = %v, %v", b, ok)
	}
	if _, ok := f.String("missing"); ok {
		t.Error("String of a missing key")
	}
	if _, ok := f.String("a.str"); ok {
		t.Error("String of an array")
	}
	for _, fn := range []func(string) bool{
		func(k string) bool { _, ok := f.Uint(k); return ok },
		func(k string) bool { _, ok := f.Int(k); return ok },
		func(k string) bool { _, ok := f.Float(k); return ok },
		func(k string) bool { _, ok := f.Bool(k); return ok },
	} {
		if fn("missing") {
			t.Error("accessor of a missing key")
		}
	}
	if got := f.ParameterCount(); got != 6+512+64+5 {
		t.Errorf("ParameterCount() = %d", got)
	}
	if got := f.TensorDataSize(); got != 24+288+68+5 {
		t.Errorf("TensorDataSize() = %d", got)
	}
	if _, ok := f.Tensor("nope"); ok {
		t.Error("Tensor(nope)")
	}
	if (&File{}).Architecture() != "" {
		t.Error("Architecture of an empty File")
	}
}

func TestTensorTypes(t *testing.T) {
	tests := []struct {
		t         TensorType
		name      string
		blck, siz uint64
	}{
		{TensorF32, "F32", 1, 4},
		{TensorF16, "F16", 1, 2},
		{TensorQ4_0, "Q4_0", 32, 18},
		{TensorQ4_1, "Q4_1", 32, 20},
		{4, "Q4_2", 0, 0},
		{5, "Q4_3", 0, 0},
		{TensorQ5_0, "Q5_0", 32, 22},
		{TensorQ5_1, "Q5_1", 32, 24},
		{TensorQ8_0, "Q8_0", 32, 34},
		{TensorQ8_1, "Q8_1", 32, 36},
		{TensorQ2_K, "Q2_K", 256, 84},
		{TensorQ3_K, "Q3_K", 256, 110},
		{TensorQ4_K, "Q4_K", 256, 144},
		{TensorQ5_K, "Q5_K", 256, 176},
		{TensorQ6_K, "Q6_K", 256, 210},
		{TensorQ8_K, "Q8_K", 256, 292},
		{TensorIQ2_XXS, "IQ2_XXS", 256, 66},
		{TensorIQ2_XS, "IQ2_XS", 256, 74},
		{TensorIQ3_XXS, "IQ3_XXS", 256, 98},
		{TensorIQ1_S, "IQ1_S", 256, 50},
		{TensorIQ4_NL, "IQ4_NL", 32, 18},
		{TensorIQ3_S, "IQ3_S", 256, 110},
		{TensorIQ2_S, "IQ2_S", 256, 82},
		{TensorIQ4_XS, "IQ4_XS", 256, 136},
		{TensorI8, "I8", 1, 1},
		{TensorI16, "I16", 1, 2},
		{TensorI32, "I32", 1, 4},
		{TensorI64, "I64", 1, 8},
		{TensorF64, "F64", 1, 8},
		{TensorIQ1_M, "IQ1_M", 256, 56},
		{TensorBF16, "BF16", 1, 2},
		{31, "Q4_0_4_4", 0, 0},
		{33, "Q4_0_8_8", 0, 0},
		{TensorTQ1_0, "TQ1_0", 256, 54},
		{TensorTQ2_0, "TQ2_0", 256, 66},
		{38, "IQ4_NL_8_8", 0, 0},
		{TensorMXFP4, "MXFP4", 32, 17},
		{40, "TensorType(40)", 0, 0},
		{math.MaxUint32, "TensorType(4294967295)", 0, 0},
	}
	for _, tc := range tests {
		if tc.t.String() != tc.name || tc.t.BlockSize() != tc.blck || tc.t.TypeSize() != tc.siz || tc.t.Valid() != (tc.blck != 0) {
			t.Errorf("type %d: %s %d %d %v; want %s %d %d", uint32(tc.t), tc.t, tc.t.BlockSize(), tc.t.TypeSize(), tc.t.Valid(), tc.name, tc.blck, tc.siz)
		}
	}

	ti := TensorInfo{Name: "w", Type: TensorQ4_K, Dims: []uint64{4096, 11008}}
	if ti.Elements() != 4096*11008 || ti.Size() != 4096*11008/256*144 || ti.String() != "w Q4_K [4096 11008]" {
		t.Errorf("%v: %d elements, %d bytes", ti, ti.Elements(), ti.Size())
	}
	bad := TensorInfo{Type: TensorQ4_K, Dims: []uint64{100}}
	if bad.Size() != 0 {
		t.Errorf("size of a partial block: %d", bad.Size())
	}
	huge := TensorInfo{Type: TensorF32, Dims: []uint64{1 << 40, 1 << 40}}
	if huge.Elements() != 0 || huge.Size() != 0 {
		t.Errorf("overflowing tensor: %d elements, %d bytes", huge.Elements(), huge.Size())
	}
	if s := (&TensorInfo{Type: TensorF32}).Elements(); s != 1 {
		t.Errorf("scalar has %d elements", s)
	}
}

func TestFileType(t *testing.T) {
	tests := map[uint32]string{
		0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
		10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
		16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
		22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
		28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
		37: "TQ2_0", 38: "MXFP4_MOE",
		1024 + 15: "Q4_K_M (guessed)", 99: "unknown(99)", 1024 + 99: "unknown(1123)",
	}
	for ft, want := range tests {
		if got := FileType(ft); got != want {
			t.Errorf("FileType(%d) = %q, want %q", ft, got, want)
		}
	}
}

func BenchmarkReadVocab(b *testing.B) {
	data := readModel(b, filepath.Join("vocab", "ggml-vocab-deepseek-llm.gguf"))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Read(bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}
