package chat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/llamago/llamago/chat"
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

func ExampleSession() {
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

	// The model's own template; stories260K has none, so chatml, as in
	// llama.cpp. chat.Builtin and chat.ParseTemplate give others.
	tmpl, err := chat.Resolve(m, "")
	if err != nil {
		log.Fatal(err)
	}
	seq, err := c.NewSequence()
	if err != nil {
		log.Fatal(err)
	}
	defer seq.Close()
	s, err := chat.NewSession(seq, tmpl, chat.WithSystem("You tell stories."),
		chat.WithSampling(llama.WithGreedy()), chat.WithMaxTokens(24))
	if err != nil {
		log.Fatal(err)
	}
	for _, msg := range []string{"Tell me about a cat.", "And a dog?"} {
		var reply strings.Builder
		for chunk, err := range s.Send(context.Background(), msg) {
			if err != nil {
				log.Fatal(err)
			}
			reply.WriteString(chunk.Text) // or print it as it comes
		}
		fmt.Printf("> %s\n%s\n", msg, strings.TrimSpace(reply.String()))
	}
	// The second turn decoded only its new tokens: the rest was cached.
	st := s.Stats()
	fmt.Println(len(s.History()), "messages;", st.PromptTokens, "prompt tokens,", st.CachedTokens, "cached")
	// Output:
	// > Tell me about a cat.
	// "Here!" Asked Jolly.
	// The cat was so e
	// > And a dog?
	// "Here!" said the cat.
	// Timmy was so excited to s
	// 4 messages; 161 prompt tokens, 108 cached
}

func ExampleParseToolCalls() {
	reply := "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
	text, calls := chat.ParseToolCalls(chat.ToolFormatHermes, reply)
	fmt.Printf("%q\n", text)
	for _, c := range calls {
		fmt.Println(c.Function.Name, string(c.Function.Arguments.(json.RawMessage)))
	}
	// Output:
	// "Let me check.\n"
	// get_weather {"city":"Paris"}
}

func ExampleSession_Run() {
	m, err := llama.Load(context.Background(), exampleModel("stories260K.gguf"))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, err := m.NewContext(llama.WithContextSize(1024), llama.WithThreads(1))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	seq, err := c.NewSequence()
	if err != nil {
		log.Fatal(err)
	}
	defer seq.Close()
	tmpl, err := chat.Resolve(m, "")
	if err != nil {
		log.Fatal(err)
	}

	// A Go function as a tool: its parameters schema is the struct's.
	type args struct {
		City string `json:"city" jsonschema:"enum=Paris,enum=Rome"`
	}
	weather, err := chat.NewFunction("get_weather", "The weather in a city", func(_ context.Context, a args) (any, error) {
		fmt.Println("get_weather called for", a.City != "")
		return map[string]any{"temperature": 21}, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// A tiny story model would never call it by itself: required makes it.
	s, err := chat.NewSession(seq, tmpl, chat.WithFunctions(weather),
		chat.WithToolChoice(chat.ToolChoice{Mode: chat.ToolRequired, Single: true}),
		chat.WithSampling(llama.WithSeed(1)), chat.WithMaxTokens(100))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.Run(context.Background(), "What is the weather in Paris?", 3, nil); err != nil {
		log.Fatal(err)
	}
	for _, msg := range s.History() {
		fmt.Println(msg.Role, len(msg.ToolCalls))
	}
	// Output:
	// get_weather called for true
	// user 0
	// assistant 1
	// tool 0
	// assistant 0
}
