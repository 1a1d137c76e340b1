package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/llama"
)

// embedOptions are the flags and streams of "llamago embed".
type embedOptions struct {
	IO *iostreams

	Model      string
	Texts      []string // the positional arguments
	File       string   // --file: one text per line; "-" is standard input
	Normalize  string
	Pooling    string
	Similarity bool
	Dimensions int
	Truncate   bool
	BatchSize  int
	Threads    int
	GPULayers  int

	// Set by validate.
	norm    llama.Normalization
	pooling llama.Pooling
}

func newEmbedCmd(streams *iostreams, runF func(*embedOptions) error) *cobra.Command {
	opts := &embedOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "embed -m MODEL [flags] [TEXT...]",
		Short: "Print the embeddings of texts",
		Long: "Compute an embedding for each text and print it as a JSON array, one line\n" +
			"per text, in the order given. The texts are the arguments, or the lines of\n" +
			"--file (\"-\" reads standard input; empty lines are skipped).\n\n" +
			"The pooling is the model's own unless --pooling is given (none prints an\n" +
			"array of token embeddings per text; rank prints a reranker's raw scores).\n" +
			"Embeddings are L2-normalized unless --normalize says otherwise: none,\n" +
			"max-abs (scaled to the int16 range, as llama.cpp), l1, l2, or a number as\n" +
			"llama.cpp's --embd-normalize (-1 none, 0 max-abs, 1 l1, 2 l2, >2 p-norm).\n" +
			"--similarity prints the matrix of cosine similarities between the texts\n" +
			"instead, one JSON array per row.",
		Example: `  llamago embed -m bge-small.gguf "A cat" "A dog"
  llamago embed -m bge-small.gguf --similarity "A cat" "A dog" "A car"
  llamago embed -m stories260K.gguf --pooling mean -f texts.txt
  llamago embed -m model.gguf --dimensions 256 --truncate "long text..."`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				opts.Texts = args
			}
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runEmbed(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&opts.Model, "model", "m", "", "model file (GGUF), required")
	f.StringVarP(&opts.File, "file", "f", "", "read the texts from a file, one per line (\"-\": standard input)")
	f.StringVar(&opts.Normalize, "normalize", "l2", "normalization: none, max-abs, l1, l2, or a number as llama.cpp's --embd-normalize")
	f.StringVar(&opts.Pooling, "pooling", "", "pooling: none, mean, cls, last or rank (default: the model's)")
	f.BoolVar(&opts.Similarity, "similarity", false, "print the cosine similarity matrix of the texts instead of the embeddings")
	f.IntVar(&opts.Dimensions, "dimensions", 0, "keep the first N values of each embedding, then normalize (Matryoshka models; 0: all)")
	f.BoolVar(&opts.Truncate, "truncate", false, "truncate texts longer than the model's context instead of failing")
	f.IntVarP(&opts.BatchSize, "batch-size", "b", 2048, "most tokens decoded at once (raised to the longest text)")
	f.IntVarP(&opts.Threads, "threads", "t", llama.DefaultThreads(), "threads")
	f.IntVar(&opts.GPULayers, "n-gpu-layers", -1, "layers to offload to GPUs (short -ngl; -1: all)")
	return cmd
}

func (o *embedOptions) validate() error {
	if o.Model == "" {
		return usageErrorf("--model is required")
	}
	switch {
	case len(o.Texts) == 0 && o.File == "":
		return usageErrorf("no texts: give them as arguments or with --file")
	case len(o.Texts) > 0 && o.File != "":
		return usageErrorf("give the texts as arguments or with --file, not both")
	}
	var err error
	if o.norm, err = parseNormalization(o.Normalize); err != nil {
		return err
	}
	o.pooling = llama.PoolingUnspecified
	if o.Pooling != "" {
		if o.pooling, err = llama.ParsePooling(o.Pooling); err != nil {
			return usageErrorf("--pooling must be none, mean, cls, last or rank, not %q", o.Pooling)
		}
	}
	if o.Similarity && o.pooling == llama.PoolingNone {
		return usageErrorf("--similarity needs one embedding per text: not with --pooling none")
	}
	if o.Dimensions < 0 {
		return usageErrorf("--dimensions must be 0 (all) or positive, not %d", o.Dimensions)
	}
	if o.BatchSize < 1 {
		return usageErrorf("--batch-size must be positive, not %d", o.BatchSize)
	}
	if o.Threads < 1 {
		return usageErrorf("--threads must be positive, not %d", o.Threads)
	}
	if o.GPULayers < -1 {
		return usageErrorf("--n-gpu-layers must be -1 (all) or at least 0, not %d", o.GPULayers)
	}
	return nil
}

// parseNormalization parses --normalize: a name or llama.cpp's number.
func parseNormalization(s string) (llama.Normalization, error) {
	switch strings.ToLower(s) {
	case "none":
		return llama.NormalizeNone, nil
	case "max-abs", "maxabs":
		return llama.NormalizeMaxAbs, nil
	case "l1", "taxicab":
		return llama.NormalizeL1, nil
	case "l2", "euclidean":
		return llama.NormalizeL2, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < -1 {
		return 0, usageErrorf("--normalize must be none, max-abs, l1, l2 or a number from -1 up, not %q", s)
	}
	return llama.Normalization(n), nil
}

func runEmbed(ctx context.Context, opts *embedOptions) error {
	texts := opts.Texts
	if opts.File != "" {
		b, err := readInput(opts.IO.In, opts.File)
		if err != nil {
			return err
		}
		texts = texts[:0:0]
		for line := range strings.Lines(string(b)) {
			line = strings.TrimRight(line, "\r\n")
			if line != "" {
				texts = append(texts, line)
			}
		}
		if len(texts) == 0 {
			return fmt.Errorf("%s holds no texts", opts.File)
		}
	}

	noteCPUFallback(ctx, opts.GPULayers)
	model, err := loadModel(ctx, opts.Model, llama.WithGPULayers(opts.GPULayers))
	if err != nil {
		return err
	}
	defer model.Close()
	eopts := []llama.EmbedOption{
		llama.WithPooling(opts.pooling),
		llama.WithNormalization(opts.norm),
		llama.WithDimensions(opts.Dimensions),
		llama.WithTruncation(opts.Truncate),
		llama.WithEmbedBatchSize(opts.BatchSize),
		llama.WithEmbedContext(llama.WithThreads(opts.Threads), llama.WithBatchThreads(opts.Threads)),
	}

	w := bufio.NewWriter(opts.IO.Out)
	line := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		w.Write(b)
		return w.WriteByte('\n')
	}
	if opts.pooling == llama.PoolingNone {
		embs, err := model.EmbedTokens(ctx, texts, eopts...)
		if err != nil {
			return err
		}
		for _, e := range embs {
			if err := line(e); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	embs, err := model.Embed(ctx, texts, eopts...)
	if errors.Is(err, llama.ErrNoPooling) {
		return fmt.Errorf("%s has no pooling of its own: give --pooling mean, cls or last (or none for the embeddings of its tokens)", opts.Model)
	}
	if err != nil {
		return err
	}
	if opts.Similarity {
		for _, a := range embs {
			row := make([]float32, len(embs))
			for j, b := range embs {
				row[j] = llama.CosineSimilarity(a, b)
			}
			if err := line(row); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	for _, e := range embs {
		if err := line(e); err != nil {
			return err
		}
	}
	return w.Flush()
}
