package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/llama"
)

// runOptions are the flags and streams of "llamago run".
type runOptions struct {
	IO *iostreams

	Model      string
	Prompt     string // from --prompt or the positional argument
	PromptFile string // --file; "-" is standard input
	NoEscape   bool

	NPredict     int
	CtxSize      int
	BatchSize    int
	UBatchSize   int
	Threads      int
	ThreadsBatch int // 0: the same as Threads
	GPULayers    int
	GPU          gpuFlags // --split-mode, --main-gpu, --tensor-split
	FlashAttn    string
	CacheTypeK   string
	CacheTypeV   string
	NoMmap       bool
	Mlock        bool
	LoRA         loraFlags
	Vision       visionFlags // --mmproj, --image
	Spec         specFlags   // speculative decoding

	Temp             float32
	TopK             int
	TopP             float32
	MinP             float32
	Typical          float32
	RepeatPenalty    float32
	RepeatLastN      int
	PresencePenalty  float32
	FrequencyPenalty float32
	Mirostat         int
	MirostatLR       float32
	MirostatEnt      float32
	Seed             int64 // -1: random
	Grammar          string
	GrammarFile      string
	JSONSchema       string
	JSONSchemaFile   string
	Stop             []string
	IgnoreEOS        bool

	Echo    bool
	Timings bool
	JSON    bool

	// Set by validate from the flags above.
	flashAttn      llama.FlashAttention
	cacheK, cacheV llama.CacheType
	seed           uint32
}

func newRunCmd(streams *iostreams, runF func(*runOptions) error) *cobra.Command {
	opts := &runOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "run -m MODEL [flags] [PROMPT]",
		Short: "Generate text from a prompt",
		Long: "Generate text from a prompt and stream it to standard output.\n\n" +
			"The prompt is the argument, --prompt or the contents of --file (\"-\" reads\n" +
			"standard input): exactly one of them. Escape sequences such as \\n in the\n" +
			"prompt and the stop strings are processed as llama.cpp does, unless\n" +
			"--no-escape is given.",
		Example: `  llamago run -m stories260K.gguf --temp 0 -n 30 "Once upon a time"
  llamago run -m model.gguf -ngl 99 -c 8192 -f prompt.txt --timings
  llamago run -m model.gguf --json --stop "\n\n" -p "Q: What is GGUF?\nA:"`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("expected at most one prompt argument, got %d (quote the prompt)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			sources := 0
			for _, set := range []bool{cmd.Flags().Changed("prompt"), cmd.Flags().Changed("file"), len(args) == 1} {
				if set {
					sources++
				}
			}
			switch {
			case sources == 0:
				return usageErrorf("no prompt: give it as an argument, with --prompt or with --file")
			case sources > 1:
				return usageErrorf("give the prompt only once: as an argument, with --prompt or with --file")
			}
			if len(args) == 1 {
				opts.Prompt = args[0]
			}
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runRun(cmd.Context(), opts)
		},
	}

	f := cmd.Flags()
	f.SortFlags = false
	addModelFlag(f, opts)
	f.StringVarP(&opts.Prompt, "prompt", "p", "", "prompt text")
	f.StringVarP(&opts.PromptFile, "file", "f", "", "read the prompt from a file (\"-\": standard input)")
	f.BoolVar(&opts.NoEscape, "no-escape", false, "do not process escape sequences (\\n, \\t, ...) in the prompt and stop strings")
	addGenerationFlags(f, opts)
	addVisionFlags(f, &opts.Vision, true)

	f.BoolVar(&opts.Echo, "echo", false, "print the prompt before the generated text")
	f.BoolVar(&opts.Timings, "timings", false, "print token counts and speeds on stderr")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object with the text, tokens and statistics at the end")
	return cmd
}

// validate checks the flag values and sets the parsed fields.
func (o *runOptions) validate() error {
	if o.Model == "" {
		return usageErrorf("--model is required")
	}
	if err := o.LoRA.parse(); err != nil {
		return err
	}
	if err := o.Vision.validate(); err != nil {
		return err
	}
	if err := o.Spec.validate(); err != nil {
		return err
	}
	if o.NPredict == 0 || o.NPredict < -1 {
		return usageErrorf("--n-predict must be -1 (no limit) or positive, not %d", o.NPredict)
	}
	if o.CtxSize < 0 {
		return usageErrorf("--ctx-size must be 0 (the model's trained context) or positive, not %d", o.CtxSize)
	}
	if o.BatchSize < 1 {
		return usageErrorf("--batch-size must be positive, not %d", o.BatchSize)
	}
	if err := checkComputeFlags(o.UBatchSize, o.Threads, &o.ThreadsBatch, o.GPULayers); err != nil {
		return err
	}
	if err := o.GPU.validate(); err != nil {
		return err
	}
	var err error
	if o.flashAttn, o.cacheK, o.cacheV, err = parseAttention(o.FlashAttn, o.CacheTypeK, o.CacheTypeV); err != nil {
		return err
	}

	if !finite(o.Temp) || o.Temp < 0 {
		return usageErrorf("--temp must be 0 (greedy) or positive, not %v", o.Temp)
	}
	if o.TopK < 0 {
		return usageErrorf("--top-k must be 0 (off) or positive, not %d", o.TopK)
	}
	for _, p := range []struct {
		name string
		v    float32
	}{{"--top-p", o.TopP}, {"--min-p", o.MinP}, {"--typical", o.Typical}} {
		if !(p.v >= 0 && p.v <= 1) {
			return usageErrorf("%s must be between 0 and 1, not %v", p.name, p.v)
		}
	}
	if !finite(o.RepeatPenalty) || o.RepeatPenalty < 0 {
		return usageErrorf("--repeat-penalty must not be negative, not %v", o.RepeatPenalty)
	}
	if o.RepeatLastN < -1 || o.RepeatLastN > llama.MaxSamplerWindow {
		return usageErrorf("--repeat-last-n must be -1 (the context), 0 (off) or at most %d, not %d", llama.MaxSamplerWindow, o.RepeatLastN)
	}
	if !finite(o.PresencePenalty) {
		return usageErrorf("--presence-penalty must be a finite number, not %v", o.PresencePenalty)
	}
	if !finite(o.FrequencyPenalty) {
		return usageErrorf("--frequency-penalty must be a finite number, not %v", o.FrequencyPenalty)
	}
	if o.Mirostat < 0 || o.Mirostat > 2 {
		return usageErrorf("--mirostat must be 0, 1 or 2, not %d", o.Mirostat)
	}
	if !finite(o.MirostatLR) || o.MirostatLR < 0 {
		return usageErrorf("--mirostat-lr must not be negative, not %v", o.MirostatLR)
	}
	if !finite(o.MirostatEnt) || o.MirostatEnt < 0 {
		return usageErrorf("--mirostat-ent must not be negative, not %v", o.MirostatEnt)
	}
	switch {
	case o.Seed == -1:
		o.seed = llama.DefaultSeed
	case o.Seed < 0 || o.Seed > math.MaxUint32:
		return usageErrorf("--seed must be -1 (random) or between 0 and %d, not %d", uint32(math.MaxUint32), o.Seed)
	default:
		o.seed = uint32(o.Seed)
	}
	if o.Grammar != "" && o.GrammarFile != "" {
		return usageErrorf("--grammar and --grammar-file cannot be used together")
	}
	constraints := 0
	for _, s := range []string{o.Grammar, o.GrammarFile, o.JSONSchema, o.JSONSchemaFile} {
		if s != "" {
			constraints++
		}
	}
	if constraints > 1 {
		return usageErrorf("give one of --grammar, --grammar-file, --json-schema and --json-schema-file")
	}
	if o.JSON && o.Echo {
		return usageErrorf("--json and --echo cannot be used together")
	}
	return nil
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

var cacheTypeNames = "f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1"

func parseCacheType(flag, s string) (llama.CacheType, error) {
	t, err := llama.ParseCacheType(s)
	if err != nil {
		return 0, usageErrorf("%s: unknown cache type %q (want one of %s)", flag, s, cacheTypeNames)
	}
	return t, nil
}

func quantized(t llama.CacheType) bool {
	return t != llama.CacheF32 && t != llama.CacheF16 && t != llama.CacheBF16
}

// checkCacheTypes refuses a quantized KV cache type for a model whose
// attention heads are not a whole number of quantization blocks (32
// values for every quantized cache type): llama.cpp accepts the context,
// then aborts the process in its first decode.
func checkCacheTypes(m *llama.Model, o *runOptions) error {
	const block = 32
	headDim := func(key string) int {
		if v, ok := m.Metadata(m.Architecture() + ".attention." + key); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
		if m.Heads() > 0 {
			return m.EmbeddingSize() / m.Heads()
		}
		return 0
	}
	for _, c := range []struct {
		flag, name, key string
		t               llama.CacheType
	}{{"--cache-type-k", o.CacheTypeK, "key_length", o.cacheK}, {"--cache-type-v", o.CacheTypeV, "value_length", o.cacheV}} {
		if d := headDim(c.key); quantized(c.t) && d%block != 0 {
			return fmt.Errorf("%s %s needs attention heads of a multiple of %d values; the model's have %d", c.flag, c.name, block, d)
		}
	}
	return nil
}

// runJSON is the object --json prints.
type runJSON struct {
	Text   string          `json:"text"`
	Tokens []llama.TokenID `json:"tokens"`
	Stats  runStats        `json:"stats"`
}

type runStats struct {
	PromptTokens          int     `json:"prompt_tokens"`
	CachedTokens          int     `json:"cached_tokens"`
	GeneratedTokens       int     `json:"generated_tokens"`
	PromptEvalMs          float64 `json:"prompt_eval_ms"`
	TTFTMs                float64 `json:"ttft_ms"`
	GenerationMs          float64 `json:"generation_ms"`
	TokensPerSecond       float64 `json:"tokens_per_second"`
	PromptTokensPerSecond float64 `json:"prompt_tokens_per_second"`
	StopReason            string  `json:"stop_reason"`
	StopString            string  `json:"stop_string,omitempty"`
	Images                int     `json:"images,omitempty"`
	ImageEncodeMs         float64 `json:"image_encode_ms,omitempty"`
	DraftTokens           int     `json:"draft_tokens,omitempty"`
	AcceptedTokens        int     `json:"accepted_tokens,omitempty"`
}

func newRunStats(s llama.Stats) runStats {
	return runStats{
		PromptTokens:          s.PromptTokens,
		CachedTokens:          s.CachedTokens,
		GeneratedTokens:       s.GeneratedTokens,
		PromptEvalMs:          ms(s.PromptEval),
		TTFTMs:                ms(s.TimeToFirst),
		GenerationMs:          ms(s.Generation),
		TokensPerSecond:       s.TokensPerSecond(),
		PromptTokensPerSecond: s.PromptTokensPerSecond(),
		StopReason:            s.StopReason.String(),
		StopString:            s.StopString,
		Images:                s.Images,
		ImageEncodeMs:         ms(s.ImageEncode),
		DraftTokens:           s.DraftTokens,
		AcceptedTokens:        s.AcceptedTokens,
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runRun loads the model, generates, and streams the text to IO.Out.
func runRun(ctx context.Context, opts *runOptions) error {
	out, errOut := opts.IO.Out, opts.IO.ErrOut

	prompt := opts.Prompt
	if opts.PromptFile != "" {
		b, err := readInput(opts.IO.In, opts.PromptFile)
		if err != nil {
			return err
		}
		prompt = string(b)
	}
	stops := append([]string(nil), opts.Stop...)
	if !opts.NoEscape {
		prompt = processEscapes(prompt)
		for i := range stops {
			stops[i] = processEscapes(stops[i])
		}
	}
	grammar, err := opts.grammarText()
	if err != nil {
		return err
	}
	images, err := loadImages(opts.Vision.Images)
	if err != nil {
		return err
	}

	noteCPUFallback(ctx, opts.GPULayers)
	model, err := loadModel(ctx, opts.Model, opts.modelOptions()...)
	if err != nil {
		return err
	}
	defer model.Close()
	proj, err := opts.Vision.load(model, opts.Threads)
	if err != nil {
		return err
	}
	if err := opts.Spec.load(ctx, opts.modelOptions()...); err != nil {
		return err
	}
	defer opts.Spec.close()
	lctx, err := opts.newContext(model)
	if err != nil {
		return err
	}
	defer lctx.Close()

	var stats llama.Stats
	gen := []llama.GenerateOption{
		llama.WithMaxTokens(opts.NPredict),
		llama.WithStop(stops...),
		llama.WithSampling(opts.samplerOptions(grammar)...),
		llama.WithStats(&stats),
	}
	if len(images) > 0 {
		gen = append(gen, llama.WithImages(proj, images...))
	}
	gen = append(gen, opts.Spec.generateOptions()...)

	// Streamed text goes out unbuffered, so every token reaches the reader
	// as it is made. An echoed prompt goes out with the first text, so it
	// is not printed for a generation that fails at the start.
	stream := !opts.JSON
	pending := ""
	if opts.Echo {
		pending = prompt
	}
	lastByte := byte('\n')
	write := func(s string) error {
		s, pending = pending+s, ""
		if s == "" {
			return nil
		}
		lastByte = s[len(s)-1]
		_, err := io.WriteString(out, s)
		return err
	}
	var text strings.Builder
	tokens := []llama.TokenID{}
	var genErr error
	for tok, err := range lctx.Generate(ctx, prompt, gen...) {
		if err != nil {
			genErr = err
			break
		}
		if tok.ID != llama.NullToken {
			tokens = append(tokens, tok.ID)
		}
		if tok.Text == "" {
			continue
		}
		text.WriteString(tok.Text)
		if stream {
			if err := write(tok.Text); err != nil {
				return err
			}
		}
	}

	contextFull := false
	switch {
	case genErr == nil:
	case errors.Is(genErr, context.Canceled) || ctx.Err() != nil:
		if stream {
			fmt.Fprintln(out)
		}
		return genErr
	case errors.Is(genErr, llama.ErrContextFull) && stats.GeneratedTokens > 0:
		contextFull = true
	case errors.Is(genErr, llama.ErrContextFull):
		return fmt.Errorf("the prompt of %d tokens does not fit the context of %d tokens (see --ctx-size)",
			stats.PromptTokens, lctx.ContextSize())
	default:
		return genErr
	}

	if opts.JSON {
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(runJSON{Text: text.String(), Tokens: tokens, Stats: newRunStats(stats)}); err != nil {
			return err
		}
	} else {
		if err := write(""); err != nil {
			return err
		}
		if lastByte != '\n' && isTerminal(out) {
			fmt.Fprintln(out)
		}
	}
	if contextFull {
		fmt.Fprintf(errOut, "llamago: context full after %d tokens\n", stats.GeneratedTokens)
	}
	if opts.Timings {
		printTimings(errOut, stats)
	}
	return nil
}

func printTimings(w io.Writer, s llama.Stats) {
	fmt.Fprintf(w, "prompt:     %d tokens (%d cached), %.2f ms, %.2f tok/s\n",
		s.PromptTokens, s.CachedTokens, ms(s.PromptEval), s.PromptTokensPerSecond())
	if s.Images > 0 {
		fmt.Fprintf(w, "images:     %d, encoded in %.2f ms (the prompt's positions include them)\n", s.Images, ms(s.ImageEncode))
	}
	fmt.Fprintf(w, "generation: %d tokens, time to first token %.2f ms, %.2f tok/s\n",
		s.GeneratedTokens, ms(s.TimeToFirst), s.TokensPerSecond())
	stop := s.StopReason.String()
	if s.StopReason == llama.StopString {
		stop += fmt.Sprintf(" %q", s.StopString)
	}
	fmt.Fprintf(w, "stop:       %s\n", stop)
	printSpecTimings(w, s)
}

// readInput reads a whole file, or in when name is "-".
func readInput(in io.Reader, name string) ([]byte, error) {
	if name == "-" {
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return b, nil
	}
	return os.ReadFile(name)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
