package chat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHostileTemplates(t *testing.T) {
	msgs := []Message{{Role: "user", Content: "hi"}}
	cases := []struct {
		name, src string
		want      error
	}{
		{"recursion", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", ErrTemplateLimit},
		{"mutual recursion", "{% macro f() %}{{ g() }}{% endmacro %}{% macro g() %}{{ f() }}{% endmacro %}{{ f() }}", ErrTemplateLimit},
		{"recursion through caller", "{% macro f() %}{% call f() %}x{% endcall %}{% endmacro %}{{ f() }}", ErrTemplateLimit},
		{"huge range", "{% for i in range(100000000000) %}x{% endfor %}", ErrTemplateLimit},
		{"nested ranges", "{% for i in range(2000) %}{% for j in range(2000) %}{% endfor %}{% endfor %}", ErrTemplateLimit},
		{"engine panic", `{{ messages | selectattr("role") | first | int }}`, ErrRender},
		{"negative repeat", `{{ 'a' * -5 }}`, ErrRender},
		{"unknown filter", `{{ messages | nosuchfilter }}`, ErrRender},
		{"unclosed block", "{% if true %}x", ErrTemplateSyntax},
		{"unclosed tag", "{{ x", ErrTemplateSyntax},
		{"unclosed comment", "{# x", ErrTemplateSyntax},
		{"unclosed raw", "{% raw %}x", ErrTemplateSyntax},
		{"unbalanced", "{{ (x ]}}", ErrTemplateSyntax},
		{"unterminated string", "{{ 'x }}", ErrTemplateSyntax},
		{"deep blocks", strings.Repeat("{% if true %}", 300) + strings.Repeat("{% endif %}", 300), ErrTemplateLimit},
		{"deep brackets", "{{ " + strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300) + " }}", ErrTemplateLimit},
		{"too large", strings.Repeat("x", maxTemplateSize+1), ErrTemplateLimit},
		{"invalid UTF-8", "\xff", ErrTemplateSyntax},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tmpl, err := ParseTemplate(c.src)
			if err == nil {
				_, err = tmpl.Render(msgs, RenderOptions{})
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
}

func TestRenderTimeout(t *testing.T) {
	// Three nested loops over 200 messages: 8 million iterations, which
	// take longer than the timeout (and end in the background soon after).
	tmpl, err := ParseTemplate("{% for a in messages %}{% for b in messages %}{% for c in messages %}{% endfor %}{% endfor %}{% endfor %}")
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]Message, 200)
	for i := range msgs {
		msgs[i] = Message{Role: "user", Content: "x"}
	}
	start := time.Now()
	_, err = tmpl.Render(msgs, RenderOptions{Timeout: 5 * time.Millisecond})
	if !errors.Is(err, ErrTemplateLimit) {
		t.Fatalf("Render = %v, want ErrTemplateLimit", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Render returned after %v", d)
	}
}

// FuzzTemplate checks that no template source makes ParseTemplate or
// Render panic or hang. Sources with '*' are skipped: string repetition
// can allocate without bound (see Render).
func FuzzTemplate(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.jinja")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err == nil {
			f.Add(string(src))
		}
	}
	for _, c := range jinjaCases {
		f.Add(c.src)
	}
	f.Add("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
	f.Add("{%- raw -%}{{ x }}{% endraw %}")
	f.Fuzz(func(t *testing.T, src string) {
		if strings.Contains(src, "*") {
			return
		}
		tmpl, err := ParseTemplate(src)
		if err != nil {
			return
		}
		msgs := []Message{
			{Role: "system", Content: "s"},
			{Role: "user", Content: "u"},
			{Role: "assistant", Content: "a", ToolCalls: []ToolCall{{ID: "1", Function: FunctionCall{Name: "f", Arguments: map[string]any{"x": 1}}}}},
		}
		tmpl.Render(msgs, RenderOptions{AddGenerationPrompt: true, Timeout: time.Second, Tools: []any{Tool{Type: "function", Function: ToolFunction{Name: "f"}}}})
	})
}
