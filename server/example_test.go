package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/server"
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

func Example() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	s, err := server.New(m, server.Config{Parallel: 2, SlotContext: 256, Threads: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	// s.ListenAndServe("127.0.0.1:8080") serves it with timeouts set;
	// here a test server on loopback does.
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	// Any OpenAI client works against ts.URL + "/v1".
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json",
		strings.NewReader(`{"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Choices []struct {
			Text         string `json:"text"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status)
	fmt.Printf("%q %s\n", out.Choices[0].Text, out.Choices[0].FinishReason)
	fmt.Println(out.Usage.PromptTokens, "prompt tokens,", out.Usage.CompletionTokens, "completion tokens")
	// Output:
	// 200 OK
	// ", there was a little girl named Lily. She" length
	// 5 prompt tokens, 12 completion tokens
}
