package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/bench"
	"github.com/llamago/llamago/llama"
)

// quantsOptions are the flags and streams of "llamago quants".
type quantsOptions struct {
	IO *iostreams

	Models    []string // -m: files or directories
	Base      string   // --base; default the largest file
	File      string   // -f: the text
	Context   int      // -c
	Chunks    int      // --chunks
	NPrompt   int      // -p
	NGen      int      // -n
	Reps      int      // -r
	Threads   int      // -t
	GPULayers int      // -ngl
	Plot      string
	Output    string // md or json
	Speed     string // --speed: take pp and tg from these bench results
}

func newQuantsCmd(streams *iostreams, runF func(*quantsOptions) error) *cobra.Command {
	opts := &quantsOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "quants -m DIR -f TEXT [flags]",
		Short: "Report speed against quality for the quantizations of a model",
		Long: "Benchmark the quantizations of one model and compare their predictions with\n" +
			"the base model's, to choose one. -m names model files or directories of them\n" +
			"(their .gguf files); the base is --base, or else the largest file (the F16 or\n" +
			"F32 one). For each model the report has llama-bench's pp and tg speeds (-p,\n" +
			"-n, -r as in bench) and, over the text -f in chunks of -c tokens as\n" +
			"`llamago perplexity --kl-divergence` computes them, its perplexity, the\n" +
			"ratio to the base's, the mean, 99th and 99.9th percentile KL divergence\n" +
			"from the base and how often its most likely token is the base's. The\n" +
			"table is markdown (or -o json); --plot draws speed against KL divergence\n" +
			"and KL divergence and top-1 agreement against file size.\n\n" +
			"--speed FILE takes the speeds from `llamago bench -o jsonl` (or -o json)\n" +
			"results instead, measured on a quiet machine, say: a model's result is the\n" +
			"one of the same file name, test (pp-P, tg-N) and thread count; models\n" +
			"without one are measured.",
		Example: `  llamago quants -m ~/models/llama-60m/ -f /usr/share/common-licenses/GPL-3 --plot quants.svg
  llamago quants -m a-F16.gguf -m a-Q8_0.gguf -m a-Q4_0.gguf -f text.txt -c 256 --chunks 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runQuants(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringArrayVarP(&opts.Models, "model", "m", nil, "model file or directory of them (repeat for more), required")
	f.StringVar(&opts.Base, "base", "", "the model to compare with (default: the largest file)")
	f.StringVarP(&opts.File, "file", "f", "", "the text (\"-\": standard input), required")
	f.IntVarP(&opts.Context, "ctx-size", "c", 512, "tokens of each chunk of the text")
	f.IntVar(&opts.Chunks, "chunks", -1, "most chunks to evaluate (-1: all)")
	f.IntVarP(&opts.NPrompt, "n-prompt", "p", 512, "prompt tokens of the pp test")
	f.IntVarP(&opts.NGen, "n-gen", "n", 128, "generated tokens of the tg test")
	f.IntVarP(&opts.Reps, "repetitions", "r", 5, "repetitions of each speed test")
	f.IntVarP(&opts.Threads, "threads", "t", llama.DefaultThreads(), "threads")
	f.IntVar(&opts.GPULayers, "n-gpu-layers", -1, "layers to offload to GPUs (short -ngl; -1: all)")
	f.StringVar(&opts.Plot, "plot", "", "draw speed against quality to this .svg or .png file")
	f.StringVarP(&opts.Output, "output", "o", "md", "output format: md or json")
	f.StringVar(&opts.Speed, "speed", "", "take pp and tg from these `llamago bench -o jsonl` results where they have them")
	return cmd
}

func (o *quantsOptions) validate() error {
	switch {
	case len(o.Models) == 0:
		return usageErrorf("--model is required")
	case o.File == "":
		return usageErrorf("--file is required")
	case o.Context < 4 || o.Context > 1<<20:
		return usageErrorf("--ctx-size must be 4 to %d, not %d", 1<<20, o.Context)
	case o.NPrompt < 1 || o.NGen < 1 || o.NPrompt > 1<<20 || o.NGen > 1<<20:
		return usageErrorf("--n-prompt and --n-gen must be 1 to %d", 1<<20)
	case o.Reps < 1 || o.Reps > 1000:
		return usageErrorf("--repetitions must be 1 to 1000, not %d", o.Reps)
	case o.Threads < 1:
		return usageErrorf("--threads must be positive, not %d", o.Threads)
	case o.GPULayers < -1:
		return usageErrorf("--n-gpu-layers must be -1 (all) or at least 0, not %d", o.GPULayers)
	case o.Output != "md" && o.Output != "json":
		return usageErrorf("--output must be md or json, not %q", o.Output)
	}
	if o.Plot != "" {
		if ext := strings.ToLower(filepath.Ext(o.Plot)); ext != ".svg" && ext != ".png" {
			return usageErrorf("--plot: the file name must end in .svg or .png, not %q", o.Plot)
		}
	}
	return nil
}

func runQuants(ctx context.Context, opts *quantsOptions) error {
	text, err := readInput(opts.IO.In, opts.File)
	if err != nil {
		return err
	}
	paths, err := expandModels(opts.Models)
	if err != nil {
		return err
	}
	base := opts.Base
	if base == "" {
		base = paths[0] // expandModels puts the largest first
	} else if !containsPath(paths, base) {
		paths = append([]string{base}, paths...)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(opts.IO.ErrOut, "quants: "+format+"\n", args...) }

	// The base's log-probabilities, once, in a temporary file.
	tmp, err := os.CreateTemp("", "llamago-quants-*.kld")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	logf("base %s: saving its log-probabilities over %s", filepath.Base(base), opts.File)
	if err := withModel(ctx, opts, string(text), base, func(m *llama.Model, tokens []llama.TokenID) error {
		c, err := newQualityContext(m, opts)
		if err != nil {
			return err
		}
		defer c.Close()
		for r, err := range bench.SaveKLBase(ctx, c, tokens, filepath.Base(base), bench.KLOptions{Window: opts.Context, Chunks: opts.Chunks}, tmp) {
			if err != nil {
				return err
			}
			logf("base: chunk %d/%d: PPL %.4f", r.Chunk, r.Chunks, r.PPL)
		}
		return nil
	}); err != nil {
		return err
	}

	known := map[string]bench.Result{} // by file name, test and threads
	speedKey := func(file, test string, threads int) string { return fmt.Sprintf("%s\x00%s\x00%d", file, test, threads) }
	if opts.Speed != "" {
		f, err := os.Open(opts.Speed)
		if err != nil {
			return err
		}
		rs, err := bench.ReadResults(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", opts.Speed, err)
		}
		for _, r := range rs {
			if r.NParallel <= 1 && r.NDepth == 0 && !r.E2E {
				known[speedKey(filepath.Base(r.ModelFilename), r.Test, r.NThreads)] = r
			}
		}
	}

	env := newBenchEnv()
	var results []bench.QuantResult
	for _, path := range paths {
		qr := bench.QuantResult{Model: filepath.Base(path), Base: path == base}
		err := withModel(ctx, opts, string(text), path, func(m *llama.Model, tokens []llama.TokenID) error {
			qr.Type, qr.Size = m.Description(), m.Size()
			// Speed: llama-bench's pp and tg, as `llamago bench` runs them.
			for _, t := range []bench.Test{{NPrompt: opts.NPrompt}, {NGen: opts.NGen}} {
				t.Batch, t.UBatch, t.Threads, t.FlashAttn = 2048, 512, opts.Threads, llama.FlashAttentionOff
				r := bench.Result{
					BuildCommit: llamaCppCommit, CPUInfo: env.cpuInfo, GPUInfo: env.gpuInfo, Backends: env.backends,
					ModelFilename: path, ModelType: m.Description(), ModelSize: m.Size(), ModelNParams: m.ParameterCount(),
					NBatch: t.Batch, NUBatch: t.UBatch, NThreads: t.Threads, NGPULayers: opts.GPULayers,
					NPrompt: t.NPrompt, NGen: t.NGen, TestTime: time.Now().UTC().Format(time.RFC3339),
				}
				if k, ok := known[speedKey(qr.Model, bench.TestName(t.NPrompt, t.NGen, false), t.Threads)]; ok {
					logf("%s: %s from %s", qr.Model, k.Test, opts.Speed)
					r = k
				} else {
					logf("%s: %s", qr.Model, bench.TestName(t.NPrompt, t.NGen, false))
					if err := bench.Run(ctx, m, t, bench.RunOptions{Reps: opts.Reps}, &r); err != nil {
						return err
					}
					r.Finish()
				}
				if t.NGen == 0 {
					qr.PP, qr.PPTS, qr.PPSD = r, r.AvgTS, r.StddevTS
				} else {
					qr.TG, qr.TGTS, qr.TGSD = r, r.AvgTS, r.StddevTS
				}
			}
			// Quality: the comparison with the base.
			if _, err := tmp.Seek(0, 0); err != nil {
				return err
			}
			h, err := bench.ReadKLHeader(tmp)
			if err != nil {
				return err
			}
			c, err := newQualityContext(m, opts)
			if err != nil {
				return err
			}
			defer c.Close()
			for r, err := range bench.CompareKL(ctx, c, tokens, h, tmp, 0) {
				if err != nil {
					return err
				}
				logf("%s: chunk %d/%d: mean KLD %.6f", qr.Model, r.Chunk, r.Chunks, r.Stats.KLD)
				qr.Quality = r.Stats
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		results = append(results, qr)
	}
	if opts.Output == "json" {
		e := json.NewEncoder(opts.IO.Out)
		e.SetIndent("", "  ")
		if err := e.Encode(results); err != nil {
			return err
		}
	} else if err := bench.QuantsMarkdown(opts.IO.Out, results); err != nil {
		return err
	}
	if opts.Plot != "" {
		return bench.QuantsPlotFile(opts.Plot, results)
	}
	return nil
}

// withModel loads path, tokenizes the text for it and calls f.
func withModel(ctx context.Context, opts *quantsOptions, text, path string, f func(*llama.Model, []llama.TokenID) error) error {
	m, err := loadModel(ctx, path, llama.WithGPULayers(opts.GPULayers))
	if err != nil {
		return err
	}
	defer m.Close()
	tokens, err := m.PerplexityTokens(text)
	if err != nil {
		return err
	}
	if len(tokens) < 2*opts.Context {
		return fmt.Errorf("%s has %d tokens: a context of %d needs at least %d", opts.File, len(tokens), opts.Context, 2*opts.Context)
	}
	return f(m, tokens)
}

// newQualityContext makes the context the KL-divergence runs use: one
// chunk at a time, as llama-perplexity's.
func newQualityContext(m *llama.Model, opts *quantsOptions) (*llama.Context, error) {
	batch := min(2048, opts.Context)
	return m.NewContext(llama.WithContextSize(opts.Context), llama.WithBatchSize(batch), llama.WithUBatchSize(min(batch, 512)),
		llama.WithThreads(opts.Threads), llama.WithBatchThreads(opts.Threads))
}

func containsPath(paths []string, p string) bool {
	for _, q := range paths {
		if filepath.Clean(q) == filepath.Clean(p) {
			return true
		}
	}
	return false
}
