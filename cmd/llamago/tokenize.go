package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/llama"
)

// tokenizeOptions are the flags and streams of "llamago tokenize", which
// mirrors llama.cpp's llama-tokenize: same flags, same output.
type tokenizeOptions struct {
	IO *iostreams

	Model          string
	Prompt         string
	PromptFile     string
	Stdin          bool
	IDs            bool
	NoBOS          bool
	NoEscape       bool
	NoParseSpecial bool
	ShowCount      bool
	LogDisable     bool // accepted for llama-tokenize; the log is off without --verbose
}

func newTokenizeCmd(streams *iostreams, runF func(*tokenizeOptions) error) *cobra.Command {
	opts := &tokenizeOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "tokenize -m MODEL (-p PROMPT | -f FILE | --stdin) [flags]",
		Short: "Print the tokens of a prompt, as llama-tokenize",
		Long: "Tokenize a prompt with a model's vocabulary and print the tokens, one\n" +
			"\"id -> 'piece'\" line each, or with --ids as a list [1, 2, 3]. The flags\n" +
			"and output are those of llama.cpp's llama-tokenize, so results compare.\n" +
			"Only the vocabulary is loaded.",
		Example: `  llamago tokenize -m model.gguf -p "Hello world"
  llamago tokenize -m model.gguf -p "Hello world" --ids --no-bos
  echo "Hello" | llamago tokenize -m model.gguf --stdin --show-count`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			sources := 0
			for _, set := range []bool{cmd.Flags().Changed("prompt"), cmd.Flags().Changed("file"), opts.Stdin} {
				if set {
					sources++
				}
			}
			switch {
			case opts.Model == "":
				return usageErrorf("--model is required")
			case sources == 0:
				return usageErrorf("no prompt: give one of --prompt, --file or --stdin")
			case sources > 1:
				return usageErrorf("--prompt, --file and --stdin are mutually exclusive")
			}
			if runF != nil {
				return runF(opts)
			}
			return runTokenize(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&opts.Model, "model", "m", "", "model file (GGUF), required; only its vocabulary is loaded")
	f.StringVarP(&opts.Prompt, "prompt", "p", "", "prompt text")
	f.StringVarP(&opts.PromptFile, "file", "f", "", "read the prompt from a file")
	f.BoolVar(&opts.Stdin, "stdin", false, "read the prompt from standard input")
	f.BoolVar(&opts.IDs, "ids", false, "print only the token ids, as [1, 2, 3]")
	f.BoolVar(&opts.NoBOS, "no-bos", false, "do not add a BOS token, even if the model uses one")
	f.BoolVar(&opts.NoEscape, "no-escape", false, "do not process escape sequences (\\n, \\t, ...) in the prompt")
	f.BoolVar(&opts.NoParseSpecial, "no-parse-special", false, "tokenize the text of control tokens as plain text")
	f.BoolVar(&opts.ShowCount, "show-count", false, "print the total number of tokens")
	f.BoolVar(&opts.LogDisable, "log-disable", false, "accepted for llama-tokenize; the log is off unless --verbose")
	return cmd
}

func runTokenize(ctx context.Context, opts *tokenizeOptions) error {
	prompt := opts.Prompt
	switch {
	case opts.Stdin:
		b, err := readInput(opts.IO.In, "-")
		if err != nil {
			return err
		}
		prompt = string(b)
	case opts.PromptFile != "":
		b, err := readInput(nil, opts.PromptFile)
		if err != nil {
			return err
		}
		prompt = string(b)
	}
	if !opts.NoEscape {
		prompt = processEscapes(prompt)
	}

	model, err := loadModel(ctx, opts.Model, llama.WithVocabOnly())
	if err != nil {
		return err
	}
	defer model.Close()

	// As llama-tokenize: BOS (and the other special tokens the model adds)
	// only where the model asks for BOS.
	var flags llama.SpecialTokens
	if model.AddsBOS() && !opts.NoBOS {
		flags |= llama.AddSpecial
	}
	if !opts.NoParseSpecial {
		flags |= llama.ParseSpecial
	}
	tokens, err := model.Tokenize(prompt, flags)
	if err != nil {
		return err
	}

	w := bufio.NewWriter(opts.IO.Out)
	if opts.IDs {
		w.WriteByte('[')
		for i, t := range tokens {
			if i > 0 {
				w.WriteString(", ")
			}
			fmt.Fprintf(w, "%d", t)
		}
		w.WriteString("]\n")
	} else {
		for _, t := range tokens {
			piece, err := model.TokenToPiece(t, true)
			if err != nil {
				return err
			}
			text, ok := printablePiece(piece)
			if ok {
				fmt.Fprintf(w, "%6d -> '%s'\n", t, text)
			} else {
				fmt.Fprintf(w, "%6d -> '%s' (utf-8 decode failure)\n", t, text)
			}
		}
	}
	if opts.ShowCount {
		fmt.Fprintf(w, "Total number of tokens: %d\n", len(tokens))
	}
	return w.Flush()
}

// printablePiece returns a token's piece as llama-tokenize prints it: up to
// its first NUL byte (it prints a C string), and, if that is not valid
// UTF-8, its bytes in hex as "<e6 97>" with ok false (llama-tokenize does
// this on Windows consoles and prints the raw bytes elsewhere).
func printablePiece(piece string) (text string, ok bool) {
	if i := strings.IndexByte(piece, 0); i >= 0 {
		piece = piece[:i]
	}
	if utf8.ValidString(piece) {
		return piece, true
	}
	var b strings.Builder
	b.WriteByte('<')
	for i := 0; i < len(piece); i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%02x", piece[i])
	}
	b.WriteByte('>')
	return b.String(), false
}

// processEscapes replaces escape sequences in s as llama.cpp's
// string_process_escapes (common/common.cpp) does for prompts: \n, \r, \t,
// \', \", \\ and \xHH. Any other backslash, and one at the end, is kept as
// is. Like llama.cpp it reads the two characters after \x with strtol in
// base 16, so they may also be a sign or a space followed by a hex digit.
func processEscapes(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			out = append(out, c)
			continue
		}
		i++
		switch s[i] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case '\'':
			out = append(out, '\'')
		case '"':
			out = append(out, '"')
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 < len(s) {
				if v, ok := strtol2(s[i+1], s[i+2]); ok {
					out = append(out, byte(v))
					i += 2
					break
				}
			}
			out = append(out, '\\', 'x')
		default:
			out = append(out, '\\', s[i])
		}
	}
	return string(out)
}

// strtol2 is C's strtol(x, &end, 16) on the two-character string x = a b,
// with ok reporting end == x+2: both characters were consumed. strtol skips
// leading white space and takes a sign.
func strtol2(a, b byte) (v int, ok bool) {
	hb, okb := hexDigit(b)
	if !okb {
		return 0, false
	}
	if ha, oka := hexDigit(a); oka {
		return ha<<4 | hb, true
	}
	switch a {
	case ' ', '\t', '\n', '\v', '\f', '\r', '+':
		return hb, true
	case '-':
		return -hb, true
	}
	return 0, false
}

func hexDigit(c byte) (int, bool) {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0'), true
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}
