package chat

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// jinjaCases are snippets with the output of Jinja2 3.1.6 configured as
// transformers does (see testdata/hf_reference.py), for the whitespace
// rules and the filters, tests and methods chat templates use.
var jinjaCases = []struct{ src, want string }{
	{"{% if true %}{{ s }} {{ s }}{% endif %}", "abcdef abcdef"},
	{"  {% if true %}x{% endif %}  y", "x  y"},
	{"a\n  {% if true %}\n    b\n  {% endif %}\nc", "a\n    b\nc"},
	{"{%- if true -%}  x  {%- endif -%}", "x"},
	{"  {%+ if true %}x{% endif %}", "  x"},
	{"{% if true +%}\nx{% endif %}", "\nx"},
	{"a {# comment #} b", "a  b"},
	{"a\n  {# comment #}\nb", "a\nb"},
	{"a\n  {#- comment -#}\n  b", "ab"},
	{"{% raw %}{{ not a tag }}{% endraw %}", "{{ not a tag }}"},
	{"  {%- raw -%}  {{ x }}  {%- endraw -%}  z", "{{ x }}z"},
	{"line1\r\nline2\r\n", "line1\nline2"},
	{"trailing\n\n", "trailing\n"},
	{"x\n    {{ s }}{% if true %}!{% endif %}", "x\n    abcdef!"},
	{"{% if true %}{{ s }}\ny{% endif %}", "abcdef\ny"},
	{"a  {{- s -}}  b", "aabcdefb"},
	{"{{ {'a': {'b': 1}} | tojson }}", "{\"a\": {\"b\": 1}}"},
	{"{{ '%}' }}{{ \"}}\" }}{{ 'it\\'s' }}", "%}}}it's"},
	{"{% set x %}  inner {{ s }}  {% endset %}[{{ x }}]", "[  inner abcdef  ]"},
	{"{% for i in [1, 2, 3] %}\n  - {{ i }}\n{% endfor %}", "  - 1\n  - 2\n  - 3\n"},
	{"{% macro m(a) %}\n  <{{ a }}>\n{% endmacro %}{{ m(1) }}{{ m(2) }}", "  <1>\n  <2>\n"},
	{"{{ d | tojson }}|{{ d | tojson(indent=2) }}", "{\"b\": 1, \"a\": \"x\"}|{\n  \"b\": 1,\n  \"a\": \"x\"\n}"},
	{"{{ u | tojson }}|{{ u | tojson(ensure_ascii=True) }}", "\"héllo ✓ 😀\"|\"h\\u00e9llo \\u2713 \\ud83d\\ude00\""},
	{"{{ d | tojson(separators=(',', ':')) }}|{{ d | tojson(sort_keys=true) }}", "{\"b\":1,\"a\":\"x\"}|{\"a\": \"x\", \"b\": 1}"},
	{"{{ floats | tojson }}", "[1.5, 2.0, 1e+20, 0.0001, 1e-05, -0.5, 1.2345678901234568e+17, null, true]"},
	{"{{ 'a\"b\\\\c\\n\\t<&>' | tojson }}", "\"a\\\"b\\\\c\\n\\t<&>\""},
	{"{{ d | items | list | length }}{% for k, v in d | items %} {{ k }}={{ v }}{% endfor %}", "2 b=1 a=x"},
	{"{% for k, v in d.items() %}{{ k }}:{{ v }},{% endfor %}", "b:1,a:x,"},
	{"{{ s.startswith('ab') }} {{ s.endswith('x') }} {{ s.split('c') | join('|') }} {{ ' pad '.strip() }}|{{ ' pad '.lstrip() }}|{{ ' pad '.rstrip() }}|{{ 'xxaxx'.strip('x') }}", "True False ab|def pad|pad | pad|a"},
	{"{{ s.upper() }} {{ 'hello world'.title() }} {{ 'a-b'.replace('-', '+') }} {{ 'MiXeD'.lower() }} {{ s | upper }} {{ '  t  ' | trim }} {{ 'ab cd' | title }}", "ABCDEF Hello World a+b mixed ABCDEF t Ab Cd"},
	{"{% set ns = namespace(n=0, found=false) %}{% for i in items %}{% set ns.n = ns.n + 1 %}{% if i == 'b' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.n }} {{ ns.found }}", "3 True"},
	{"{% for i in items %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }} {% endfor %}", "10TrueFalse33 21FalseFalse32 32FalseTrue31 "},
	{"{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(', ') }}|{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }}", "hi\nthere, q|1"},
	{"{{ nope | default('dflt') }} {{ nope is defined }} {{ s is defined }} {{ nope is not defined }} {{ s is string }} {{ d is mapping }} {{ items is iterable }}", "dflt False True True True True True"},
	{"{{ items[1:] | join }} {{ items[::-1] | join }} {{ items[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ items[:-1] | join }} {{ msgs[1:] | length }}", "bc cba c bc fedcba ab 2"},
	{"{{ items | length }} {{ s | length }} {{ d | length }} {{ items | first }} {{ items | last }}", "3 6 2 a c"},
	{"{% for i in items %}{% if i == 'b' %}{% continue %}{% endif %}{{ i }}{% if i == 'c' %}{% break %}{% endif %}{% endfor %}", "ac"},
	{"{{ msgs[0].content.split('\\n') | length }} {{ 'x' if msgs | length > 2 else 'y' }} {{ msgs[0]['role'] }} {{ msgs[0].get('nope', 'z') }}", "2 x user z"},
	{"{{ 'c' in s }} {{ 'a' in items }} {{ 'a' in d }} {{ 'z' not in s }}", "True True True True"},
	{"{% for i in range(3) %}{{ i }}{% endfor %}{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}", "012135531"},
	{"{{ strftime_now('%Y-%m-%d %A %B %d %b') }}", "2024-07-26 Friday July 26 Jul"},
	{"{%- set date = strftime_now('%d %b %Y') -%}{{ date }}", "26 Jul 2024"},
}

func jinjaVars() map[string]any {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	return map[string]any{
		"s":     "abcdef",
		"u":     "héllo ✓ 😀",
		"d":     raw(`{"b": 1, "a": "x"}`),
		"items": raw(`["a", "b", "c"]`),
		// The engine does not parse 1e20 literals; JSON numbers work.
		"floats": raw(`[1.5, 2.0, 1e20, 0.0001, 0.00001, -0.5, 123456789012345678.0, null, true]`),
		"msgs":   raw(`[{"role": "user", "content": "hi\nthere"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "q"}]`),
	}
}

func TestJinjaCompat(t *testing.T) {
	opts := RenderOptions{Extra: jinjaVars(), Now: time.Date(2024, 7, 26, 0, 0, 0, 0, time.UTC)}
	for _, c := range jinjaCases {
		tmpl, err := ParseTemplate(c.src)
		if err != nil {
			t.Errorf("ParseTemplate(%q): %v", c.src, err)
			continue
		}
		got, err := tmpl.Render(nil, opts)
		if err != nil {
			t.Errorf("Render(%q): %v", c.src, err)
			continue
		}
		if got != c.want {
			t.Errorf("Render(%q)\n got %q\nwant %q", c.src, got, c.want)
		}
	}
}

func TestRaiseException(t *testing.T) {
	tmpl, err := ParseTemplate("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render([]Message{{Role: "system", Content: "x"}}, RenderOptions{})
	var re *RaiseError
	if !errors.As(err, &re) || re.Message != "System role not supported" {
		t.Fatalf("Render = %v, want RaiseError", err)
	}
	got, err := tmpl.Render([]Message{{Role: "user", Content: "x"}}, RenderOptions{})
	if err != nil || got != "ok" {
		t.Fatalf("Render = %q, %v", got, err)
	}
}
