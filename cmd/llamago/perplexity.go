package main

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/bench"
	"github.com/llamago/llamago/llama"
)

// perplexityOptions are the flags and streams of "llamago perplexity".
type perplexityOptions struct {
	IO *iostreams

	Model     string
	File      string // -f: the text; "-" is standard input
	Context   int    // -c: the window
	Batch     int    // -b
	Chunks    int    // --chunks; <= 0 all
	Threads   int
	GPULayers int
	KLBase    string // --kl-divergence-base: write the base file
	KLCompare string // --kl-divergence: compare with it
}

func newPerplexityCmd(streams *iostreams, runF func(*perplexityOptions) error) *cobra.Command {
	opts := &perplexityOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "perplexity -m MODEL -f TEXT [flags]",
		Short: "Measure perplexity and KL divergence over a text",
		Long: "Compute the model's perplexity over a text with llama-perplexity's method:\n" +
			"the text is tokenized whole (BOS first, if the model adds it) and cut into\n" +
			"chunks of -c tokens, each evaluated from an empty cache with BOS as its\n" +
			"first token, and the second half of each chunk is scored. The running\n" +
			"estimate is printed after each chunk ([chunk]ppl,), then the final value\n" +
			"with its standard error. A batch (-b) of several chunks evaluates them\n" +
			"together in sequences of their own, as llama-perplexity does.\n\n" +
			"--kl-divergence-base FILE also saves the log-probabilities of every scored\n" +
			"token (16 bits each, about 2 bytes per vocabulary entry per token) with\n" +
			"what identifies the model's vocabulary and shape, the text and -c.\n" +
			"--kl-divergence FILE compares a model (a quantization of the base model)\n" +
			"with them over the same text: mean KL divergence with its uncertainty,\n" +
			"median, 99th and 99.9th percentiles and maximum, how often the most\n" +
			"likely token is the base's, and PPL(Q)/PPL(base). -c comes from the file;\n" +
			"a file made with another model or text is refused.",
		Example: `  llamago perplexity -m stories260K.gguf -f /usr/share/common-licenses/GPL-3 -c 128
  llamago perplexity -m model-F16.gguf -f text.txt --kl-divergence-base model-F16.kld
  llamago perplexity -m model-Q4_0.gguf -f text.txt --kl-divergence model-F16.kld`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runPerplexity(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&opts.Model, "model", "m", "", "model file (GGUF), required")
	f.StringVarP(&opts.File, "file", "f", "", "the text (\"-\": standard input), required")
	f.IntVarP(&opts.Context, "ctx-size", "c", 512, "tokens of each chunk")
	f.IntVarP(&opts.Batch, "batch-size", "b", 2048, "most tokens decoded at once (several chunks when it holds them)")
	f.IntVar(&opts.Chunks, "chunks", -1, "most chunks to evaluate (-1: all)")
	f.IntVarP(&opts.Threads, "threads", "t", llama.DefaultThreads(), "threads")
	f.IntVar(&opts.GPULayers, "n-gpu-layers", -1, "layers to offload to GPUs (short -ngl; -1: all)")
	f.StringVar(&opts.KLBase, "kl-divergence-base", "", "save the log-probabilities of the scored tokens to FILE")
	f.StringVar(&opts.KLCompare, "kl-divergence", "", "compare with the log-probabilities saved in FILE")
	return cmd
}

func (o *perplexityOptions) validate() error {
	switch {
	case o.Model == "":
		return usageErrorf("--model is required")
	case o.File == "":
		return usageErrorf("--file is required")
	case o.Context < 4 || o.Context > 1<<20:
		return usageErrorf("--ctx-size must be 4 to %d, not %d", 1<<20, o.Context)
	case o.Batch < 1 || o.Batch > 1<<20:
		return usageErrorf("--batch-size must be 1 to %d, not %d", 1<<20, o.Batch)
	case o.Threads < 1:
		return usageErrorf("--threads must be positive, not %d", o.Threads)
	case o.GPULayers < -1:
		return usageErrorf("--n-gpu-layers must be -1 (all) or at least 0, not %d", o.GPULayers)
	case o.KLBase != "" && o.KLCompare != "":
		return usageErrorf("--kl-divergence-base and --kl-divergence exclude each other")
	}
	return nil
}

func runPerplexity(ctx context.Context, opts *perplexityOptions) error {
	text, err := readInput(opts.IO.In, opts.File)
	if err != nil {
		return err
	}
	// Open the base first: a file that is not one fails before the load.
	var base *os.File
	var h bench.KLHeader
	if opts.KLCompare != "" {
		if base, err = os.Open(opts.KLCompare); err != nil {
			return err
		}
		defer base.Close()
		if h, err = bench.ReadKLHeader(base); err != nil {
			return fmt.Errorf("%s: %w", opts.KLCompare, err)
		}
	}
	m, err := loadModel(ctx, opts.Model, llama.WithGPULayers(opts.GPULayers))
	if err != nil {
		return err
	}
	defer m.Close()
	tokens, err := m.PerplexityTokens(string(text))
	if err != nil {
		return err
	}
	if base != nil {
		if err := h.Check(m, tokens, h.Window); err != nil {
			return fmt.Errorf("%s: %w", opts.KLCompare, err)
		}
		opts.Context = h.Window
	}

	// As llama-perplexity: chunks decoded together when the batch holds
	// several, in a context of one sequence each; the KL modes take one
	// chunk at a time.
	window, seqs := opts.Context, 1
	if opts.KLBase == "" && base == nil {
		seqs = max(1, min(opts.Batch/window, llama.MaxSequences()))
	}
	if len(tokens) < 2*window {
		return fmt.Errorf("%s has %d tokens: a context of %d needs at least %d", opts.File, len(tokens), window, 2*window)
	}
	batch := min(opts.Batch, seqs*window)
	c, err := m.NewContext(llama.WithContextSize(seqs*window), llama.WithSequences(seqs),
		llama.WithBatchSize(batch), llama.WithUBatchSize(min(batch, 512)),
		llama.WithThreads(opts.Threads), llama.WithBatchThreads(opts.Threads))
	if err != nil {
		return err
	}
	defer c.Close()
	chunks := len(tokens) / window
	if opts.Chunks > 0 {
		chunks = min(chunks, opts.Chunks)
	}
	if base != nil {
		chunks = min(chunks, h.Chunks)
	}
	fmt.Fprintf(opts.IO.ErrOut, "perplexity: %d tokens, %d chunks of %d, batch %d, %d sequences\n",
		len(tokens), chunks, window, batch, seqs)

	switch {
	case base != nil:
		return compareKL(ctx, opts, c, tokens, h, base, chunks)
	case opts.KLBase != "":
		return saveKLBase(ctx, opts, c, tokens, chunks)
	}
	return printPerplexity(opts, c.Perplexity(ctx, tokens, llama.WithWindow(window), llama.WithChunks(chunks)))
}

// printPerplexity prints the running estimates as llama-perplexity does,
// then the final one with its uncertainty.
func printPerplexity(opts *perplexityOptions, results iter.Seq2[llama.PerplexityChunk, error]) error {
	var last llama.PerplexityChunk
	for r, err := range results {
		if err != nil {
			if last.Chunk > 0 {
				fmt.Fprintln(opts.IO.Out)
			}
			return err
		}
		fmt.Fprintf(opts.IO.Out, "[%d]%.4f,", r.Chunk, r.PPL)
		last = r
	}
	fmt.Fprintf(opts.IO.Out, "\nFinal estimate: PPL = %.4f +/- %.5f\n", last.PPL, last.Uncertainty)
	return nil
}

func saveKLBase(ctx context.Context, opts *perplexityOptions, c *llama.Context, tokens []llama.TokenID, chunks int) error {
	tmp := opts.KLBase + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // after a failure; gone after the rename
	err = printPerplexity(opts, bench.SaveKLBase(ctx, c, tokens, filepath.Base(opts.Model),
		bench.KLOptions{Window: opts.Context, Chunks: chunks}, f))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, opts.KLBase); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "perplexity: saved the log-probabilities to %s\n", opts.KLBase)
	return nil
}

func compareKL(ctx context.Context, opts *perplexityOptions, c *llama.Context, tokens []llama.TokenID,
	h bench.KLHeader, base *os.File, chunks int) error {
	w := opts.IO.Out
	fmt.Fprintf(w, "base: %s\n", h.Name)
	fmt.Fprintln(w, "chunk             PPL          ln(PPL(Q)/PPL(base))       KL divergence        same top")
	var st bench.KLStats
	for r, err := range bench.CompareKL(ctx, c, tokens, h, base, chunks) {
		if err != nil {
			if errors.Is(err, bench.ErrKLBaseMismatch) || errors.Is(err, bench.ErrNotKLBase) {
				return fmt.Errorf("%s: %w", opts.KLCompare, err)
			}
			return err
		}
		s := r.Stats
		fmt.Fprintf(w, "%4d  %10.4f ± %9.4f  %10.5f ± %10.5f  %10.6f ± %9.6f  %7.3f ± %5.3f %%\n",
			r.Chunk, s.PPL, s.PPLUnc, s.LogRatio, s.LogRatioUnc, s.KLD, s.KLDUnc, 100*s.SameTop, 100*s.SameTopUnc)
		st = s
	}
	fmt.Fprintf(w, "\n====== Perplexity statistics ======\n")
	fmt.Fprintf(w, "Mean PPL(Q)                   : %10.6f ± %10.6f\n", st.PPL, st.PPLUnc)
	fmt.Fprintf(w, "Mean PPL(base)                : %10.6f ± %10.6f\n", st.PPLBase, st.PPLBaseUnc)
	fmt.Fprintf(w, "Mean ln(PPL(Q)/PPL(base))     : %10.6f ± %10.6f\n", st.LogRatio, st.LogRatioUnc)
	fmt.Fprintf(w, "Mean PPL(Q)/PPL(base)         : %10.6f ± %10.6f\n", st.Ratio, st.RatioUnc)
	fmt.Fprintf(w, "\n====== KL divergence statistics ======\n")
	fmt.Fprintf(w, "Mean    KLD: %10.6f ± %10.6f\n", st.KLD, st.KLDUnc)
	fmt.Fprintf(w, "Maximum KLD: %10.6f\n", st.KLDMax)
	fmt.Fprintf(w, "99.9%%   KLD: %10.6f\n", st.KLD999)
	fmt.Fprintf(w, "99.0%%   KLD: %10.6f\n", st.KLD99)
	fmt.Fprintf(w, "Median  KLD: %10.6f\n", st.KLDMedian)
	fmt.Fprintf(w, "\n====== Token probability statistics ======\n")
	fmt.Fprintf(w, "Same top p: %6.3f ± %5.3f %%\n", 100*st.SameTop, 100*st.SameTopUnc)
	return nil
}
