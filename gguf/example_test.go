package gguf_test

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/llamago/llamago/gguf"
)

func Example() {
	// Build a tiny model file in memory.
	src := &gguf.File{
		KV: []gguf.KV{
			{Key: gguf.KeyArchitecture, Value: gguf.StringValue("llama")},
			{Key: "llama.block_count", Value: gguf.Uint32Value(1)},
			{Key: "tokenizer.ggml.tokens", Value: gguf.ArrayValue([]string{"<unk>", "<s>", "</s>"})},
		},
		Tensors: []gguf.TensorInfo{
			{Name: "token_embd.weight", Type: gguf.TensorF32, Dims: []uint64{4, 3}},
			{Name: "output.weight", Type: gguf.TensorQ8_0, Dims: []uint64{32, 3}},
		},
	}
	var buf bytes.Buffer
	fill := func(i int, w io.Writer) error {
		_, err := w.Write(make([]byte, src.Tensors[i].Size()))
		return err
	}
	if err := gguf.Write(&buf, src, fill); err != nil {
		log.Fatal(err)
	}

	// Read it back.
	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		log.Fatal(err)
	}
	n, _ := f.Uint("llama.block_count")
	tokens, _ := f.Lookup("tokenizer.ggml.tokens")
	fmt.Println(f.Architecture(), n, tokens)
	for _, t := range f.Tensors {
		fmt.Println(t, "at", f.DataOffset+int64(t.Offset), "size", t.Size())
	}
	fmt.Println(f.ParameterCount(), "parameters in", f.Size, "bytes")
	// Output:
	// llama 1 [3]string{"<unk>", "<s>", "</s>"}
	// token_embd.weight F32 [4 3] at 320 size 48
	// output.weight Q8_0 [32 3] at 384 size 102
	// 108 parameters in 512 bytes
}
