package testllama

import (
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/internal/testmodels"
)

// LoRA writes a LoRA adapter for the test model name, in llama.cpp's
// format (convert_lora_to_gguf.py), into a temporary directory and returns
// its path: random rank-r matrices for the attention's query and value
// projections of every layer, with alpha = r, large enough to change what
// the model generates. The same seed gives the same file.
func LoRA(t testing.TB, name string, rank int, seed uint64) string {
	t.Helper()
	base, err := gguf.Open(testmodels.Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	arch, _ := base.String("general.architecture")
	f := &gguf.File{Version: 3, KV: []gguf.KV{
		{Key: "general.architecture", Value: gguf.StringValue(arch)},
		{Key: "general.type", Value: gguf.StringValue("adapter")},
		{Key: "adapter.type", Value: gguf.StringValue("lora")},
		{Key: "adapter.lora.alpha", Value: gguf.Float32Value(float32(rank))},
	}}
	for _, bt := range base.Tensors {
		if !strings.HasSuffix(bt.Name, ".attn_q.weight") && !strings.HasSuffix(bt.Name, ".attn_v.weight") {
			continue
		}
		in, out := bt.Dims[0], bt.Dims[1]
		f.Tensors = append(f.Tensors,
			gguf.TensorInfo{Name: bt.Name + ".lora_a", Type: gguf.TensorF32, Dims: []uint64{in, uint64(rank)}},
			gguf.TensorInfo{Name: bt.Name + ".lora_b", Type: gguf.TensorF32, Dims: []uint64{uint64(rank), out}})
	}
	r := rand.New(rand.NewPCG(seed, 1))
	p := filepath.Join(t.TempDir(), strings.TrimSuffix(name, ".gguf")+"-lora.gguf")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	err = gguf.Write(out, f, func(i int, w io.Writer) error {
		b := make([]byte, 4*f.Tensors[i].Elements())
		for j := 0; j < len(b); j += 4 {
			binary.LittleEndian.PutUint32(b[j:], math.Float32bits(float32(r.NormFloat64()*0.5)))
		}
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}
