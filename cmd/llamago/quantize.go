package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
)

// quantizeOptions are the flags and streams of "llamago quantize", which
// follows llama.cpp's llama-quantize.
type quantizeOptions struct {
	IO *iostreams

	Input             string
	Output            string // "": ggml-model-TYPE.gguf beside the input, as llama-quantize
	Type              string
	Threads           int
	AllowRequantize   bool
	LeaveOutputTensor bool
	Pure              bool
	KeepSplit         bool

	// Set by validate from the fields above.
	ftype llama.FileType
}

func newQuantizeCmd(streams *iostreams, runF func(*quantizeOptions) error) *cobra.Command {
	opts := &quantizeOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "quantize INPUT [OUTPUT] TYPE [flags]",
		Short: "Quantize a model, as llama-quantize",
		Long: "Write a copy of the model INPUT with its weights quantized to TYPE, as\n" +
			"llama.cpp's llama-quantize does. Without OUTPUT it is ggml-model-TYPE.gguf\n" +
			"beside INPUT. INPUT is a path or any reference that -m accepts.\n\n" +
			wrapList("Types: ", llama.FileTypeNames(), 78) + ".\n" +
			"The k-quant mixes (Q4_K_M, ...) keep some tensors at a higher precision; --pure\n" +
			"makes every tensor TYPE. Types that need an importance matrix (IQ2_XXS,\n" +
			"IQ2_XS, IQ2_S, IQ1_S, IQ1_M, Q2_K_S) are not supported.",
		Example: `  llamago quantize model-f16.gguf model-q4_k_m.gguf Q4_K_M
  llamago quantize model-f16.gguf Q8_0 -t 8
  llamago quantize model-q8_0.gguf model-q4_0.gguf Q4_0 --allow-requantize`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch len(args) {
			case 2:
				opts.Input, opts.Type = args[0], args[1]
			case 3:
				opts.Input, opts.Output, opts.Type = args[0], args[1], args[2]
			default:
				return usageErrorf("want INPUT [OUTPUT] TYPE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runQuantize(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.IntVarP(&opts.Threads, "threads", "t", llama.DefaultThreads(), "threads")
	f.BoolVar(&opts.AllowRequantize, "allow-requantize", false, "allow quantizing tensors that are already quantized (loses quality)")
	f.BoolVar(&opts.LeaveOutputTensor, "leave-output-tensor", false, "leave output.weight unquantized (a larger file, maybe better quality)")
	f.BoolVar(&opts.Pure, "pure", false, "quantize every tensor to TYPE, without the k-quant mixes' per-tensor choices")
	f.BoolVar(&opts.KeepSplit, "keep-split", false, "write as many parts as a split input has")
	return cmd
}

func (o *quantizeOptions) validate() error {
	if o.Threads < 1 {
		return usageErrorf("--threads must be positive, not %d", o.Threads)
	}
	t, err := parseFileType("TYPE", o.Type)
	if err != nil {
		return err
	}
	o.ftype = t
	return nil
}

func runQuantize(ctx context.Context, opts *quantizeOptions) error {
	in, err := resolveModel(ctx, opts.Input)
	if err != nil {
		return err
	}
	out := opts.Output
	if out == "" {
		out = filepath.Join(filepath.Dir(in), "ggml-model-"+opts.ftype.String()+".gguf")
	}
	if sameFile(in, out) {
		return fmt.Errorf("the output %s is the input", out)
	}
	src, err := openGGUF(in)
	if err != nil {
		return err
	}
	qopts := []llama.QuantizeOption{llama.WithQuantizeThreads(opts.Threads), llama.WithQuantizeOutput(!opts.LeaveOutputTensor)}
	if opts.AllowRequantize {
		qopts = append(qopts, llama.WithAllowRequantize())
	}
	if opts.Pure {
		qopts = append(qopts, llama.WithPure())
	}
	parts, _ := src.Uint("split.count")
	if opts.KeepSplit && parts > 1 {
		return quantizeKeepSplit(ctx, opts, in, out, int(parts), src, qopts)
	}
	// A model in one file: --keep-split changes nothing.
	start := time.Now()
	if err := llama.Quantize(ctx, in, out, opts.ftype, qopts...); err != nil {
		return err
	}
	return reportQuantize(opts, src, []string{out}, time.Since(start))
}

// quantizeKeepSplit quantizes a split model into as many parts. llama.cpp
// names the parts after the output it is given, PREFIX-0000K-of-0000N.gguf,
// so OUTPUT is taken as such a name, or as PREFIX.gguf.
func quantizeKeepSplit(ctx context.Context, opts *quantizeOptions, in, out string, n int, src *gguf.File, qopts []llama.QuantizeOption) error {
	prefix := strings.TrimSuffix(out, ".gguf")
	if m := splitPartRE.FindStringSubmatch(filepath.Base(out)); m != nil {
		prefix = filepath.Join(filepath.Dir(out), m[1])
	}
	// With keep_split llama.cpp names the parts after the output it is
	// given; llama.Quantize moves them all into place.
	partName := func(k int) string { return fmt.Sprintf("%s-%05d-of-%05d.gguf", prefix, k, n) }
	start := time.Now()
	if err := llama.Quantize(ctx, in, prefix, opts.ftype, append(qopts, llama.WithKeepSplit())...); err != nil {
		return err
	}
	var outs []string
	for k := 1; k <= n; k++ {
		if _, err := os.Stat(partName(k)); err != nil {
			return fmt.Errorf("quantize %s: llama.cpp wrote no part %d: %w", in, k, err)
		}
		outs = append(outs, partName(k))
	}
	return reportQuantize(opts, src, outs, time.Since(start))
}

// reportQuantize prints what quantize wrote: the file, its type and size.
func reportQuantize(opts *quantizeOptions, src *gguf.File, outs []string, took time.Duration) error {
	f, err := openGGUF(outs[0])
	if err != nil {
		return err
	}
	bpw := 0.0
	if n := f.ParameterCount(); n > 0 {
		bpw = float64(f.TensorDataSize()) * 8 / float64(n)
	}
	name := outs[0]
	if len(outs) > 1 {
		name = fmt.Sprintf("%s (%d parts)", outs[0], len(outs))
	}
	fmt.Fprintf(opts.IO.Out, "%s: %s, %s (was %s), %.2f bits per weight, in %s\n",
		name, opts.ftype, humanBytes(f.Size), humanBytes(src.Size), bpw, took.Round(time.Millisecond))
	return nil
}

// sameFile reports whether the paths a and b name the same existing file.
func sameFile(a, b string) bool {
	sa, err := os.Stat(a)
	if err != nil {
		return false
	}
	sb, err := os.Stat(b)
	return err == nil && os.SameFile(sa, sb)
}

// wrapList joins items with ", " after prefix, breaking lines before width
// columns.
func wrapList(prefix string, items []string, width int) string {
	var b strings.Builder
	b.WriteString(prefix)
	col := len(prefix)
	for i, it := range items {
		sep := ""
		if i > 0 {
			sep = ", "
		}
		if i > 0 && col+len(sep)+len(it)+1 > width {
			b.WriteString(",\n")
			col = 0
			sep = ""
		}
		b.WriteString(sep + it)
		col += len(sep) + len(it)
	}
	return b.String()
}
