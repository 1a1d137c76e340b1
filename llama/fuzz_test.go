package llama_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/internal/testllama"
	"github.com/llamago/llamago/llama"
)

// FuzzLoadMetadata changes stories260K's metadata and tensor descriptions
// as the fuzzer's bytes say, loads the result and generates from it: every
// change must give an error or a working model, never an abort in
// llama.cpp. go test runs the seeds, which are crashes found this way
// before validateModelFile refused them; explore with
//
//	go test -run '^$' -fuzz FuzzLoadMetadata ./llama
//
// (each worker that llama.cpp aborts is reported with its input).
func FuzzLoadMetadata(f *testing.F) {
	src := modelPath(f, "stories260K.gguf")
	orig, err := gguf.Open(src)
	if err != nil {
		f.Fatal(err)
	}
	kv := func(key string) byte {
		return fuzzIndex(f, orig.KV, key, func(kv gguf.KV) string { return kv.Key })
	}
	tensor := func(name string) byte {
		return fuzzIndex(f, orig.Tensors, name, func(t gguf.TensorInfo) string { return t.Name })
	}
	op := func(kind, index byte, v uint64) []byte {
		return binary.LittleEndian.AppendUint64([]byte{kind, index}, v)
	}
	f.Add([]byte{}) // unchanged: loads and generates
	f.Add(op(fuzzFloat32, kv("llama.attention.layer_norm_rms_epsilon"), uint64(math.Float32bits(-1e-5))))
	f.Add(op(fuzzFloat32, kv("llama.attention.layer_norm_rms_epsilon"), 0xffffffff)) // NaN
	f.Add(op(fuzzTensorType, tensor("blk.4.ffn_norm.weight"), uint64(gguf.TensorQ5_1)))
	f.Add(op(fuzzTensorType, tensor("output_norm.weight"), uint64(gguf.TensorF16)))
	f.Add(op(fuzzUint32, kv("llama.block_count"), 100000))
	f.Add(op(fuzzTensorType, tensor("blk.2.attn_k.weight"), uint64(gguf.TensorI8)))

	in, err := os.Open(src)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { in.Close() })
	f.Fuzz(func(t *testing.T, ops []byte) {
		p, ok := fuzzWrite(t, src, ops, orig, in)
		if !ok {
			return
		}
		m, err := llama.Load(context.Background(), p)
		if err != nil {
			if !errors.Is(err, llama.ErrInvalidModel) && !errors.Is(err, gguf.ErrNotGGUF) {
				t.Logf("Load: %v", err) // llama.cpp's own refusal
			}
			return
		}
		defer m.Close()
		fuzzGenerate(m)
	})
}

// FuzzLoadAdapter changes a LoRA adapter of stories260K as
// FuzzLoadMetadata changes the model, loads it and generates with it:
// every change must give an error or a working adapter.
func FuzzLoadAdapter(f *testing.F) {
	m, err := llama.Load(context.Background(), modelPath(f, "stories260K.gguf"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { m.Close() })
	src := testllama.LoRA(f, "stories260K.gguf", 4, 1)
	orig, err := gguf.Open(src)
	if err != nil {
		f.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { in.Close() })
	op := func(kind, index byte, v uint64) []byte {
		return binary.LittleEndian.AppendUint64([]byte{kind, index}, v)
	}
	f.Add([]byte{})                                         // unchanged: loads and applies
	f.Add(op(fuzzTensorRank, 0, 3))                         // lora_a of three dimensions: ggml aborts
	f.Add(op(fuzzTensorType, 1, uint64(gguf.TensorI8)))     // no dot product for i8
	f.Add(op(fuzzTensorDim, 0, 1|(8<<8)))                   // rank 8 against B's 4
	f.Add(op(fuzzFloat32, 3, uint64(math.Float32bits(-1)))) // alpha -1
	f.Add(op(fuzzUint32, 0, 3))                             // general.architecture a number: llama.cpp's getter aborts
	f.Add(op(fuzzUint32, 3, 3))                             // so does alpha as an integer
	f.Fuzz(func(t *testing.T, ops []byte) {
		p, ok := fuzzWrite(t, src, ops, orig, in)
		if !ok {
			return
		}
		a, err := m.LoadAdapter(p)
		if err != nil {
			return
		}
		defer a.Close()
		fuzzGenerate(m, llama.WithAdapter(a, 1))
	})
}

// fuzzGenerate generates a few tokens with m in a small context made with
// opts; errors are fine, an abort is what the fuzz targets look for.
func fuzzGenerate(m *llama.Model, opts ...llama.ContextOption) {
	c, err := m.NewContext(append([]llama.ContextOption{llama.WithContextSize(64), llama.WithThreads(1), llama.WithBatchThreads(1)}, opts...)...)
	if err != nil {
		return
	}
	defer c.Close()
	for _, err := range c.Generate(context.Background(), "Once upon a time", greedy(4)...) {
		if err != nil {
			break
		}
	}
}

// fuzzWrite writes the GGUF file src, changed by ops (see fuzzMutate), to
// a temporary file: the changed tensors as zeros, the others from orig's
// file in. ok is false for a file gguf.Write refuses to make.
func fuzzWrite(t *testing.T, src string, ops []byte, orig *gguf.File, in *os.File) (path string, ok bool) {
	g, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	changed := fuzzMutate(g, ops)
	path = filepath.Join(t.TempDir(), "fuzz.gguf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	err = gguf.Write(out, g, func(i int, w io.Writer) error {
		if !changed[i] {
			_, err := io.Copy(w, orig.TensorReader(in, i))
			return err
		}
		_, err := io.CopyN(w, zeros{}, int64(g.Tensors[i].Size()))
		return err
	})
	return path, err == nil
}

// The operations of FuzzLoadMetadata, each a kind byte, an index byte
// (of a key or tensor, modulo their number) and a little-endian uint64.
const (
	fuzzUint32     = iota // the key's value becomes a uint32
	fuzzFloat32           // a float32 of those bits
	fuzzTruncate          // an array keeps v%len elements
	fuzzTensorType        // the tensor's type becomes v%40
	fuzzTensorDim         // one of its dimensions becomes v>>8 (small)
	fuzzTensorRank        // it gets 1+v%4 dimensions, new ones of 2
	fuzzKinds
)

// fuzzMutate applies ops to f and reports the tensors whose size may have
// changed.
func fuzzMutate(f *gguf.File, ops []byte) map[int]bool {
	changed := map[int]bool{}
	for ; len(ops) >= 10; ops = ops[10:] {
		kind, idx, v := ops[0]%fuzzKinds, int(ops[1]), binary.LittleEndian.Uint64(ops[2:10])
		switch kind {
		case fuzzUint32, fuzzFloat32, fuzzTruncate:
			kv := &f.KV[idx%len(f.KV)]
			switch {
			case kind == fuzzUint32:
				kv.Value = gguf.Uint32Value(uint32(v))
			case kind == fuzzFloat32:
				kv.Value = gguf.Float32Value(math.Float32frombits(uint32(v)))
			case kv.Value.IsArray() && kv.Value.Len() > 0:
				n := int(v % uint64(kv.Value.Len()))
				switch kv.Value.ElemType() {
				case gguf.TypeString:
					kv.Value = gguf.ArrayValue(kv.Value.Strings()[:n])
				case gguf.TypeFloat32:
					kv.Value = gguf.ArrayValue(kv.Value.Float32s()[:n])
				case gguf.TypeInt32:
					kv.Value = gguf.ArrayValue(kv.Value.Int32s()[:n])
				}
			}
		case fuzzTensorType, fuzzTensorDim, fuzzTensorRank:
			i := idx % len(f.Tensors)
			t := &f.Tensors[i]
			switch kind {
			case fuzzTensorType:
				t.Type = gguf.TensorType(v % 40)
			case fuzzTensorDim:
				t.Dims[int(v&0xff)%len(t.Dims)] = (v >> 8) % 4096
			default:
				n := 1 + int(v%4)
				for len(t.Dims) < n {
					t.Dims = append(t.Dims, 2)
				}
				t.Dims = t.Dims[:n]
			}
			changed[i] = true
		}
	}
	return changed
}

// fuzzIndex is the index of the element of s named name, as an index byte
// of an operation.
func fuzzIndex[T any](f *testing.F, s []T, name string, nameOf func(T) string) byte {
	i := slices.IndexFunc(s, func(e T) bool { return nameOf(e) == name })
	if i < 0 || i > math.MaxUint8 {
		f.Fatalf("no %s within the first 256", name)
	}
	return byte(i)
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// FuzzTokenize tokenizes the fuzzer's text with every conformance
// vocabulary, with and without special tokens: valid UTF-8 always
// tokenizes, other bytes tokenize or give ErrInvalidArgument, and what
// comes back detokenizes.
func FuzzTokenize(f *testing.F) {
	var models []*llama.Model
	for _, vt := range vocabTests {
		m, err := llama.Load(context.Background(), modelPath(f, filepath.Join("vocab", vt.file)), llama.WithVocabOnly())
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { m.Close() })
		models = append(models, m)
	}
	for _, s := range []string{"", "Hello world", " \t\n  ", "\xff\xfe", "\xf4\x90\x80\x80", "日本\xe8", "<s>[INST]</s><|endoftext|>[CLS]", "🦙🦙 a'b 3.14"} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(llama.AddSpecial|llama.ParseSpecial))
	}
	f.Fuzz(func(t *testing.T, text string, flags uint8) {
		fl := llama.SpecialTokens(flags) & (llama.AddSpecial | llama.ParseSpecial)
		for i, m := range models {
			ids, err := m.Tokenize(text, fl)
			if err != nil {
				if utf8.ValidString(text) || !errors.Is(err, llama.ErrInvalidArgument) {
					t.Errorf("%s: Tokenize(%q, %d): %v", vocabTests[i].file, text, fl, err)
				}
				continue
			}
			if _, err := m.Detokenize(ids, true, true); err != nil {
				t.Errorf("%s: Detokenize(Tokenize(%q)): %v", vocabTests[i].file, text, err)
			}
		}
	})
}
