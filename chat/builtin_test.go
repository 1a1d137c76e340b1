package chat

import (
	"strings"
	"testing"

	"github.com/llamago/llamago/llama"
)

// TestBuiltinCrossCheck renders real Jinja templates with our engine and
// the same conversations with llama.cpp's C++ built-in templates of the
// same family: the two independent implementations must agree.
func TestBuiltinCrossCheck(t *testing.T) {
	basic := []Message{
		{Role: "system", Content: "You are a helpful assistant"},
		{Role: "user", Content: "Hello"},
		{Role: "assistant", Content: "Hi there"},
		{Role: "user", Content: "Who are you"},
		{Role: "assistant", Content: "   I am an assistant   "},
		{Role: "user", Content: "Another question"},
	}
	nosys := basic[1:]
	both, genOnly := []bool{true, false}, []bool{true}
	cases := []struct {
		jinja, builtin string
		conv           []Message
		gen            []bool
	}{
		{"chatml", "chatml", basic, both},
		{"chatml", "chatml", nosys, both},
		{"qwen2.5", "chatml", basic, both},
		{"llama3", "llama3", basic, both},
		{"llama3", "llama3", nosys, both},
		{"gemma3", "gemma", basic, both},
		{"gemma3", "gemma", nosys, both},
		{"gemma2", "gemma", nosys, both},
		{"mistral-v7", "mistral-v7", basic, both},
		{"mistral-v7", "mistral-v7", nosys, both},
		{"mistral", "llama2", nosys, both},
		{"command-r", "command-r", basic, both},
		{"command-r", "command-r", nosys, both},
		{"phi3", "phi3", nosys, genOnly},
		{"phi4", "phi4", basic, genOnly},
	}
	for _, c := range cases {
		tmpl := readTemplate(t, c.jinja)
		builtin, err := Builtin(c.builtin)
		if err != nil {
			t.Fatal(err)
		}
		for _, gen := range c.gen {
			// llama.cpp's built-ins leave BOS to the tokenizer.
			opts := RenderOptions{AddGenerationPrompt: gen, EOS: "</s>"}
			want, err := builtin.Render(c.conv, opts)
			if err != nil {
				t.Fatalf("%s built-in: %v", c.builtin, err)
			}
			got, err := tmpl.Render(c.conv, opts)
			if err != nil {
				t.Fatalf("%s Jinja: %v", c.jinja, err)
			}
			if got != want {
				t.Errorf("%s (Jinja) and %s (llama.cpp) differ, %d messages, generation prompt %v:\n jinja %q\nllama %q", c.jinja, c.builtin, len(c.conv), gen, got, want)
			}
		}
	}
}

func TestBuiltinErrors(t *testing.T) {
	if _, err := Builtin("no-such-template"); err == nil {
		t.Error("Builtin(no-such-template) succeeded")
	}
	b, err := Builtin("chatml")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Builtin() || b.Name() != "chatml" || b.Source() != "" {
		t.Errorf("Builtin = %v %q %q", b.Builtin(), b.Name(), b.Source())
	}
	// Built-in templates know no tools: they get them in the generic format.
	if text, err := b.Render([]Message{{Role: "user", Content: "x"}}, RenderOptions{Tools: []any{Tool{Type: "function", Function: ToolFunction{Name: "f"}}}}); err != nil ||
		!strings.Contains(text, "<|im_start|>system\nYou can call the following tools") || !strings.Contains(text, `{"name":"f"}`) {
		t.Errorf("a built-in template with tools: %q, %v", text, err)
	}
	if len(BuiltinNames()) < 20 {
		t.Errorf("BuiltinNames = %v", BuiltinNames())
	}
	_ = llama.ErrContextFull
}
