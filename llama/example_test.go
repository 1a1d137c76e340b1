package llama_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/llamago/llamago/llama"
)

// exampleModel returns the path of a test model: in $LLAMAGO_TEST_MODELS,
// or ../../shared/models.
func exampleModel(name string) string {
	dir := os.Getenv("LLAMAGO_TEST_MODELS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "models")
	}
	return filepath.Join(dir, name)
}

func ExampleLoad() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	fmt.Println(m.Architecture(), m.Layers(), "layers,", m.VocabSize(), "tokens,", m.VocabType(), "tokenizer")
	// Output: llama 5 layers, 512 tokens, SPM tokenizer
}

func ExampleModel_Tokenize() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"), llama.WithVocabOnly())
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	ids, err := m.Tokenize("Once upon a time", llama.AddSpecial)
	if err != nil {
		log.Fatal(err)
	}
	for _, id := range ids {
		piece, _ := m.TokenToPiece(id, true)
		fmt.Printf("%d %q\n", id, piece)
	}
	text, _ := m.Detokenize(ids, true, false)
	fmt.Printf("%q\n", text)
	// Output:
	// 1 "<s>"
	// 403 " Once"
	// 407 " upon"
	// 261 " a"
	// 378 " time"
	// " Once upon a time"
}

func ExampleContext_Generate() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// Stream greedy tokens until the end of the first sentence.
	var b strings.Builder
	b.WriteString("Once upon a time")
	for tok, err := range c.Generate(context.Background(), "Once upon a time", llama.WithSampling(llama.WithGreedy())) {
		if err != nil {
			log.Fatal(err)
		}
		b.WriteString(tok.Text)
		if strings.Contains(tok.Text, ".") {
			break
		}
	}
	fmt.Println(b.String())
	// Output: Once upon a time, there was a little girl named Lily.
}

func ExampleContext_Complete() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(llama.WithContextSize(256), llama.WithThreads(1))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Complete(context.Background(), "Once upon a time",
		llama.WithSampling(llama.WithGreedy()), llama.WithMaxTokens(100), llama.WithStop(" in the park"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", res.Text)
	fmt.Println(res.StopReason, res.StopString, res.PromptTokens, "prompt tokens")
	// Output:
	// ", there was a little girl named Lily. She loved to play outside"
	// stop_string  in the park 5 prompt tokens
}

func ExampleGenerateJSON() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(llama.WithContextSize(512), llama.WithThreads(1))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// The grammar derived from the type lets the model write nothing else.
	type character struct {
		Name string `json:"name" jsonschema:"maxLength=12"`
		Age  int    `json:"age" jsonschema:"minimum=1,maximum=99"`
	}
	v, err := llama.GenerateJSON[character](context.Background(), c, "Once upon a time, there was a little girl named Lily.",
		llama.WithSampling(llama.WithGreedy()), llama.WithMaxTokens(100))
	if err != nil {
		log.Fatal(err)
	}
	// A 260K-parameter story model fills the fields as best it can.
	fmt.Printf("%+v\n", v)
	// Output: {Name:I can make a Age:30}
}

func ExampleModel_Embed() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// stories260K is no embedding model: pool its hidden states.
	texts := []string{"The cat sat on the mat.", "A cat was sitting on a mat.", "Tom went to the park to play ball."}
	vecs, err := m.Embed(context.Background(), texts, llama.WithPooling(llama.PoolingMean))
	if err != nil {
		log.Fatal(err)
	}
	cos := func(a, b []float32) (s float32) { // the vectors have unit length
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	fmt.Println(len(vecs), "vectors of", len(vecs[0]))
	fmt.Printf("similar %.2f, different %.2f\n", cos(vecs[0], vecs[1]), cos(vecs[0], vecs[2]))
	// Output:
	// 3 vectors of 64
	// similar 0.94, different 0.85
}
