package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProcessEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{`a\nb`, "a\nb"},
		{`\r\t\n`, "\r\t\n"},
		{`\'\"\\`, `'"\`},
		{`\\n`, `\n`},
		{`\x41\x62c`, "Abc"},
		{`\xff\x00`, "\xff\x00"},
		{`\xFf`, "\xff"},
		{`\x4`, `\x4`},           // one digit: kept
		{`\x4g`, `\x4g`},         // not hex: kept
		{`\xg1`, `\xg1`},         // not hex: kept
		{`\x 9`, "\x09"},         // strtol skips a space
		{`\x+9`, "\x09"},         // and takes a sign
		{`\x-1`, "\xff"},         // char(-1)
		{`\x0x`, `\x0x`},         // "0x" is not a number on its own
		{`\x`, `\x`},             // nothing after \x
		{`\a\b\f\v`, `\a\b\f\v`}, // llama.cpp knows only n, r, t, ', ", \ and x
		{`\q`, `\q`},
		{`end\`, `end\`},
		{`\u00e9`, `\u00e9`},
		{`ü\n`, "ü\n"},
	}
	for _, tt := range tests {
		if got := processEscapes(tt.in); got != tt.want {
			t.Errorf("processEscapes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPrintablePiece(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{" Hello", " Hello", true},
		{"½", "½", true},
		{"\xf0", "<f0>", false},
		{"\xe6\x97", "<e6 97>", false},
		{"a\x00b", "a", true}, // printed as a C string
	}
	for _, tt := range tests {
		if got, ok := printablePiece(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("printablePiece(%q) = %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTokenizeFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    tokenizeOptions
		wantErr string
	}{
		{name: "prompt", args: []string{"-m", "v.gguf", "-p", "Hello world"}, want: tokenizeOptions{Model: "v.gguf", Prompt: "Hello world"}},
		{name: "all flags", args: []string{"--model", "v.gguf", "--file", "p.txt", "--ids", "--no-bos", "--no-escape", "--no-parse-special", "--show-count", "--log-disable"},
			want: tokenizeOptions{Model: "v.gguf", PromptFile: "p.txt", IDs: true, NoBOS: true, NoEscape: true, NoParseSpecial: true, ShowCount: true, LogDisable: true}},
		{name: "stdin", args: []string{"-m", "v.gguf", "--stdin"}, want: tokenizeOptions{Model: "v.gguf", Stdin: true}},
		{name: "empty prompt", args: []string{"-m", "v.gguf", "-p", ""}, want: tokenizeOptions{Model: "v.gguf"}},

		{name: "no prompt", args: []string{"-m", "v.gguf"}, wantErr: "no prompt"},
		{name: "prompt and stdin", args: []string{"-m", "v.gguf", "-p", "a", "--stdin"}, wantErr: "mutually exclusive"},
		{name: "prompt and file", args: []string{"-m", "v.gguf", "-p", "a", "-f", "b"}, wantErr: "mutually exclusive"},
		{name: "no model", args: []string{"-p", "a"}, wantErr: "--model is required"},
		{name: "positional", args: []string{"-m", "v.gguf", "-p", "a", "b"}, wantErr: `unexpected argument "b"`},
		{name: "unknown flag", args: []string{"-m", "v.gguf", "-p", "a", "--bos"}, wantErr: "unknown flag: --bos"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *tokenizeOptions
			cmd := newTokenizeCmd(&iostreams{}, func(o *tokenizeOptions) error { got = o; return nil })
			code, err := parseFlags(t, cmd, append([]string{"tokenize"}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || code != exitUsage {
					t.Fatalf("error = %v (exit %d), want a usage error containing %q", err, code, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.IO = nil
			if *got != tt.want {
				t.Errorf("options\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestTokenize(t *testing.T) {
	spm := modelPath(t, "vocab/ggml-vocab-llama-spm.gguf")
	file := filepath.Join(t.TempDir(), "prompt.txt")
	if err := os.WriteFile(file, []byte("Hello world"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"ids without BOS", []string{"-p", "Hello world", "--ids", "--no-bos"}, "", "[15043, 3186]\n"},
		{"ids with BOS", []string{"-p", "Hello world", "--ids"}, "", "[1, 15043, 3186]\n"},
		{"pieces", []string{"-p", "Hello world"}, "", "     1 -> '<s>'\n 15043 -> ' Hello'\n  3186 -> ' world'\n"},
		{"show count", []string{"-p", "Hello world", "--show-count"}, "",
			"     1 -> '<s>'\n 15043 -> ' Hello'\n  3186 -> ' world'\nTotal number of tokens: 3\n"},
		{"ids and count", []string{"-p", "Hello world", "--ids", "--show-count"}, "", "[1, 15043, 3186]\nTotal number of tokens: 3\n"},
		{"file", []string{"-f", file, "--ids"}, "", "[1, 15043, 3186]\n"},
		{"stdin", []string{"--stdin", "--ids", "--no-bos"}, "Hello world", "[15043, 3186]\n"},
		{"empty", []string{"-p", "", "--ids", "--no-bos", "--show-count"}, "", "[]\nTotal number of tokens: 0\n"},
		// The .out file's case "\n" is [29871, 13].
		{"escape", []string{"-p", `\n`, "--ids", "--no-bos"}, "", "[29871, 13]\n"},
		{"escape in stdin", []string{"--stdin", "--ids", "--no-bos"}, `\n`, "[29871, 13]\n"},
		{"no escape", []string{"-p", `\n`, "--ids", "--no-bos", "--no-escape"}, "", "[320, 29876]\n"},
		{"parse special", []string{"-p", "<s>Hi", "--ids", "--no-bos"}, "", "[1, 6324]\n"},
		{"no parse special", []string{"-p", "<s>Hi", "--ids", "--no-bos", "--no-parse-special"}, "", "[529, 29879, 29958, 18567]\n"},
		{"invalid UTF-8 pieces", []string{"-p", "🦙", "--no-bos"}, "",
			" 29871 -> ' '\n   243 -> '<f0>' (utf-8 decode failure)\n   162 -> '<9f>' (utf-8 decode failure)\n" +
				"   169 -> '<a6>' (utf-8 decode failure)\n   156 -> '<99>' (utf-8 decode failure)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := cli(t, tt.stdin, append([]string{"tokenize", "-m", spm}, tt.args...)...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if stdout != tt.want {
				t.Errorf("stdout = %q, want %q", stdout, tt.want)
			}
		})
	}
}

func TestTokenizeErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.gguf")
	for _, args := range [][]string{
		{"tokenize", "-m", missing, "-p", "x"},
		{"tokenize", "-m", modelPath(t, "ollama-test-truncated.gguf"), "-p", "x"},
		{"tokenize", "-m", modelPath(t, "stories260K.gguf"), "-f", missing},
	} {
		stdout, stderr, code := cli(t, "", args...)
		if code != exitError || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q", args, code, stdout)
		}
		oneLine(t, stderr)
	}
}

// TestTokenizeConformance checks the command against llama.cpp's tokenizer
// test vectors: each case of the .inp file, tokenized without special
// tokens, must give the ids of its line in the .out file.
func TestTokenizeConformance(t *testing.T) {
	for _, vocab := range []string{"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"} {
		t.Run(vocab, func(t *testing.T) {
			path := modelPath(t, filepath.Join("vocab", vocab))
			inp, err := os.ReadFile(path + ".inp")
			if err != nil {
				t.Fatal(err)
			}
			outb, err := os.ReadFile(path + ".out")
			if err != nil {
				t.Fatal(err)
			}
			cases := strings.Split(string(inp), "\n__ggml_vocab_test__\n")
			if cases[len(cases)-1] == "" {
				cases = cases[:len(cases)-1]
			}
			outs := strings.Split(strings.TrimSuffix(string(outb), "\n"), "\n")
			if len(cases) != len(outs) {
				t.Fatalf("%d cases, %d results", len(cases), len(outs))
			}
			for i, in := range cases {
				ids := strings.Fields(outs[i])
				want := "[" + strings.Join(ids, ", ") + "]\n"
				stdout, stderr, code := cli(t, in, "tokenize", "-m", path, "--stdin", "--ids", "--no-bos", "--no-escape", "--no-parse-special")
				if code != exitOK {
					t.Fatalf("case %d: exit %d, stderr %q", i, code, stderr)
				}
				if stdout != want {
					t.Errorf("case %d %q: got %s want %s", i, in, strings.TrimSpace(stdout), strings.TrimSpace(want))
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	stdout, stderr, code := cli(t, "", "version")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"llamago dev\n", "go: go1.", "llama.cpp: " + llamaCppCommit, "system: ", "CPU"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("version output %q lacks %q", stdout, want)
		}
	}
	if n := strings.Count(stdout, "\n"); n != 4 {
		t.Errorf("version output has %d lines, want 4: %q", n, stdout)
	}

	called := false
	cmd := newVersionCmd(&iostreams{}, func(*versionOptions) error { called = true; return nil })
	if code, err := parseFlags(t, cmd, "version"); err != nil || !called {
		t.Errorf("version: exit %d, %v, called %v", code, err, called)
	}
	cmd = newVersionCmd(&iostreams{}, func(*versionOptions) error { return fmt.Errorf("called") })
	if code, err := parseFlags(t, cmd, "version", "extra"); code != exitUsage {
		t.Errorf("version extra: exit %d, %v, want a usage error", code, err)
	}
}
