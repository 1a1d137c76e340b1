package llama_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// tinyBert synthesizes the tiny-bert shape (random weights, mean pooling,
// the bge tokenizer) into a temporary directory and loads it.
func tinyBert(t *testing.T, opts ...llama.ModelOption) *llama.Model {
	t.Helper()
	shape, ok := models.LookupShape("tiny-bert")
	if !ok {
		t.Fatal("no tiny-bert shape")
	}
	path := filepath.Join(t.TempDir(), "tiny-bert.gguf")
	err := models.SynthesizeFile(path, models.SynthOptions{Shape: shape, Vocab: modelPath(t, "vocab/ggml-vocab-bert-bge.gguf"), Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	m, err := llama.Load(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Load(tiny-bert): %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

var embedTexts = []string{
	"hello world",
	"The quick brown fox jumps over the lazy dog.",
	"a",
	"Embeddings map texts to vectors; similar texts get similar vectors.",
	"hello world",
}

// oneThread keeps the tests to one thread each.
var oneThread = llama.WithEmbedContext(llama.WithThreads(1), llama.WithBatchThreads(1))

func mustEmbed(t *testing.T, m *llama.Model, texts []string, opts ...llama.EmbedOption) [][]float32 {
	t.Helper()
	e, err := m.Embed(context.Background(), texts, append([]llama.EmbedOption{oneThread}, opts...)...)
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	if len(e) != len(texts) {
		t.Fatalf("Embed: %d embeddings for %d texts", len(e), len(texts))
	}
	return e
}

func norm(v []float32, p float64) float64 {
	var s float64
	for _, x := range v {
		s += math.Pow(math.Abs(float64(x)), p)
	}
	return math.Pow(s, 1/p)
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// checkEmbeddings runs the checks every pooled model passes: unit norms,
// determinism, the same result alone and in any batch, cosine 1 with
// itself.
func checkEmbeddings(t *testing.T, m *llama.Model, dim int, opts ...llama.EmbedOption) {
	all := mustEmbed(t, m, embedTexts, opts...)
	for i, e := range all {
		if len(e) != dim {
			t.Fatalf("embedding %d has %d values, want %d", i, len(e), dim)
		}
		if n := norm(e, 2); math.Abs(n-1) > 1e-5 {
			t.Errorf("embedding %d has norm %v", i, n)
		}
		if c := llama.CosineSimilarity(e, e); math.Abs(float64(c)-1) > 1e-5 {
			t.Errorf("cosine of embedding %d with itself: %v", i, c)
		}
	}
	if d := maxDiff(all[0], all[4]); d > 1e-6 {
		t.Errorf("the same text twice in a batch: embeddings differ by %g", d)
	}
	if c := llama.CosineSimilarity(all[0], all[1]); c > 0.99999 {
		t.Errorf("different texts have cosine %v", c)
	}

	again := mustEmbed(t, m, embedTexts, opts...)
	for i := range all {
		if d := maxDiff(all[i], again[i]); d != 0 {
			t.Errorf("embedding %d not deterministic: differs by %g", i, d)
		}
	}
	for i, text := range embedTexts {
		one := mustEmbed(t, m, []string{text}, opts...)
		if d := maxDiff(all[i], one[0]); d > 1e-5 {
			t.Errorf("text %d alone and in a batch: differ by %g", i, d)
		}
	}
	// Small batches: several decodes, with different partners.
	small := mustEmbed(t, m, embedTexts, append(opts, llama.WithEmbedBatchSize(16))...)
	for i := range all {
		if d := maxDiff(all[i], small[i]); d > 1e-5 {
			t.Errorf("text %d with batch size 16: differs by %g", i, d)
		}
	}
}

func TestEmbedBert(t *testing.T) {
	m := tinyBert(t)
	dim := m.EmbeddingSize()
	t.Run("mean", func(t *testing.T) {
		checkEmbeddings(t, m, dim)
		// The model's own pooling is mean.
		own, mean := mustEmbed(t, m, embedTexts), mustEmbed(t, m, embedTexts, llama.WithPooling(llama.PoolingMean))
		for i := range own {
			if d := maxDiff(own[i], mean[i]); d != 0 {
				t.Errorf("text %d: the model's pooling and mean differ by %g", i, d)
			}
		}
	})
	t.Run("cls", func(t *testing.T) { checkEmbeddings(t, m, dim, llama.WithPooling(llama.PoolingCLS)) })
	t.Run("last", func(t *testing.T) { checkEmbeddings(t, m, dim, llama.WithPooling(llama.PoolingLast)) })
	t.Run("matryoshka", func(t *testing.T) { checkEmbeddings(t, m, 16, llama.WithDimensions(16)) })

	t.Run("concurrent", func(t *testing.T) {
		want := mustEmbed(t, m, embedTexts)
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				got, err := m.Embed(context.Background(), embedTexts, oneThread)
				for i := range got {
					if err == nil && maxDiff(got[i], want[i]) > 1e-6 {
						err = errors.New("concurrent Embed differs")
					}
				}
				errs <- err
			}()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("poolings differ", func(t *testing.T) {
		mean := mustEmbed(t, m, embedTexts[1:2])[0]
		cls := mustEmbed(t, m, embedTexts[1:2], llama.WithPooling(llama.PoolingCLS))[0]
		if maxDiff(mean, cls) < 1e-3 {
			t.Error("mean and CLS pooling give the same embedding")
		}
	})

	t.Run("normalization", func(t *testing.T) {
		raw := mustEmbed(t, m, embedTexts[:2], llama.WithNormalization(llama.NormalizeNone))
		if n := norm(raw[1], 2); math.Abs(n-1) < 1e-3 {
			t.Errorf("unnormalized embedding has norm %v", n)
		}
		l2 := mustEmbed(t, m, embedTexts[:2])
		for i := range raw {
			want := make([]float32, len(raw[i]))
			llama.Normalize(want, raw[i], llama.NormalizeL2)
			if d := maxDiff(want, l2[i]); d > 1e-6 {
				t.Errorf("L2 of the raw embedding differs by %g", d)
			}
		}
		maxAbs := mustEmbed(t, m, embedTexts[:1], llama.WithNormalization(llama.NormalizeMaxAbs))[0]
		if got := slices.Max(absAll(maxAbs)); math.Abs(got-32760) > 1e-2 {
			t.Errorf("max-abs: largest value %v, want 32760", got)
		}
		l1 := mustEmbed(t, m, embedTexts[:1], llama.WithNormalization(llama.NormalizeL1))[0]
		if n := norm(l1, 1); math.Abs(n-1) > 1e-5 {
			t.Errorf("L1 norm %v", n)
		}
		p3 := mustEmbed(t, m, embedTexts[:1], llama.WithNormalization(3))[0]
		if n := norm(p3, 3); math.Abs(n-1) > 1e-5 {
			t.Errorf("3-norm %v", n)
		}
		// Matryoshka: truncate, then normalize.
		cut := mustEmbed(t, m, embedTexts[1:2], llama.WithDimensions(8))[0]
		want := make([]float32, 8)
		llama.Normalize(want, raw[1][:8], llama.NormalizeL2)
		if d := maxDiff(cut, want); d > 1e-6 {
			t.Errorf("8 dimensions: %v, want %v", cut, want)
		}
	})

	t.Run("tokens", func(t *testing.T) {
		toks, err := m.EmbedTokens(context.Background(), embedTexts, oneThread)
		if err != nil {
			t.Fatal(err)
		}
		for i, text := range embedTexts {
			ids, _ := m.Tokenize(text, llama.AddSpecial|llama.ParseSpecial)
			if len(toks[i]) != len(ids) {
				t.Fatalf("text %d: %d token embeddings for %d tokens", i, len(toks[i]), len(ids))
			}
			for j, e := range toks[i] {
				if n := norm(e, 2); len(e) != dim || math.Abs(n-1) > 1e-5 {
					t.Errorf("text %d token %d: %d values, norm %v", i, j, len(e), n)
				}
			}
			one, err := m.EmbedTokens(context.Background(), []string{text}, oneThread)
			if err != nil {
				t.Fatal(err)
			}
			for j := range one[0] {
				if d := maxDiff(one[0][j], toks[i][j]); d > 1e-5 {
					t.Errorf("text %d token %d alone and in a batch: differ by %g", i, j, d)
				}
			}
		}
		if _, err := m.Embed(context.Background(), embedTexts, llama.WithPooling(llama.PoolingNone)); !errors.Is(err, llama.ErrInvalidArgument) {
			t.Errorf("Embed with pooling none: %v", err)
		}
	})

	t.Run("truncation", func(t *testing.T) {
		long := strings.Repeat("word ", 40)
		_, err := m.Embed(context.Background(), []string{"short", long}, oneThread, llama.WithMaxTokensPerText(16))
		if !errors.Is(err, llama.ErrContextFull) || !strings.Contains(err.Error(), "text 1") {
			t.Fatalf("a text over the limit: %v, want ErrContextFull naming text 1", err)
		}
		e := mustEmbed(t, m, []string{long, strings.Repeat("word ", 14)}, llama.WithMaxTokensPerText(16), llama.WithTruncation(true))
		// [CLS] + 14 words + [SEP] is what the long text is cut to.
		if d := maxDiff(e[0], e[1]); d > 1e-5 {
			t.Errorf("truncated text differs from its first 14 words by %g", d)
		}
		// Over the trained context of 512 tokens.
		if _, err := m.Embed(context.Background(), []string{strings.Repeat("word ", 600)}, oneThread); !errors.Is(err, llama.ErrContextFull) {
			t.Errorf("600 words: %v, want ErrContextFull", err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		ctx := context.Background()
		if e, err := m.Embed(ctx, nil); err != nil || len(e) != 0 {
			t.Errorf("no texts: %v %v", e, err)
		}
		for _, o := range []llama.EmbedOption{
			llama.WithDimensions(-1), llama.WithPooling(9), llama.WithNormalization(-2),
			llama.WithMaxTokensPerText(0), llama.WithEmbedBatchSize(0),
		} {
			if _, err := m.Embed(ctx, embedTexts, o); !errors.Is(err, llama.ErrInvalidArgument) {
				t.Errorf("bad option: %v", err)
			}
		}
		if _, err := m.Embed(ctx, embedTexts, oneThread, llama.WithDimensions(dim+1)); !errors.Is(err, llama.ErrInvalidArgument) {
			t.Errorf("too many dimensions: %v", err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := m.Embed(cancelled, embedTexts, oneThread); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v", err)
		}
	})
}

func absAll(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Abs(float64(x))
	}
	return out
}

// TestEmbedStoriesMean embeds with a causal language model, mean pooled.
func TestEmbedStoriesMean(t *testing.T) {
	m := loadModel(t, "stories260K.gguf")
	checkEmbeddings(t, m, m.EmbeddingSize(), llama.WithPooling(llama.PoolingMean))

	_, err := m.Embed(context.Background(), embedTexts, oneThread)
	if !errors.Is(err, llama.ErrNoPooling) || !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Embed without a pooling on a model without one: %v", err)
	}
	// The context a generation uses is not disturbed.
	c := newContext(t, m)
	r := mustGenerate(t, c, storiesPrompt, greedy(20)...)
	if !strings.HasPrefix(storiesPrefix, r.text) {
		t.Errorf("generation after Embed: %q", r.text)
	}
}

func TestRerank(t *testing.T) {
	ctx := context.Background()
	m := tinyReranker(t)
	query := "what do foxes eat"
	docs := []string{
		"Foxes eat small animals, fruit and insects.",
		"The stock market closed higher today.",
		"a",
		"Foxes are omnivores.",
		"Paris is the capital of France.",
		"Foxes eat small animals, fruit and insects.",
	}
	r, err := m.Rerank(ctx, query, docs, oneThread)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Scores) != len(docs) || len(r.Order) != len(docs) {
		t.Fatalf("%d scores, %d indices for %d documents", len(r.Scores), len(r.Order), len(docs))
	}
	sorted := slices.Clone(r.Order)
	slices.Sort(sorted)
	for i, j := range sorted {
		if i != j {
			t.Fatalf("order %v is not a permutation", r.Order)
		}
	}
	for k := 1; k < len(r.Order); k++ {
		if r.Scores[r.Order[k-1]] < r.Scores[r.Order[k]] {
			t.Errorf("order %v does not follow scores %v", r.Order, r.Scores)
		}
	}
	if r.Scores[0] != r.Scores[5] {
		t.Errorf("the same document scored %v and %v", r.Scores[0], r.Scores[5])
	}
	if slices.Min(r.Scores) == slices.Max(r.Scores) {
		t.Errorf("all scores equal: %v", r.Scores)
	}
	// One document at a time scores the same.
	for i, d := range docs {
		one, err := m.Rerank(ctx, query, []string{d}, oneThread)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(one.Scores[0]-r.Scores[i])) > 1e-5 {
			t.Errorf("document %d alone scores %v, in a batch %v", i, one.Scores[0], r.Scores[i])
		}
	}
	again, err := m.Rerank(ctx, query, docs, oneThread, llama.WithEmbedBatchSize(8))
	if err != nil {
		t.Fatal(err)
	}
	for i := range docs {
		if math.Abs(float64(again.Scores[i]-r.Scores[i])) > 1e-5 {
			t.Errorf("document %d: %v with small batches, %v", i, again.Scores[i], r.Scores[i])
		}
	}
	// Embed on a reranker gives the raw scores, one per text.
	e := mustEmbed(t, m, docs[:2])
	if len(e[0]) != 1 {
		t.Errorf("Embed on a reranker: %d values", len(e[0]))
	}

	// A model that is not a reranker is refused, unless rank pooling is
	// asked for.
	plain := tinyBert(t)
	if _, err := plain.Rerank(ctx, query, docs, oneThread); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Rerank on an embedding model: %v", err)
	}
	if _, err := plain.Rerank(ctx, query, docs, oneThread, llama.WithPooling(llama.PoolingMean)); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("Rerank with mean pooling: %v", err)
	}
	// Forced, on a model without a classifier head: its score is the
	// first value of the CLS embedding, and one document per decode keeps
	// llama.cpp from reading the wrong values for the others.
	forced, err := plain.Rerank(ctx, query, docs, oneThread, llama.WithPooling(llama.PoolingRank))
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range docs {
		one, err := plain.Rerank(ctx, query, []string{d}, oneThread, llama.WithPooling(llama.PoolingRank))
		if err != nil {
			t.Fatal(err)
		}
		if one.Scores[0] != forced.Scores[i] {
			t.Errorf("forced rank pooling, document %d: %v alone, %v in a batch", i, one.Scores[0], forced.Scores[i])
		}
	}
}

func TestParsePooling(t *testing.T) {
	for _, p := range []llama.Pooling{llama.PoolingNone, llama.PoolingMean, llama.PoolingCLS, llama.PoolingLast, llama.PoolingRank} {
		got, err := llama.ParsePooling(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePooling(%q) = %v, %v", p.String(), got, err)
		}
	}
	if _, err := llama.ParsePooling("max"); !errors.Is(err, llama.ErrInvalidArgument) {
		t.Errorf("ParsePooling(max): %v", err)
	}
}

func TestNormalizeZero(t *testing.T) {
	z := make([]float32, 4)
	for _, n := range []llama.Normalization{llama.NormalizeNone, llama.NormalizeMaxAbs, llama.NormalizeL1, llama.NormalizeL2, 5} {
		out := make([]float32, 4)
		llama.Normalize(out, z, n)
		if slices.ContainsFunc(out, func(f float32) bool { return f != 0 }) {
			t.Errorf("%v of a zero vector: %v", n, out)
		}
	}
	if c := llama.CosineSimilarity(z, []float32{1, 0, 0, 0}); c != 0 {
		t.Errorf("cosine with a zero vector: %v", c)
	}
}

// tinyReranker is tiny-bert with a classifier head (cls and cls.output,
// as BERT rerankers have) and rank pooling.
func tinyReranker(t *testing.T) *llama.Model {
	t.Helper()
	shape, _ := models.LookupShape("tiny-bert")
	dir := t.TempDir()
	base := filepath.Join(dir, "base.gguf")
	if err := models.SynthesizeFile(base, models.SynthOptions{Shape: shape, Vocab: modelPath(t, "vocab/ggml-vocab-bert-bge.gguf"), Seed: 7}); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	f, err := gguf.Open(base)
	if err != nil {
		t.Fatal(err)
	}
	for i, kv := range f.KV {
		if kv.Key == "bert.pooling_type" {
			f.KV[i].Value = gguf.Uint32Value(uint32(llama.PoolingRank))
		}
	}
	n := uint64(shape.Embd)
	orig := len(f.Tensors)
	f.Tensors = append(f.Tensors,
		gguf.TensorInfo{Name: "cls.weight", Type: gguf.TensorF32, Dims: []uint64{n, n}},
		gguf.TensorInfo{Name: "cls.bias", Type: gguf.TensorF32, Dims: []uint64{n}},
		gguf.TensorInfo{Name: "cls.output.weight", Type: gguf.TensorF32, Dims: []uint64{n, 1}},
		gguf.TensorInfo{Name: "cls.output.bias", Type: gguf.TensorF32, Dims: []uint64{1}})
	rng := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(dir, "reranker.gguf")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = gguf.Write(out, f, func(i int, w io.Writer) error {
		if i < orig {
			_, err := io.Copy(w, f.TensorReader(in, i))
			return err
		}
		buf := make([]byte, 4*f.Tensors[i].Elements())
		for j := 0; j < len(buf); j += 4 {
			binary.LittleEndian.PutUint32(buf[j:], math.Float32bits(float32(rng.NormFloat64()*0.3)))
		}
		_, err := w.Write(buf)
		return err
	})
	if err2 := out.Close(); err == nil {
		err = err2
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := llama.Load(context.Background(), path)
	if err != nil {
		t.Fatalf("Load(reranker): %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
