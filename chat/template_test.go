package chat

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the Go engine (review them with testdata/hf_reference.py)")

// goldenCase is one entry of testdata/cases.json, which
// testdata/hf_reference.py also reads.
type goldenCase struct {
	Name                string            `json:"name"`
	Template            string            `json:"template"`
	Messages            []Message         `json:"messages"`
	AddGenerationPrompt bool              `json:"add_generation_prompt"`
	BOS                 string            `json:"bos_token"`
	EOS                 string            `json:"eos_token"`
	Tools               []json.RawMessage `json:"tools"`
	Extra               map[string]any    `json:"extra"`
	Now                 string            `json:"now"`
}

func readTemplate(t testing.TB, name string) *Template {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", name+".jinja"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseTemplate(string(src))
	if err != nil {
		t.Fatalf("ParseTemplate(%s): %v", name, err)
	}
	return tmpl
}

// TestGolden renders real chat templates of many model families and
// compares the output byte for byte with testdata/golden, which
// testdata/hf_reference.py checks against Jinja2 configured as
// transformers does.
func TestGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	families := map[string]bool{}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			families[c.Template] = true
			tmpl := readTemplate(t, c.Template)
			opts := RenderOptions{AddGenerationPrompt: c.AddGenerationPrompt, BOS: c.BOS, EOS: c.EOS, Extra: c.Extra}
			for _, tool := range c.Tools {
				opts.Tools = append(opts.Tools, tool)
			}
			if c.Now != "" {
				opts.Now, err = time.Parse(time.RFC3339, c.Now)
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := tmpl.Render(c.Messages, opts)
			if err != nil {
				var re *RaiseError
				if !errors.As(err, &re) {
					t.Fatalf("Render: %v", err)
				}
				got = "ERROR: " + re.Message
			}
			path := filepath.Join("testdata", "golden", c.Name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update, then review with testdata/hf_reference.py)", err)
			}
			if got != string(want) {
				t.Errorf("render differs from %s\n got: %q\nwant: %q", path, got, want)
			}
		})
	}
	if len(families) < 10 {
		t.Errorf("golden cases cover %d template families, want at least 10", len(families))
	}
}

func TestGoldenFilesUsed(t *testing.T) {
	data, _ := os.ReadFile("testdata/cases.json")
	files, _ := filepath.Glob("testdata/golden/*.txt")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".txt")
		if !strings.Contains(string(data), `"name": "`+name+`"`) {
			t.Errorf("%s belongs to no case of testdata/cases.json", f)
		}
	}
}
