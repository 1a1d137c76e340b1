package llama_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

func loadErr(t *testing.T, path string, opts ...llama.ModelOption) error {
	t.Helper()
	m, err := llama.Load(context.Background(), path, opts...)
	if err == nil {
		m.Close()
		return nil
	}
	if m != nil {
		t.Errorf("Load(%s) returned a model with the error %v", path, err)
	}
	return err
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadBadFiles(t *testing.T) {
	dir := t.TempDir()
	random := make([]byte, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	// GGUF magic and version 3, then garbage counts.
	hdr := append([]byte("GGUF\x03\x00\x00\x00"), random[:1000]...)
	tests := []struct {
		name string
		path string
		is   error // nil: any error
	}{
		{"missing", filepath.Join(dir, "nope.gguf"), fs.ErrNotExist},
		{"directory", dir, nil},
		{"empty", writeFile(t, "empty.gguf", nil), llama.ErrNotGGUF},
		{"truncated fixture", modelPath(t, "ollama-test-truncated.gguf"), llama.ErrNotGGUF},
		{"random", writeFile(t, "random.gguf", random), llama.ErrNotGGUF},
		{"text", writeFile(t, "text.gguf", []byte(strings.Repeat("hello\n", 100))), llama.ErrNotGGUF},
		{"magic and garbage", writeFile(t, "garbage.gguf", hdr), llama.ErrInvalidModel},
		{"version 1", writeFile(t, "v1.gguf", append([]byte("GGUF\x01\x00\x00\x00"), make([]byte, 16)...)), nil},
		{"version 99", writeFile(t, "v99.gguf", append([]byte("GGUF\x63\x00\x00\x00"), make([]byte, 16)...)), nil},
	}
	for _, tt := range tests {
		for _, vocabOnly := range []bool{false, true} {
			var opts []llama.ModelOption
			if vocabOnly {
				opts = append(opts, llama.WithVocabOnly())
			}
			err := loadErr(t, tt.path, opts...)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("%s (vocab only %v): Load error %v, want %v", tt.name, vocabOnly, err, tt.is)
			}
		}
	}
}

// TestLoadTruncated cuts stories260K at offsets in the header, the
// metadata, the tensor table and the tensor data: Load must fail each time.
func TestLoadTruncated(t *testing.T) {
	path := modelPath(t, "stories260K.gguf")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// The tensor table starts after the metadata; find its first name.
	tensorTable := strings.Index(string(data), f.Tensors[0].Name) - 8
	if tensorTable < 24 || int64(tensorTable) > f.DataOffset {
		t.Fatalf("tensor table at %d", tensorTable)
	}
	offsets := []int{0, 1, 3, 4, 5, 7, 8, 12, 15, 16, 20, 23, 24, 25, 31}
	spread := func(lo, hi, n int) {
		for i := range n {
			offsets = append(offsets, lo+(hi-lo)*i/n)
		}
	}
	spread(32, tensorTable, 10)               // metadata
	spread(tensorTable, int(f.DataOffset), 8) // tensor table
	spread(int(f.DataOffset), len(data), 8)   // tensor data
	offsets = append(offsets, int(f.DataOffset)-1, int(f.DataOffset), len(data)-1)
	p := filepath.Join(t.TempDir(), "cut.gguf")
	for _, off := range offsets {
		if err := os.WriteFile(p, data[:off], 0o644); err != nil {
			t.Fatal(err)
		}
		err := loadErr(t, p)
		switch {
		case err == nil:
			t.Errorf("cut at %d: Load succeeded", off)
		case off < 24 && !errors.Is(err, llama.ErrNotGGUF) && !errors.Is(err, llama.ErrInvalidModel):
			t.Errorf("cut at %d (in the header): %v", off, err)
		case off >= 24 && !errors.Is(err, llama.ErrInvalidModel):
			t.Errorf("cut at %d: %v, want ErrInvalidModel", off, err)
		}
	}
	if len(offsets) < 40 {
		t.Fatalf("only %d offsets", len(offsets))
	}
}

// TestLoadCorrupted flips random bytes in the metadata and tensor table of
// stories260K. Some flips leave a loadable file (inside a string, say); none
// may crash the process.
func TestLoadCorrupted(t *testing.T) {
	path := modelPath(t, "stories260K.gguf")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := gguf.Open(path)
	r := rand.New(rand.NewPCG(3, 4))
	p := filepath.Join(t.TempDir(), "flip.gguf")
	loaded := 0
	for range 60 {
		b := append([]byte(nil), data...)
		for range 1 + r.IntN(3) {
			b[8+r.IntN(int(f.DataOffset)-8)] ^= byte(1 + r.IntN(255))
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if loadErr(t, p) == nil {
			loaded++
		}
	}
	t.Logf("%d of 60 corrupted files loaded", loaded)
}

// rewrite copies stories260K with package gguf after mod changes its
// metadata, and returns the new file's path.
func rewrite(t *testing.T, mod func(f *gguf.File)) string {
	t.Helper()
	return rewriteFile(t, "stories260K.gguf", mod)
}

// rewriteFile is rewrite for the test model name, or the file at an
// absolute path.
func rewriteFile(t *testing.T, name string, mod func(f *gguf.File)) string {
	t.Helper()
	src := name
	if !filepath.IsAbs(name) {
		src = modelPath(t, name)
	}
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	mod(f)
	p := filepath.Join(t.TempDir(), "model.gguf")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	err = gguf.Write(out, f, func(i int, w io.Writer) error {
		_, err := io.Copy(w, f.TensorReader(in, i))
		return err
	})
	if err != nil {
		t.Fatalf("gguf.Write: %v", err)
	}
	return p
}

func setKV(f *gguf.File, key string, v gguf.Value) {
	for i := range f.KV {
		if f.KV[i].Key == key {
			f.KV[i].Value = v
			return
		}
	}
	f.KV = append(f.KV, gguf.KV{Key: key, Value: v})
}

func delKV(f *gguf.File, key string) {
	for i := range f.KV {
		if f.KV[i].Key == key {
			f.KV = append(f.KV[:i], f.KV[i+1:]...)
			return
		}
	}
}

// TestLoadHostileMetadata: hyperparameters llama.cpp would assert on are
// refused in Go with ErrInvalidModel.
func TestLoadHostileMetadata(t *testing.T) {
	// The unmodified copy loads and generates: the rewriting is sound.
	m, err := llama.Load(context.Background(), rewrite(t, func(*gguf.File) {}))
	if err != nil {
		t.Fatalf("unmodified copy: %v", err)
	}
	c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	if r := mustGenerate(t, c, storiesPrompt, greedy(20)...); !strings.HasPrefix(storiesPrefix, r.text) {
		t.Errorf("unmodified copy generates %q", r.text)
	}
	m.Close()

	tokens := func(f *gguf.File) []string {
		v, _ := f.Lookup("tokenizer.ggml.tokens")
		return append([]string(nil), v.Strings()...)
	}
	tests := []struct {
		name string
		mod  func(f *gguf.File)
	}{
		{"block_count 0", func(f *gguf.File) { setKV(f, "llama.block_count", gguf.Uint32Value(0)) }},
		{"block_count huge", func(f *gguf.File) { setKV(f, "llama.block_count", gguf.Uint32Value(100000)) }},
		{"block_count missing", func(f *gguf.File) { delKV(f, "llama.block_count") }},
		{"block_count string", func(f *gguf.File) { setKV(f, "llama.block_count", gguf.StringValue("5")) }},
		{"embedding_length 0", func(f *gguf.File) { setKV(f, "llama.embedding_length", gguf.Uint32Value(0)) }},
		{"context_length 0", func(f *gguf.File) { setKV(f, "llama.context_length", gguf.Uint32Value(0)) }},
		{"head_count 0", func(f *gguf.File) { setKV(f, "llama.attention.head_count", gguf.Uint32Value(0)) }},
		{"head_count_kv 0", func(f *gguf.File) { setKV(f, "llama.attention.head_count_kv", gguf.Uint32Value(0)) }},
		{"feed_forward_length short array", func(f *gguf.File) {
			setKV(f, "llama.feed_forward_length", gguf.ArrayValue([]uint32{172, 172}))
		}},
		{"expert_count huge", func(f *gguf.File) {
			setKV(f, "llama.expert_count", gguf.Uint32Value(100000))
			setKV(f, "llama.expert_used_count", gguf.Uint32Value(2))
		}},
		{"expert_used_count > expert_count", func(f *gguf.File) {
			setKV(f, "llama.expert_count", gguf.Uint32Value(2))
			setKV(f, "llama.expert_used_count", gguf.Uint32Value(3))
		}},
		{"rope scaling bogus", func(f *gguf.File) { setKV(f, "llama.rope.scaling.type", gguf.StringValue("bogus")) }},
		{"architecture missing", func(f *gguf.File) { delKV(f, "general.architecture") }},
		{"no tokens", func(f *gguf.File) { setKV(f, "tokenizer.ggml.tokens", gguf.ArrayValue([]string{})) }},
		{"duplicate token", func(f *gguf.File) {
			tok := tokens(f)
			tok[5] = tok[6]
			setKV(f, "tokenizer.ggml.tokens", gguf.ArrayValue(tok))
		}},
		{"scores too short", func(f *gguf.File) {
			v, _ := f.Lookup("tokenizer.ggml.scores")
			setKV(f, "tokenizer.ggml.scores", gguf.ArrayValue(v.Float32s()[:100]))
		}},
		{"token_type too short", func(f *gguf.File) {
			v, _ := f.Lookup("tokenizer.ggml.token_type")
			setKV(f, "tokenizer.ggml.token_type", gguf.ArrayValue(v.Int32s()[:100]))
		}},
		{"scores of strings", func(f *gguf.File) { setKV(f, "tokenizer.ggml.scores", gguf.ArrayValue(tokens(f))) }},
		{"WordPiece with byte tokens", func(f *gguf.File) { setKV(f, "tokenizer.ggml.model", gguf.StringValue("bert")) }},
		// ggml asserts eps >= 0 when it normalises.
		{"rms epsilon negative", func(f *gguf.File) {
			setKV(f, "llama.attention.layer_norm_rms_epsilon", gguf.Float32Value(-1e-5))
		}},
		{"rms epsilon NaN", func(f *gguf.File) {
			setKV(f, "llama.attention.layer_norm_rms_epsilon", gguf.Float32Value(float32(math.NaN())))
		}},
		{"norm epsilon infinite", func(f *gguf.File) {
			setKV(f, "llama.attention.layer_norm_epsilon", gguf.Float64Value(math.Inf(1)))
		}},
		// ggml's CPU multiplies activations by f32 norm scales only.
		{"f16 norm weights", func(f *gguf.File) {
			for i := range f.Tensors {
				if strings.HasSuffix(f.Tensors[i].Name, "_norm.weight") {
					f.Tensors[i].Type = gguf.TensorF16
				}
			}
		}},
		// ggml has no dot product for integer weights: a null call.
		{"i8 attention weights", func(f *gguf.File) {
			for i := range f.Tensors {
				if strings.HasSuffix(f.Tensors[i].Name, "attn_q.weight") {
					f.Tensors[i].Type = gguf.TensorI8
				}
			}
		}},
		{"q8_1 output", func(f *gguf.File) {
			for i := range f.Tensors {
				if f.Tensors[i].Name == "output.weight" {
					f.Tensors[i].Type = gguf.TensorQ8_1
				}
			}
		}},
	}
	for _, tt := range tests {
		err := loadErr(t, rewrite(t, tt.mod))
		if !errors.Is(err, llama.ErrInvalidModel) {
			t.Errorf("%s: Load error %v, want ErrInvalidModel", tt.name, err)
		}
	}
}

func TestBatchAndDecodeChecks(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithBatchSize(8))
	ctx := context.Background()
	if c.BatchSize() != 8 || c.Sequences() != 1 {
		t.Fatalf("BatchSize %d Sequences %d", c.BatchSize(), c.Sequences())
	}

	for _, tt := range []struct{ capacity, seqs int }{{0, 1}, {-1, 1}, {1, 0}, {1, llama.MaxSequences() + 1}, {1 << 25, 1}} {
		if b, err := llama.NewBatch(tt.capacity, tt.seqs); !errors.Is(err, llama.ErrInvalidArgument) || b != nil {
			t.Errorf("NewBatch(%d, %d): %v", tt.capacity, tt.seqs, err)
		}
	}

	b, err := llama.NewBatch(16, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Add checks what it can.
	for _, bad := range []struct {
		pos  int
		seqs []int
	}{{-1, nil}, {0, []int{-1}}, {0, []int{llama.MaxSequences()}}, {0, []int{0, 1, 2}}} {
		if err := b.Add(1, bad.pos, true, bad.seqs...); !errors.Is(err, llama.ErrInvalidArgument) {
			t.Errorf("Add(pos %d, seqs %v): %v", bad.pos, bad.seqs, err)
		}
	}
	if b.Len() != 0 {
		t.Fatalf("refused Adds left %d tokens", b.Len())
	}
	if err := c.Decode(ctx, b); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("empty batch: %v", err)
	}

	// Token ids are checked by Decode.
	for _, id := range []llama.TokenID{-1, 512, 1 << 30} {
		b.Clear()
		b.Add(1, 0, false)
		b.Add(id, 1, true)
		if err := c.Decode(ctx, b); !errors.Is(err, llama.ErrInvalidToken) {
			t.Errorf("token %d: %v", id, err)
		}
	}
	// A batch larger than n_batch is refused.
	b.Clear()
	for i := range 9 {
		b.Add(1, i, i == 8)
	}
	if err := c.Decode(ctx, b); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("9 tokens for n_batch 8: %v", err)
	}
	// Sequence ids beyond the context's.
	b.Clear()
	b.Add(1, 0, true, 1)
	if err := c.Decode(ctx, b); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("sequence 1 of 1: %v", err)
	}
	b.Clear()
	b.Add(1, 0, true, 0, 1)
	if err := c.Decode(ctx, b); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("sequences 0 and 1 of 1: %v", err)
	}
	// Full batch.
	small, _ := llama.NewBatch(2, 1)
	defer small.Close()
	small.Add(1, 0, false)
	small.Add(403, 1, true)
	if err := small.Add(407, 2, true); !errors.Is(err, llama.ErrBatchFull) {
		t.Errorf("Add to a full batch: %v", err)
	}
	if err := small.SetLogits(2, true); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("SetLogits(2) of 2: %v", err)
	}
	// Positions llama.cpp refuses (a gap, a repeat) fail without a crash.
	for _, pos := range [][2]int{{0, 5}, {0, 0}, {3, 4}} {
		c.ClearMemory()
		b.Clear()
		b.Add(1, 0, false)
		if err := c.Decode(ctx, b); err != nil {
			t.Fatal(err)
		}
		b.Clear()
		b.Add(403, pos[0], false)
		b.Add(407, pos[1], true)
		var de *llama.DecodeError
		if err := c.Decode(ctx, b); !errors.As(err, &de) {
			t.Errorf("positions %v after 0: %v, want a DecodeError", pos, err)
		}
	}
	// Logits only where asked for.
	c.ClearMemory()
	if err := c.Decode(ctx, small); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2, -3, 100} {
		if _, err := c.Logits(i); !errors.Is(err, llama.ErrNoLogits) {
			t.Errorf("Logits(%d): %v", i, err)
		}
	}
	for _, i := range []int{1, -1} {
		if l, err := c.Logits(i); err != nil || len(l) != 512 {
			t.Errorf("Logits(%d): %d, %v", i, len(l), err)
		}
	}
	if _, err := c.Embeddings(-1); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Embeddings without WithEmbeddings: %v", err)
	}
	// Memory operations check their sequence and range.
	if _, err := c.RemoveTokens(1, 0, -1); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("RemoveTokens(seq 1): %v", err)
	}
	if _, err := c.RemoveTokens(0, -2, -1); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("RemoveTokens(p0 -2): %v", err)
	}
	if err := c.CopySequence(0, 3, 0, -1); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("CopySequence(0, 3): %v", err)
	}
	if err := c.DividePositions(0, 0, -1, 0); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("DividePositions(d 0): %v", err)
	}
	if _, _, err := c.PositionRange(-1); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("PositionRange(-1): %v", err)
	}
	if err := c.SetThreads(0, 1); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("SetThreads(0, 1): %v", err)
	}
	// A sampler of another model.
	other := loadModel(t, "llama-2-tiny-random.gguf")
	s, err := other.NewSampler(llama.WithGreedy())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sample(c, -1); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Sample with another model's sampler: %v", err)
	}
}

func TestOptionChecks(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	for i, o := range []llama.ContextOption{
		llama.WithContextSize(-1), llama.WithBatchSize(0), llama.WithUBatchSize(0), llama.WithSequences(0),
		llama.WithSequences(llama.MaxSequences() + 1), llama.WithThreads(0), llama.WithBatchThreads(-1),
		llama.WithFlashAttention(7), llama.WithCacheTypes(llama.CacheType(99), llama.CacheF16),
		llama.WithEmbeddings(llama.Pooling(9)), llama.WithRope(-1, 1), llama.WithRopeScaling(9),
	} {
		if c, err := m.NewContext(o); !errors.Is(err, llama.ErrInvalidArgument) || c != nil {
			t.Errorf("context option %d: %v", i, err)
		}
	}
	for i, o := range []llama.ModelOption{
		llama.WithMainGPU(-1), llama.WithSplitMode(7), llama.WithTensorSplit([]float32{-1}),
		llama.WithMetadataOverride("", 1), llama.WithMetadataOverride("k", []int{1}),
		llama.WithMetadataOverride("k", strings.Repeat("x", 200)),
	} {
		if _, err := llama.Load(context.Background(), modelPath(t, "stories260K.gguf"), o); !errors.Is(err, llama.ErrInvalidArgument) {
			t.Errorf("model option %d: %v", i, err)
		}
	}
	for i, o := range []llama.SamplerOption{
		llama.WithTopP(-1), llama.WithMirostat(3, 5, 0.1), llama.WithPenalties(-2, 1, 0, 0),
		llama.WithSamplerOrder("bogus"), llama.WithTemperature(float32(posInf())),
	} {
		if s, err := m.NewSampler(o); !errors.Is(err, llama.ErrInvalidArgument) || s != nil {
			t.Errorf("sampler option %d: %v", i, err)
		}
	}
	if _, err := m.NewSampler(llama.WithLogitBias(map[llama.TokenID]float32{512: 1})); !errors.Is(err, llama.ErrInvalidToken) {
		t.Errorf("logit bias for token 512: %v", err)
	}
}

func posInf() float64 { v, _ := strconv.ParseFloat("+Inf", 64); return v }

func TestUseAfterClose(t *testing.T) {
	ctx := context.Background()
	m, err := llama.Load(ctx, modelPath(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSampler(llama.WithGreedy())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := llama.NewBatch(4, 1)
	b.Add(1, 0, true)
	if err := c.Decode(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sample(c, -1); err != nil {
		t.Fatal(err)
	}

	// Closing the model closes its contexts and samplers.
	for range 2 {
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	closed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, llama.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", what, err)
		}
	}
	_, err = m.Tokenize("x", 0)
	closed("Tokenize", err)
	_, err = m.TokenToPiece(1, false)
	closed("TokenToPiece", err)
	_, err = m.TokenText(1)
	closed("TokenText", err)
	_, err = m.Detokenize([]llama.TokenID{1}, false, false)
	closed("Detokenize", err)
	_, err = m.NewContext()
	closed("NewContext", err)
	_, err = m.NewSampler()
	closed("NewSampler", err)
	_, err = m.HasEncoder()
	closed("HasEncoder", err)
	if m.IsEOG(2) || m.BOS() != llama.NullToken || m.AddsBOS() {
		t.Error("vocabulary queries answer after Close")
	}
	if _, ok := m.Metadata("general.architecture"); ok {
		t.Error("Metadata answers after Close")
	}
	for range m.AllMetadata() {
		t.Error("AllMetadata yields after Close")
	}

	closed("Decode", c.Decode(ctx, b))
	_, err = c.Logits(-1)
	closed("Logits", err)
	closed("ClearMemory", c.ClearMemory())
	_, err = c.RemoveTokens(0, 0, -1)
	closed("RemoveTokens", err)
	_, _, err = c.PositionRange(0)
	closed("PositionRange", err)
	closed("SetThreads", c.SetThreads(1, 1))
	_, err = c.Complete(ctx, "x", greedy(1)...)
	closed("Complete", err)
	n := 0
	for _, err := range c.Generate(ctx, "Once", greedy(5)...) {
		n++
		closed("Generate", err)
	}
	if n != 1 {
		t.Errorf("Generate after Close yielded %d times", n)
	}
	// As ErrClosed documents: fixed properties as before, zero values
	// from what would ask llama.cpp.
	if c.ContextSize() != 256 || c.SequenceContextSize() != 256 || c.Sequences() != 1 || c.BatchSize() == 0 {
		t.Errorf("context sizes after Close: %d, %d, %d, %d", c.ContextSize(), c.SequenceContextSize(), c.Sequences(), c.BatchSize())
	}
	if n, nb := c.Threads(); n != 0 || nb != 0 || c.Perf() != (llama.Perf{}) {
		t.Error("context queries answer after Close")
	}
	if m.Description() == "" || m.Layers() != 5 || m.VocabSize() != 512 {
		t.Error("model properties lost after Close")
	}

	_, err = s.Sample(c, -1)
	closed("Sample", err)
	closed("Accept", s.Accept(1))
	if s.Seed() != 0 {
		t.Error("Seed after Close")
	}
	s.Reset() // a no-op

	for range 2 {
		if c.Close() != nil || s.Close() != nil || b.Close() != nil {
			t.Error("Close after the model's Close failed")
		}
	}
	closed("Batch.Add", b.Add(1, 0, true))
	closed("Batch.SetLogits", b.SetLogits(0, true))
	b.Clear()

	// A closed batch on a live context; a live sampler on a closed context.
	m2 := loadModel(t, "stories260K.gguf")
	c2 := newContext(t, m2)
	closed("Decode of a closed batch", c2.Decode(ctx, b))
	closed("Encode of a closed batch", c2.Encode(ctx, b))
	s2, _ := m2.NewSampler(llama.WithGreedy())
	c3 := newContext(t, m2)
	c3.Close()
	_, err = s2.Sample(c3, -1)
	closed("Sample on a closed context", err)
	n = 0
	for _, err := range c2.Generate(ctx, "Once", append(greedy(5), llama.WithSampler(s2))...) {
		if err != nil {
			t.Fatalf("Generate with a live sampler: %v", err)
		}
		n++
	}
	s2.Close()
	for _, err := range c2.Generate(ctx, "Once", append(greedy(5), llama.WithSampler(s2))...) {
		closed("Generate with a closed sampler", err)
	}
	// Closing a context does not affect the model or its other contexts.
	if r := mustGenerate(t, c2, storiesPrompt, greedy(10)...); !strings.HasPrefix(storiesPrefix, r.text) {
		t.Errorf("after closing a sibling: %q", r.text)
	}
}

// TestHostileVocab: vocabularies that would make llama.cpp's tokenizers
// abort or never end are refused, at load or when tokenizing.
func TestHostileVocab(t *testing.T) {
	load := func(t *testing.T, name string, mod func(f *gguf.File)) (*llama.Model, error) {
		m, err := llama.Load(context.Background(), rewriteFile(t, name, mod), llama.WithVocabOnly())
		if err == nil {
			t.Cleanup(func() { m.Close() })
		}
		return m, err
	}

	// A Unigram vocabulary told to add a BOS token it does not have:
	// llama.cpp asserts when special tokens are added. Without them it
	// tokenizes.
	m, err := load(t, "vocab/ggml-vocab-llama-spm.gguf", func(f *gguf.File) {
		setKV(f, "tokenizer.ggml.model", gguf.StringValue("t5"))
		setKV(f, "tokenizer.ggml.add_bos_token", gguf.BoolValue(true))
		delKV(f, "tokenizer.ggml.bos_token_id")
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := m.Tokenize("Hello", llama.AddSpecial); !errors.Is(err, llama.ErrInvalidModel) || !strings.Contains(err.Error(), "add_bos_token") {
		t.Errorf("Unigram without BOS, Tokenize with AddSpecial: %v, %v; want ErrInvalidModel naming add_bos_token", ids, err)
	}
	if ids, err := m.Tokenize("Hello", 0); err != nil || len(ids) == 0 {
		t.Errorf("Unigram without BOS, Tokenize without special tokens: %v, %v", ids, err)
	}

	// A byte-level BPE vocabulary read as SentencePiece: no <0xXX> byte
	// tokens to fall back on, and llama.cpp throws looking one up.
	m, err = load(t, "vocab/ggml-vocab-gpt-2.gguf", func(f *gguf.File) {
		setKV(f, "tokenizer.ggml.model", gguf.StringValue("llama"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := m.Tokenize("é中😀", 0); !errors.Is(err, llama.ErrInvalidModel) || !strings.Contains(err.Error(), "could not tokenize") {
		t.Errorf("SPM without byte tokens: %v, %v; want ErrInvalidModel", ids, err)
	}
	if _, err := m.TokenToPiece(0, false); err != nil {
		t.Errorf("after the failed Tokenize: %v", err)
	}

	// An RWKV vocabulary whose first bytes are not tokens: llama.cpp's
	// tokenizer would loop forever.
	if _, err := load(t, "vocab/ggml-vocab-llama-spm.gguf", func(f *gguf.File) {
		setKV(f, "tokenizer.ggml.model", gguf.StringValue("rwkv"))
	}); !errors.Is(err, llama.ErrInvalidModel) || !strings.Contains(err.Error(), "RWKV") {
		t.Errorf("RWKV vocabulary with missing bytes: %v, want ErrInvalidModel", err)
	}
}

func TestVocabOnlyContext(t *testing.T) {
	for _, name := range []string{"stories260K.gguf", "vocab/ggml-vocab-llama-spm.gguf"} {
		m := loadModel(t, name, llama.WithVocabOnly())
		if c, err := m.NewContext(); err == nil || c != nil {
			t.Errorf("%s: NewContext on a vocab-only model: %v", name, err)
		}
		// It still tokenizes and samples nothing.
		if ids, err := m.Tokenize("Once upon a time", llama.AddSpecial); err != nil || len(ids) < 2 || ids[0] != 1 {
			t.Errorf("%s: Tokenize: %v %v", name, ids, err)
		}
		if m.Layers() != 0 {
			t.Errorf("%s: vocab-only Layers() = %d", name, m.Layers())
		}
	}
}

func TestGrammarErrors(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	// The error carries llama.cpp's parse error, on one line; an installed
	// llama.cpp (llama_system) tells only that the grammar was refused.
	system := llama.BuildInfo().System
	for _, tt := range []struct{ grammar, root, want string }{
		{"root ::= [", "", "unexpected end of input"},
		{`root ::= "unterminated`, "", "unexpected end of input"},
		{"root ::= undefined-rule", "", "undefined rule undefined-rule"},
		{"root ::= a\na ::= b", "", "undefined rule b"},
		{`foo ::= "a"`, "", "no rule named root"},
		{`root ::= "a"`, "start", "no rule named start"},
		{"root ::= (((", "", "expecting ')' at the end"},
		{"root ::= \"a\"\x00", "", "NUL byte"},
		{"::=", "", "expecting name at ::="},
		{"root ::= \"a\"\nroot2 = \"b\"", "", "expecting ::= at = \"b\""},
		{"# only a comment\n", "", "no rules"},
		{`root ::= "a"{9999999}`, "", "number of repetitions exceeds"},
		// Parsed, then refused by llama.cpp's grammar set-up.
		{`root ::= root "a"`, "", "left recursion"},
		{"root ::= a\na ::= \"x\"? root", "", "left recursion"},
	} {
		s, err := m.NewSampler(llama.WithGrammar(tt.grammar, tt.root))
		if system && tt.want != "NUL byte" {
			tt.want = ""
		}
		if !errors.Is(err, llama.ErrInvalidGrammar) || s != nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("grammar %q (root %q): %v, want ErrInvalidGrammar saying %q on one line", tt.grammar, tt.root, err, tt.want)
			if s != nil {
				s.Close()
			}
		}
	}
	// Comments and blank lines around rules are fine.
	s, err := m.NewSampler(llama.WithGrammar("# yes or no\n\nroot ::= \"yes\" | \"no\" # either\n\n", ""))
	if err != nil {
		t.Errorf("grammar with comments: %v", err)
	} else {
		s.Close()
	}
	// Lazy grammars: bad trigger regexes are errors, not crashes.
	for _, pat := range []string{"(", "[a-", "a{2,1}", "\x00", "(?<", "*"} {
		s, err := m.NewSampler(llama.WithLazyGrammar(`root ::= "a"`, "", []string{pat}, nil))
		if err == nil {
			s.Close()
			t.Errorf("trigger pattern %q accepted", pat)
		}
	}
	if _, err := m.NewSampler(llama.WithLazyGrammar(`root ::= "a"`, "", nil, []llama.TokenID{512})); !errors.Is(err, llama.ErrInvalidToken) {
		t.Errorf("trigger token 512: %v", err)
	}
	s, err = m.NewSampler(llama.WithLazyGrammar(`root ::= "a"`, "", []string{"Lily"}, []llama.TokenID{2}))
	if err != nil {
		t.Fatalf("valid lazy grammar: %v", err)
	}
	s.Close()

	// Accept refuses what the grammar forbids and takes what it allows.
	s, err = m.NewSampler(llama.WithGrammar(`root ::= " Once upon"`, ""), llama.WithGreedy())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := []llama.TokenID{403, 407}                                  // " Once", " upon"
	if err := s.Accept(378); !errors.Is(err, llama.ErrInvalidToken) { // " time"
		t.Errorf("Accept of a forbidden token: %v", err)
	}
	for _, id := range []llama.TokenID{-1, 512} {
		if err := s.Accept(id); !errors.Is(err, llama.ErrInvalidToken) {
			t.Errorf("Accept(%d): %v", id, err)
		}
	}
	for _, id := range ids {
		if err := s.Accept(id); err != nil {
			t.Errorf("Accept(%d) allowed by the grammar: %v", id, err)
		}
	}
	if err := s.Accept(ids[0]); !errors.Is(err, llama.ErrInvalidToken) {
		t.Errorf("Accept after the grammar is complete: %v", err)
	}
	// Reset starts the grammar again.
	s.Reset()
	if err := s.Accept(ids[0]); err != nil {
		t.Errorf("Accept after Reset: %v", err)
	}
}

// rss is the resident set size of the process in bytes.
func rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}

// TestLoadCloseLeak loads and closes stories260K (with a context, a
// sampler and a decode) 200 times: the process must not grow.
//
// The vendored llama.cpp leaks about 10 KB per load by itself: ollama's
// patch 0001 makes ggml_backend_buffer_free leave the zero-size dummy
// buffers that weight_buft_supported allocates for every weight. With
// glibc's per-thread caches those small leaks pin freed memory, and RSS
// grows by 100-300 KB per load. The test therefore runs in a child process
// with the tcache off, where RSS shows what is really kept: about 2 MB of
// that leak over 200 cycles, plus some 5-15 MB of fragmentation and race
// detector memory. A Model or Context kept per cycle would add well over
// 200 MB (each holds at least 1 MB: the mapped weights, the KV cache and
// compute buffers).
func TestLoadCloseLeak(t *testing.T) {
	if os.Getenv("LLAMAGO_LEAK_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLoadCloseLeak$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "LLAMAGO_LEAK_CHILD=1", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0")
		out, err := cmd.CombinedOutput()
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.Contains(line, "bad_input_test.go") {
				t.Log(strings.TrimSpace(line))
			}
		}
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	path := modelPath(t, "stories260K.gguf")
	cycle := func() {
		m, err := llama.Load(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1), llama.WithBatchThreads(1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.NewSampler(llama.WithGreedy()); err != nil {
			t.Fatal(err)
		}
		b, _ := llama.NewBatch(1, 1)
		b.Add(1, 0, true)
		if err := c.Decode(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		b.Close()
		m.Close() // closes c and the sampler
	}
	for range 10 {
		cycle()
	}
	settle()
	before := rss(t)
	for range 200 {
		cycle()
	}
	settle()
	growth := rss(t) - before
	t.Logf("RSS growth over 200 load/close cycles: %.1f MB", float64(growth)/(1<<20))
	if growth > 40<<20 {
		t.Errorf("RSS grew by %d MB over 200 load/close cycles", growth>>20)
	}
}

// TestFailedGenerateLeak: a Generate that fails after building its sampler
// (here: a prompt longer than the context) frees the sampler. Each sampler
// with a logit bias on every token holds 256 KB of C memory.
func TestFailedGenerateLeak(t *testing.T) {
	m := loadModel(t, "llama-2-tiny-random.gguf")
	c := newContext(t, m)
	bias := make(map[llama.TokenID]float32, m.VocabSize())
	for i := range llama.TokenID(m.VocabSize()) {
		bias[i] = 0.5
	}
	long := strings.Repeat("Hello ", c.SequenceContextSize())
	fail := func() {
		for _, err := range c.Generate(context.Background(), long, llama.WithSampling(llama.WithLogitBias(bias))) {
			if !errors.Is(err, llama.ErrContextFull) {
				t.Fatalf("Generate with a long prompt: %v", err)
			}
		}
	}
	for range 5 {
		fail()
	}
	settle()
	before := rss(t)
	for range 150 {
		fail()
	}
	settle()
	growth := rss(t) - before
	t.Logf("RSS growth over 150 failed Generates: %.1f MB", float64(growth)/(1<<20))
	if growth > 16<<20 {
		t.Errorf("RSS grew by %d MB over 150 failed Generates: samplers leak", growth>>20)
	}
}

// Encoder-only models run a whole batch as one micro-batch; llama.cpp
// asserts on more, so Decode and Encode refuse it, and pooled embeddings
// contexts refuse a micro-batch that does not split across the sequences.
func TestEncoderBatchLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bert.gguf")
	shape, _ := models.LookupShape("tiny-bert")
	if err := models.SynthesizeFile(path, models.SynthOptions{Shape: shape, Vocab: modelPath(t, "vocab/ggml-vocab-bert-bge.gguf"), Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m, err := llama.Load(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.NewContext(llama.WithEmbeddings(llama.PoolingMean), llama.WithSequences(3), llama.WithBatchSize(64), llama.WithUBatchSize(64)); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("ubatch 64 over 3 sequences: %v, want ErrInvalidArgument", err)
	}
	c, err := m.NewContext(llama.WithEmbeddings(llama.PoolingMean), llama.WithBatchSize(64), llama.WithUBatchSize(16), llama.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b, _ := llama.NewBatch(64, 1)
	defer b.Close()
	for i := range 32 {
		b.Add(llama.TokenID(100+i), i, true)
	}
	if err := c.Decode(context.Background(), b); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Decode of 32 tokens with ubatch 16: %v, want ErrInvalidArgument", err)
	}
	if err := c.Encode(context.Background(), b); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Encode of 32 tokens with ubatch 16: %v, want ErrInvalidArgument", err)
	}
	b.Clear()
	for i := range 16 {
		b.Add(llama.TokenID(100+i), i, true)
	}
	if err := c.Decode(context.Background(), b); err != nil {
		t.Errorf("Decode of 16 tokens: %v", err)
	}
}

// A partial copy between the per-sequence KV streams of a split cache is
// refused rather than reaching llama.cpp's assertion.
func TestCopySequenceSplitCache(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	c := newContext(t, m, llama.WithSequences(2))
	b, _ := llama.NewBatch(8, 1)
	defer b.Close()
	for i := range 8 {
		b.Add(llama.TokenID(10+i), i, i == 7, 0)
	}
	if err := c.Decode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := c.CopySequence(0, 1, 2, 6); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("partial copy: %v, want ErrInvalidArgument", err)
	}
	if err := c.CopySequence(0, 1, -1, -1); err != nil {
		t.Errorf("whole copy: %v", err)
	}
	u := newContext(t, m, llama.WithSequences(2), llama.WithUnifiedKV(true))
	if err := u.Decode(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := u.CopySequence(0, 1, 2, 6); err != nil {
		t.Errorf("partial copy in a unified cache: %v", err)
	}
}
