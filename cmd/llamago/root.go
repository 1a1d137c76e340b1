package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/llamago/llamago/llama"
)

// iostreams are the standard streams a command reads and writes; tests
// pass buffers.
type iostreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Exit codes of the program.
const (
	exitOK        = 0
	exitError     = 1   // the command failed
	exitUsage     = 2   // bad flags or arguments
	exitInterrupt = 130 // stopped by Ctrl-C (128 + SIGINT, as shells report it)
)

// usageError is an error in the command line: a flag that does not parse,
// a value out of range, conflicting options. It exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// mainRun runs the program with the arguments after the program name and
// returns its exit code. Ctrl-C (SIGINT) cancels the command's context, so
// a load or a generation stops cleanly; a second Ctrl-C kills the process.
// A command may take Ctrl-C over (see catchInterrupt).
func mainRun(args []string, streams *iostreams) int {
	ctx, stop := notifyInterrupt(context.Background())
	defer stop()
	return execute(ctx, args, streams)
}

// execute runs the command line under ctx and maps its outcome to an exit
// code. It is the one place errors are printed: exactly one line,
// "llamago: <message>", on stderr.
func execute(ctx context.Context, args []string, streams *iostreams) int {
	root := newRootCmd(streams)
	root.SetArgs(normalizeArgs(root, args))
	defer llama.SetLogger(nil)
	cmd, err := root.ExecuteContextC(ctx)
	if cmd == nil {
		cmd = root
	}
	code := exitCode(err)
	switch code {
	case exitOK, exitInterrupt:
	case exitUsage:
		fmt.Fprintf(streams.ErrOut, "llamago: %s (see '%s --help')\n", errorLine(err), cmd.CommandPath())
	default:
		fmt.Fprintf(streams.ErrOut, "llamago: %s\n", errorLine(err))
	}
	return code
}

func exitCode(err error) int {
	var u *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitInterrupt
	case errors.As(err, &u):
		return exitUsage
	}
	return exitError
}

// errorLine renders err as one line, without the llama package's "llama: "
// prefix (the line already starts with "llamago: ").
func errorLine(err error) string {
	s := strings.TrimSpace(err.Error())
	s = strings.TrimPrefix(s, "llama: ")
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	return s
}

func newRootCmd(streams *iostreams) *cobra.Command {
	var verbose, offline bool
	cmd := &cobra.Command{
		Use:   "llamago",
		Short: "Run GGUF language models with llama.cpp",
		Long: "Run GGUF language models with llama.cpp.\n\n" +
			"Flags follow llama.cpp's tools, including the multi-letter short forms\n" +
			"-ngl, -ub, -tb, -fa, -ctk, -ctv and -md.",
		SilenceErrors: true,
		SilenceUsage:  true,
		// Any arguments reach RunE, so an unknown command is a usage error
		// rather than cobra's help.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return usageErrorf("unknown command %q", args[0])
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if verbose {
				h := slog.NewTextHandler(streams.ErrOut, &slog.HandlerOptions{Level: slog.LevelDebug})
				llama.SetLogger(slog.New(h))
			} else {
				llama.SetLogger(nil)
			}
			cmd.SetContext(withModelEnv(cmd.Context(), newModelEnv(streams.ErrOut, offline)))
			return nil
		},
	}
	cmd.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "print llama.cpp's log on stderr")
	cmd.PersistentFlags().BoolVar(&offline, "offline", false, "never download: use only models already present")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)

	cmd.AddCommand(
		newRunCmd(streams, nil),
		newChatCmd(streams, nil),
		newTokenizeCmd(streams, nil),
		newVersionCmd(streams, nil),
		newBenchCmd(streams, nil),
		newInfoCmd(streams, nil),
		newSynthCmd(streams, nil),
		newQuantizeCmd(streams, nil),
		newPullCmd(streams, nil),
		newListCmd(streams, nil),
		newRemoveCmd(streams, nil),
		newServeCmd(streams, nil),
		newEmbedCmd(streams, nil),
		newPerplexityCmd(streams, nil),
		newQuantsCmd(streams, nil),
		newDevicesCmd(streams, nil),
	)
	return cmd
}

// noArgs is cobra.NoArgs as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected argument %q", args[0])
	}
	return nil
}

// multiLetterShort maps llama.cpp's multi-letter short options to their
// long names. pflag knows only one-letter shorthands: it would read "-ngl 5"
// as "-n gl" followed by the argument "5". normalizeArgs rewrites these
// tokens before cobra parses the command line.
var multiLetterShort = map[string]string{
	"-ngl": "--n-gpu-layers",
	"-ub":  "--ubatch-size",
	"-tb":  "--threads-batch",
	"-fa":  "--flash-attn",
	"-ctk": "--cache-type-k",
	"-ctv": "--cache-type-v",
	"-pg":  "--prompt-gen", // bench
	"-mmp": "--mmap",       // bench
	"-sm":  "--split-mode",
	"-mg":  "--main-gpu",
	"-ts":  "--tensor-split",
	"-md":  "--model-draft",
}

// normalizeArgs rewrites each argument that is exactly one of llama.cpp's
// multi-letter short options ("-ngl"), or one with an attached value
// ("-ngl=5"), to its long form ("--n-gpu-layers", "--n-gpu-layers=5").
//
// Only option positions are rewritten: the value of an option that takes
// one is copied as is, so "-p -fa" keeps the prompt "-fa", and so is
// everything after "--". Which options take a value is read from the
// flags of root and its subcommands.
func normalizeArgs(root *cobra.Command, args []string) []string {
	takesValue := valueFlags(root)
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, value, attached := strings.Cut(a, "=")
		if long, ok := multiLetterShort[name]; ok {
			name, a = long, long
			if attached {
				a += "=" + value
			}
		}
		out = append(out, a)
		if !attached && takesValue[name] && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// valueFlags returns the spellings ("--model", "-m") of the options of cmd
// and its subcommands that take a value.
func valueFlags(cmd *cobra.Command) map[string]bool {
	m := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, set := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			set.VisitAll(func(f *pflag.Flag) {
				if f.NoOptDefVal == "" {
					m["--"+f.Name] = true
					if f.Shorthand != "" {
						m["-"+f.Shorthand] = true
					}
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd)
	return m
}

// loadModel loads the model that ref names: a path, or any reference of
// the model store (see resolveModel), pulled first if it can be and
// --offline is not set. A missing model gives a one-line message.
func loadModel(ctx context.Context, ref string, opts ...llama.ModelOption) (*llama.Model, error) {
	path, err := resolveModel(ctx, ref)
	if err != nil {
		return nil, err
	}
	m, err := llama.Load(ctx, path, opts...)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("model file %s does not exist", path)
		}
		return nil, err
	}
	return m, nil
}
