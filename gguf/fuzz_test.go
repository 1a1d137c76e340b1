package gguf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// shrink returns a small valid file with the metadata of the file in data,
// arrays cut to a few elements, and its first few tensors, shrunk to a
// handful of elements each. Small seeds keep the fuzzer fast: it spends up
// to a minute minimizing each new interesting input, and the time grows
// with the input size.
func shrink(t testing.TB, data []byte) []byte {
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	g := &File{}
	for _, kv := range f.KV {
		if v := kv.Value; v.IsArray() && v.Len() > 4 {
			switch v.ElemType() {
			case TypeString:
				kv.Value = ArrayValue(v.Strings()[:4])
			case TypeFloat32:
				kv.Value = ArrayValue(v.Float32s()[:4])
			case TypeInt32:
				kv.Value = ArrayValue(v.Int32s()[:4])
			default:
				continue
			}
		}
		g.KV = append(g.KV, kv)
	}
	for i, ti := range f.Tensors {
		if i == 3 {
			break
		}
		ti.Dims = []uint64{ti.Type.BlockSize(), 2}
		g.Tensors = append(g.Tensors, ti)
	}
	var buf bytes.Buffer
	if err := Write(&buf, g, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzRead(f *testing.F) {
	dir := modelsDir(f)
	stories := readModel(f, "stories260K.gguf")
	llama2 := readModel(f, "llama-2-tiny-random.gguf")

	// Real files: the small fixture, prefixes of the models and of some
	// vocab files, and shrunk copies of the models.
	f.Add(readModel(f, "ollama-test-truncated.gguf"))
	for _, n := range []int{24, 100, 1024} {
		f.Add(stories[:n])
	}
	f.Add(llama2[:1024])
	f.Add(shrink(f, stories))
	f.Add(shrink(f, llama2))
	for _, v := range vocabFiles[:3] {
		b, err := os.ReadFile(filepath.Join(dir, "vocab", v.name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:1024])
		f.Add(shrink(f, b))
	}

	// Synthetic files with every value type, and hand-made hostile ones.
	var buf bytes.Buffer
	if err := Write(&buf, allTypesFile(), nil); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	for _, tc := range hostileCases() {
		f.Add(tc.data)
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		// A reader that holds less than it is said to must not make the
		// reader allocate according to the claimed size.
		if _, err := Read(bytes.NewReader(data), 1<<40); err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("lying size: error %v is not a *FormatError", err)
			}
		}

		g, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Fatalf("error offset %d outside the %d-byte input: %v", fe.Offset, len(data), err)
			}
			return
		}
		checkLayout(t, g)
		for _, kv := range g.KV {
			_ = kv.Value.String()
			if n := kv.Value.Len(); kv.Value.IsArray() && n > 0 {
				_ = kv.Value.Index(n - 1)
			}
		}
		for _, ti := range g.Tensors {
			_ = ti.String()
		}
		_ = g.ParameterCount()
		_ = g.TensorDataSize()

		// The writer accepts whatever the reader accepts, and the result
		// reads back the same and is written back identically.
		var out bytes.Buffer
		if err := Write(&out, g, copyData(g, bytes.NewReader(data))); err != nil {
			t.Fatalf("Write: %v", err)
		}
		h, err := Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil {
			t.Fatalf("reading written file: %v", err)
		}
		sameFile(t, g, h)
		var again bytes.Buffer
		if err := Write(&again, h, copyData(h, bytes.NewReader(out.Bytes()))); err != nil {
			t.Fatalf("second Write: %v", err)
		}
		if !bytes.Equal(again.Bytes(), out.Bytes()) {
			t.Fatalf("second write differs")
		}
		// The tensor data is copied unchanged.
		for i := range g.Tensors {
			a, errA := io.ReadAll(g.TensorReader(bytes.NewReader(data), i))
			b, errB := io.ReadAll(h.TensorReader(bytes.NewReader(out.Bytes()), i))
			if errA != nil || errB != nil || !bytes.Equal(a, b) {
				t.Fatalf("tensor %d data differs (%v, %v)", i, errA, errB)
			}
		}
	})
}
