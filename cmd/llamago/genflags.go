package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/llamago/llamago/llama"
)

// The flags that load a model, make a context and sample from it are the
// same for every command that generates (run, chat): they are registered
// here, on the fields of runOptions, and checked by runOptions.validate.

// addModelFlag registers --model (-m).
func addModelFlag(f *pflag.FlagSet, o *runOptions) {
	f.StringVarP(&o.Model, "model", "m", "", "model file (GGUF), required")
}

// addGenerationFlags registers the generation, model loading, context and
// sampling flags, from --n-predict to --ignore-eos.
func addGenerationFlags(f *pflag.FlagSet, o *runOptions) {
	f.IntVarP(&o.NPredict, "n-predict", "n", -1, "number of tokens to generate (-1: until end of generation or a full context)")
	f.IntVarP(&o.CtxSize, "ctx-size", "c", 4096, "size of the context in tokens (0: the model's trained context)")
	f.IntVarP(&o.BatchSize, "batch-size", "b", 2048, "logical batch size for prompt processing")
	f.IntVar(&o.UBatchSize, "ubatch-size", 512, "physical batch size (short -ub)")
	f.IntVarP(&o.Threads, "threads", "t", llama.DefaultThreads(), "threads for generation")
	f.IntVar(&o.ThreadsBatch, "threads-batch", 0, "threads for prompt processing (short -tb; default: the same as --threads)")
	f.IntVar(&o.GPULayers, "n-gpu-layers", -1, "layers to offload to GPUs (short -ngl; -1: all)")
	addGPUFlags(f, &o.GPU)
	f.StringVar(&o.FlashAttn, "flash-attn", "auto", flashAttnUsage)
	f.StringVar(&o.CacheTypeK, "cache-type-k", "f16", "KV cache type for K: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1 (short -ctk)")
	f.StringVar(&o.CacheTypeV, "cache-type-v", "f16", "KV cache type for V, as --cache-type-k (short -ctv)")
	f.BoolVar(&o.NoMmap, "no-mmap", false, "read the model into memory instead of mapping it")
	f.BoolVar(&o.Mlock, "mlock", false, "lock the model in RAM")
	addLoRAFlags(f, &o.LoRA)
	addSpecFlags(f, &o.Spec)

	f.Float32Var(&o.Temp, "temp", 0.8, "temperature (0: greedy)")
	f.IntVar(&o.TopK, "top-k", 40, "top-k sampling (0: off)")
	f.Float32Var(&o.TopP, "top-p", 0.95, "top-p sampling (1: off)")
	f.Float32Var(&o.MinP, "min-p", 0.05, "min-p sampling (0: off)")
	f.Float32Var(&o.Typical, "typical", 1.0, "locally typical sampling with mass p (1: off)")
	f.Float32Var(&o.RepeatPenalty, "repeat-penalty", 1.0, "penalty for repeated tokens (1: off)")
	f.IntVar(&o.RepeatLastN, "repeat-last-n", 64, "tokens considered for the penalties (0: off, -1: the context)")
	f.Float32Var(&o.PresencePenalty, "presence-penalty", 0, "presence penalty (0: off)")
	f.Float32Var(&o.FrequencyPenalty, "frequency-penalty", 0, "frequency penalty (0: off)")
	f.IntVar(&o.Mirostat, "mirostat", 0, "Mirostat sampling version: 0 (off), 1 or 2")
	f.Float32Var(&o.MirostatLR, "mirostat-lr", 0.1, "Mirostat learning rate (eta)")
	f.Float32Var(&o.MirostatEnt, "mirostat-ent", 5.0, "Mirostat target entropy (tau)")
	f.Int64VarP(&o.Seed, "seed", "s", -1, "random seed (-1: random)")
	f.StringVar(&o.Grammar, "grammar", "", "constrain the output with a GBNF grammar")
	f.StringVar(&o.GrammarFile, "grammar-file", "", "read the GBNF grammar from a file")
	f.StringVarP(&o.JSONSchema, "json-schema", "j", "", "constrain the output to JSON that this JSON Schema allows (converted to a grammar as llama.cpp does)")
	f.StringVar(&o.JSONSchemaFile, "json-schema-file", "", "read the JSON Schema from a file")
	f.StringArrayVar(&o.Stop, "stop", nil, "stop before this text (repeatable)")
	f.BoolVar(&o.IgnoreEOS, "ignore-eos", false, "keep generating past end-of-generation tokens")
}

// modelOptions are the options that load the model, as the flags set them.
func (o *runOptions) modelOptions() []llama.ModelOption {
	return append([]llama.ModelOption{
		llama.WithGPULayers(o.GPULayers),
		llama.WithMmap(!o.NoMmap),
		llama.WithMlock(o.Mlock),
	}, o.GPU.modelOptions()...)
}

// newContext makes the context of run and chat on m as the flags say: the
// cache types checked against the model, the LoRA adapters loaded and
// applied.
func (o *runOptions) newContext(m *llama.Model) (*llama.Context, error) {
	if err := checkCacheTypes(m, o); err != nil {
		return nil, err
	}
	adapters, err := o.LoRA.load(m)
	if err != nil {
		return nil, err
	}
	opts := append(o.contextOptions(), adapters...)
	return m.NewContext(append(opts, o.Spec.contextOptions()...)...)
}

// contextOptions are the options of the context, as the flags set them.
func (o *runOptions) contextOptions() []llama.ContextOption {
	return []llama.ContextOption{
		llama.WithContextSize(o.CtxSize),
		llama.WithBatchSize(o.BatchSize),
		llama.WithUBatchSize(o.UBatchSize),
		llama.WithThreads(o.Threads),
		llama.WithBatchThreads(o.ThreadsBatch),
		llama.WithFlashAttention(o.flashAttn),
		llama.WithCacheTypes(o.cacheK, o.cacheV),
	}
}

// loraFlags are --lora and --lora-scaled, of run, chat and serve.
type loraFlags struct {
	Files  []string // --lora FILE
	Scaled []string // --lora-scaled FILE:SCALE

	adapters []loraFlag // set by parse
}

// loraFlag is one adapter and its scale.
type loraFlag struct {
	path  string
	scale float32
}

func addLoRAFlags(f *pflag.FlagSet, l *loraFlags) {
	f.StringArrayVar(&l.Files, "lora", nil, "apply a LoRA adapter (GGUF) at scale 1 (repeatable)")
	f.StringArrayVar(&l.Scaled, "lora-scaled", nil, "apply a LoRA adapter at a scale, FILE:SCALE (repeatable)")
}

// parse reads the flags into l.adapters.
func (l *loraFlags) parse() error {
	l.adapters = nil
	for _, p := range l.Files {
		l.adapters = append(l.adapters, loraFlag{p, 1})
	}
	for _, v := range l.Scaled {
		// The last colon: a Windows path has one of its own.
		i := strings.LastIndexByte(v, ':')
		scale, err := strconv.ParseFloat(v[i+1:], 32)
		if i <= 0 || err != nil || math.IsNaN(scale) || math.IsInf(scale, 0) {
			return usageErrorf("--lora-scaled wants FILE:SCALE with a number for SCALE, not %q", v)
		}
		l.adapters = append(l.adapters, loraFlag{v[:i], float32(scale)})
	}
	return nil
}

// load loads the adapters for m (they are closed with it) and returns the
// context options that apply them.
func (l *loraFlags) load(m *llama.Model) ([]llama.ContextOption, error) {
	var opts []llama.ContextOption
	for _, a := range l.adapters {
		ad, err := m.LoadAdapter(a.path)
		if err != nil {
			return nil, fmt.Errorf("--lora %s: %w", a.path, unprefixed{err})
		}
		opts = append(opts, llama.WithAdapter(ad, a.scale))
	}
	return opts, nil
}

// samplerOptions are the sampling options, as the flags set them, with
// grammar (the text of --grammar or --grammar-file, see grammarText) when
// it is not empty.
func (o *runOptions) samplerOptions(grammar string) []llama.SamplerOption {
	sampling := []llama.SamplerOption{
		llama.WithSeed(o.seed),
		llama.WithTemperature(o.Temp),
		llama.WithTopK(o.TopK),
		llama.WithTopP(o.TopP),
		llama.WithMinP(o.MinP),
		llama.WithTypicalP(o.Typical),
		llama.WithPenalties(o.RepeatLastN, o.RepeatPenalty, o.FrequencyPenalty, o.PresencePenalty),
		llama.WithMirostat(o.Mirostat, o.MirostatEnt, o.MirostatLR),
	}
	if o.Temp == 0 {
		sampling = append(sampling, llama.WithGreedy())
	}
	if grammar != "" {
		sampling = append(sampling, llama.WithGrammar(grammar, ""))
	}
	if o.IgnoreEOS {
		sampling = append(sampling, llama.WithIgnoreEOS())
	}
	return sampling
}

// grammarText is the grammar of --grammar, the contents of
// --grammar-file, or the grammar llama.cpp's converter makes of the JSON
// Schema of --json-schema or --json-schema-file (validate allows one of
// them at most).
func (o *runOptions) grammarText() (string, error) {
	switch {
	case o.GrammarFile != "":
		b, err := os.ReadFile(o.GrammarFile)
		if err != nil {
			return "", err
		}
		return string(b), nil
	case o.JSONSchema != "" || o.JSONSchemaFile != "":
		schema, flag := o.JSONSchema, "--json-schema"
		if o.JSONSchemaFile != "" {
			b, err := os.ReadFile(o.JSONSchemaFile)
			if err != nil {
				return "", err
			}
			schema, flag = string(b), "--json-schema-file"
		}
		g, err := llama.JSONSchemaGrammar(schema)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flag, unprefixed{err})
		}
		return g, nil
	}
	return o.Grammar, nil
}

// unprefixed is an error of the llama package without its "llama: "
// prefix, for an error line that names the flag first.
type unprefixed struct{ error }

func (e unprefixed) Error() string { return strings.TrimPrefix(e.error.Error(), "llama: ") }
func (e unprefixed) Unwrap() error { return e.error }

// flashAttnUsage is the help of --flash-attn for run, chat and serve.
const flashAttnUsage = "flash attention: on, off or auto, also 1, 0 or -1 (short -fa)"

// parseFlashAttn reads a value of --flash-attn as llama.cpp spells them:
// on, off, auto, or 1, 0, -1 (and true, false, yes, no), in any case.
// run, chat, serve, bench and info --fit all accept the same.
func parseFlashAttn(s string) (llama.FlashAttention, bool) {
	switch strings.ToLower(s) {
	case "on", "1", "true", "enabled", "yes":
		return llama.FlashAttentionOn, true
	case "off", "0", "false", "disabled", "no":
		return llama.FlashAttentionOff, true
	case "auto", "-1":
		return llama.FlashAttentionAuto, true
	}
	return 0, false
}

// flashAttnFlag is parseFlashAttn with the usage error of a bad value.
func flashAttnFlag(s string) (llama.FlashAttention, error) {
	fa, ok := parseFlashAttn(s)
	if !ok {
		return 0, usageErrorf("--flash-attn must be on, off or auto (or 1, 0, -1), not %q", s)
	}
	return fa, nil
}

// parseAttention parses --flash-attn, --cache-type-k and --cache-type-v,
// refusing a quantized V cache without flash attention as llama.cpp does.
func parseAttention(fa, typeK, typeV string) (llama.FlashAttention, llama.CacheType, llama.CacheType, error) {
	mode, err := flashAttnFlag(fa)
	if err != nil {
		return 0, 0, 0, err
	}
	k, err := parseCacheType("--cache-type-k", typeK)
	if err != nil {
		return 0, 0, 0, err
	}
	v, err := parseCacheType("--cache-type-v", typeV)
	if err != nil {
		return 0, 0, 0, err
	}
	if mode == llama.FlashAttentionOff && quantized(v) {
		return 0, 0, 0, usageErrorf("a quantized V cache (--cache-type-v %s) needs flash attention: use --flash-attn on or auto", typeV)
	}
	return mode, k, v, nil
}

// checkComputeFlags checks --ubatch-size, --threads, --threads-batch (0
// becomes --threads) and --n-gpu-layers, which run and serve share.
func checkComputeFlags(ubatch, threads int, threadsBatch *int, gpuLayers int) error {
	if ubatch < 1 {
		return usageErrorf("--ubatch-size must be positive, not %d", ubatch)
	}
	if threads < 1 {
		return usageErrorf("--threads must be positive, not %d", threads)
	}
	if *threadsBatch < 0 {
		return usageErrorf("--threads-batch must be positive, not %d", *threadsBatch)
	}
	if *threadsBatch == 0 {
		*threadsBatch = threads
	}
	if gpuLayers < -1 {
		return usageErrorf("--n-gpu-layers must be -1 (all) or at least 0, not %d", gpuLayers)
	}
	return nil
}
