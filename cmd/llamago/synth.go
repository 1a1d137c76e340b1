package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// synthOptions are the flags and streams of "llamago synth".
type synthOptions struct {
	IO *iostreams

	Arch    string
	Shape   string
	Type    string
	Vocab   string
	Output  string
	MMProj  string // --mmproj-out: the projector of a vision shape
	Seed    uint64
	Threads int

	// Set by validate from the flags above.
	shape  models.Shape
	vision *models.ProjectorShape // a vision shape: shape is its language model
	ftype  llama.FileType
}

// synthArchs are the architectures Synthesize knows.
var synthArchs = []string{"llama", "qwen2", "qwen2vl", "bert", "mamba"}

func newSynthCmd(streams *iostreams, runF func(*synthOptions) error) *cobra.Command {
	opts := &synthOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "synth --shape SHAPE --vocab VOCAB.gguf -o FILE [flags]",
		Short: "Make a random-weight model of a real architecture and shape",
		Long: "Write a synthetic model: the architecture and sizes of a real one, random\n" +
			"weights (as freshly initialised), and the tokenizer of a vocabulary GGUF\n" +
			"file such as llama.cpp's models/ggml-vocab-*.gguf. llama.cpp loads and runs\n" +
			"it at the speed of the real model; its output is gibberish. For tests and\n" +
			"benchmarks without downloads.\n\n" +
			wrapList("Shapes: ", models.ShapeNames(), 78) + ".\n" +
			"--type F32 or F16 is written directly; any other type (" + "Q8_0, Q4_K_M, ...)\n" +
			"is made by quantizing an F16 model, as llamago quantize does.\n\n" +
			wrapList("Vision shapes (a language model with -o and its projector with --mmproj-out): ", models.ProjectorShapeNames(), 78) + ".",
		Example: `  llamago synth --shape tiny --vocab ggml-vocab-llama-spm.gguf -o tiny.gguf
  llamago synth --arch qwen2 --shape qwen2.5-0.5b --type Q4_K_M --vocab ggml-vocab-gpt-2.gguf -o qwen.gguf
  llamago synth --shape tiny-bert --vocab ggml-vocab-bert-bge.gguf --seed 7 -o bert.gguf
  llamago synth --shape tiny-llava --vocab ggml-vocab-llama-spm.gguf -o llava.gguf --mmproj-out llava-mmproj.gguf`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runSynth(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&opts.Shape, "shape", "", "the shape, required (listed above)")
	f.StringVar(&opts.Arch, "arch", "", "the architecture ("+strings.Join(synthArchs, ", ")+"); must be the shape's")
	f.StringVar(&opts.Vocab, "vocab", "", "GGUF file to take the tokenizer from, required")
	f.StringVar(&opts.Type, "type", "F16", "weight type: F32, F16 or a quantization such as Q8_0 or Q4_K_M")
	f.StringVarP(&opts.Output, "output", "o", "", "output file, required")
	f.StringVar(&opts.MMProj, "mmproj-out", "", "output file of the vision projector, required with a vision shape")
	f.Uint64Var(&opts.Seed, "seed", 0, "seed of the random weights: the same seed gives the same file")
	f.IntVarP(&opts.Threads, "threads", "t", llama.DefaultThreads(), "threads for quantizing")
	return cmd
}

func (o *synthOptions) validate() error {
	switch {
	case o.Shape == "":
		return usageErrorf("--shape is required (one of %s)", strings.Join(models.ShapeNames(), ", "))
	case o.Vocab == "":
		return usageErrorf("--vocab is required: a GGUF file with a tokenizer, such as llama.cpp's models/ggml-vocab-llama-spm.gguf")
	case o.Output == "":
		return usageErrorf("--output is required")
	case o.Threads < 1:
		return usageErrorf("--threads must be positive, not %d", o.Threads)
	}
	var ok bool
	if vs, isVision := models.LookupProjectorShape(o.Shape); isVision {
		if o.MMProj == "" {
			return usageErrorf("--mmproj-out is required with the vision shape %s: the projector's file", o.Shape)
		}
		if o.MMProj == o.Output {
			return usageErrorf("--mmproj-out and --output name the same file")
		}
		o.shape, o.vision = vs.LM, &vs
	} else if o.shape, ok = models.LookupShape(o.Shape); !ok {
		return usageErrorf("unknown shape %q (want one of %s)", o.Shape, strings.Join(append(models.ShapeNames(), models.ProjectorShapeNames()...), ", "))
	} else if o.MMProj != "" {
		return usageErrorf("--mmproj-out needs a vision shape (%s)", strings.Join(models.ProjectorShapeNames(), ", "))
	}
	if o.Arch != "" {
		if !slices.Contains(synthArchs, o.Arch) {
			return usageErrorf("unknown architecture %q (want one of %s)", o.Arch, strings.Join(synthArchs, ", "))
		}
		if o.Arch != o.shape.Arch {
			return usageErrorf("--arch %s does not match shape %s, which is %s", o.Arch, o.shape.Name, o.shape.Arch)
		}
	}
	ft, err := parseFileType("--type", o.Type)
	if err != nil {
		return err
	}
	o.ftype = ft
	return nil
}

// parseFileType parses a quantization name for flag as a usage error,
// refusing the types that need an importance matrix.
func parseFileType(flag, s string) (llama.FileType, error) {
	t, err := llama.ParseFileType(s)
	names := llama.FileTypeNames()
	if err != nil {
		return 0, usageErrorf("%s: unknown type %q (want one of %s)", flag, s, strings.Join(names, ", "))
	}
	if !slices.Contains(names, t.String()) {
		return 0, usageErrorf("%s: %s needs an importance matrix, which is not supported (want one of %s)", flag, t, strings.Join(names, ", "))
	}
	return t, nil
}

func runSynth(ctx context.Context, opts *synthOptions) error {
	if _, err := os.Stat(opts.Vocab); err != nil {
		return fmt.Errorf("vocabulary file: %w", err)
	}
	so := models.SynthOptions{Shape: opts.shape, Vocab: opts.Vocab, Seed: opts.Seed, Type: gguf.TensorF16}
	dir, base := filepath.Split(opts.Output)
	if dir == "" {
		dir = "."
	}
	switch opts.ftype.String() {
	case "F32":
		so.Type = gguf.TensorF32
		fallthrough
	case "F16":
		// Written next to the output and renamed into place, so that a
		// failed run leaves nothing.
		tmp, err := tempFile(dir, base, ".partial")
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		if err := synthesize(ctx, tmp, so); err != nil {
			return err
		}
		if err := os.Chmod(tmp, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, opts.Output); err != nil {
			return err
		}
	default:
		tmp, err := tempFile(dir, base, ".f16.partial")
		if err != nil {
			return err
		}
		defer os.Remove(tmp)
		if err := synthesize(ctx, tmp, so); err != nil {
			return err
		}
		if err := llama.Quantize(ctx, tmp, opts.Output, opts.ftype, llama.WithQuantizeThreads(opts.Threads)); err != nil {
			return err
		}
	}
	f, err := gguf.Open(opts.Output)
	if err != nil {
		return err
	}
	in := models.Inspect(opts.Output, f)
	fmt.Fprintf(opts.IO.Out, "%s: synthetic %s (%s), %s, %s parameters, %s\n",
		opts.Output, opts.shape.Name, opts.shape.Arch, in.FileType, humanCount(in.Parameters), humanBytes(in.FileSize))
	if opts.vision != nil {
		return synthProjector(ctx, opts, so.Type)
	}
	return nil
}

// synthProjector writes the projector of a vision shape to --mmproj-out,
// F32 or F16 as the model (F16 for a quantized model).
func synthProjector(ctx context.Context, opts *synthOptions, typ gguf.TensorType) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, base := filepath.Split(opts.MMProj)
	if dir == "" {
		dir = "."
	}
	tmp, err := tempFile(dir, base, ".partial")
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	po := models.ProjectorOptions{Shape: *opts.vision, Type: typ, Seed: opts.Seed}
	if err := models.SynthesizeProjectorFile(tmp, po); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "models: "))
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, opts.MMProj); err != nil {
		return err
	}
	f, err := gguf.Open(opts.MMProj)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "%s: synthetic %s projector (%s), %s parameters, %s\n",
		opts.MMProj, opts.vision.Name, opts.vision.Projector, humanCount(f.ParameterCount()), humanBytes(f.Size))
	return nil
}

// synthesize runs models.SynthesizeFile, checking ctx first: it cannot be
// interrupted.
func synthesize(ctx context.Context, path string, so models.SynthOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := models.SynthesizeFile(path, so); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "models: "))
	}
	return nil
}

// tempFile creates an empty file in dir named after base, for a file to be
// renamed to base when complete, and returns its path.
func tempFile(dir, base, suffix string) (string, error) {
	fp, err := os.CreateTemp(dir, "."+base+".*"+suffix)
	if err != nil {
		return "", err
	}
	name := fp.Name()
	if err := fp.Close(); err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}
