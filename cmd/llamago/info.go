package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/gguf"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/models"
)

// infoOptions are the flags and streams of "llamago info".
type infoOptions struct {
	IO *iostreams

	Model      string
	CtxSize    int // 0: the trained context
	CacheTypeK string
	CacheTypeV string
	JSON       bool
	Template   bool
	Fit        fitFlags // --fit and the offloading flags it plans with
}

func newInfoCmd(streams *iostreams, runF func(*infoOptions) error) *cobra.Command {
	opts := &infoOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "info MODEL [flags]",
		Short: "Describe a model file without loading it",
		Long: "Describe a GGUF model from its metadata and tensor table, without loading\n" +
			"the weights: architecture, parameters, quantization, size, trained context,\n" +
			"layer sizes, vocabulary, special tokens, chat template and the types of its\n" +
			"tensors, with an estimate of the memory its weights and KV cache need for a\n" +
			"context of --ctx-size tokens (compute buffers not included).\n\n" +
			"--fit plans, without loading, where llama.cpp would put the layers on the\n" +
			"devices of this machine (see llamago devices) with the offloading flags\n" +
			"given, and the memory each device would need: weights, KV cache and an\n" +
			"estimate of the compute buffers; and the most layers that fit on the GPUs.\n\n" +
			"MODEL is a path or any reference that -m accepts; info does not download.",
		Example: `  llamago info stories260K.gguf
  llamago info model.gguf -c 8192 -ctk q8_0 -ctv q8_0
  llamago info model.gguf --template
  llamago info model.gguf --json
  llamago info model.gguf --fit -c 8192 -ngl 20`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("want one model, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Model = args[0]
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runInfo(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.IntVarP(&opts.CtxSize, "ctx-size", "c", 0, "context size of the memory estimate (0: the model's trained context)")
	f.StringVar(&opts.CacheTypeK, "cache-type-k", "f16", "KV cache type for K in the estimate: "+cacheTypeNames+" (short -ctk)")
	f.StringVar(&opts.CacheTypeV, "cache-type-v", "f16", "KV cache type for V in the estimate, as --cache-type-k (short -ctv)")
	f.BoolVar(&opts.Template, "template", false, "print the whole chat template")
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object")
	addFitFlags(f, &opts.Fit)
	return cmd
}

func (o *infoOptions) validate() error {
	if o.CtxSize < 0 {
		return usageErrorf("--ctx-size must be 0 (the model's trained context) or positive, not %d", o.CtxSize)
	}
	if _, err := parseCacheType("--cache-type-k", o.CacheTypeK); err != nil {
		return err
	}
	if _, err := parseCacheType("--cache-type-v", o.CacheTypeV); err != nil {
		return err
	}
	if o.Fit.Fit {
		return o.Fit.validate()
	}
	return nil
}

// infoJSON is the object "llamago info --json" prints: models.Info and the
// memory estimate.
type infoJSON struct {
	models.Info
	Memory models.MemoryEstimate `json:"memory"`
	Fit    *llama.FitPlan        `json:"fit,omitempty"`
}

func runInfo(ctx context.Context, opts *infoOptions) error {
	path, err := findModel(ctx, opts.Model, false)
	if err != nil {
		return err
	}
	f, err := openGGUF(path)
	if err != nil {
		return err
	}
	in := models.Inspect(path, f)
	est, err := in.EstimateMemory(opts.CtxSize, opts.CacheTypeK, opts.CacheTypeV)
	if err != nil {
		return err
	}
	var plan *llama.FitPlan
	if opts.Fit.Fit {
		typeK, _ := llama.ParseCacheType(opts.CacheTypeK)
		typeV, _ := llama.ParseCacheType(opts.CacheTypeV)
		if plan, err = opts.Fit.plan(f, nil, opts.CtxSize, typeK, typeV); err != nil {
			return err
		}
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(infoJSON{Info: in, Memory: est, Fit: plan})
	}
	if err := printInfo(opts.IO.Out, f, in, est, opts.Template); err != nil {
		return err
	}
	if plan != nil {
		var b strings.Builder
		printFit(&b, plan)
		_, err = io.WriteString(opts.IO.Out, b.String())
	}
	return err
}

// openGGUF reads the metadata of the GGUF file at path. For the first part
// of a split model (NAME-00001-of-0000N.gguf), the tensors and sizes of
// the other parts are added, so that the totals are those of the model.
func openGGUF(path string) (*gguf.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a GGUF file", path)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, ggufError(path, err)
	}
	count, _ := f.Uint("split.count")
	m := splitPartRE.FindStringSubmatch(filepath.Base(path))
	if count <= 1 || m == nil || m[2] != "00001" {
		return f, nil
	}
	if n, _ := strconv.Atoi(m[3]); uint64(n) != count {
		return nil, fmt.Errorf("%s: split.count is %d, but the name says %s parts", path, count, m[3])
	}
	for k := 2; k <= int(count); k++ {
		part := filepath.Join(filepath.Dir(path), fmt.Sprintf("%s-%05d-of-%s.gguf", m[1], k, m[3]))
		pf, err := gguf.Open(part)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("split model %s: part %s is missing", path, part)
			}
			return nil, ggufError(part, err)
		}
		f.Tensors = append(f.Tensors, pf.Tensors...)
		f.Size += pf.Size
	}
	return f, nil
}

// splitPartRE matches the name of a part of a split model.
var splitPartRE = regexp.MustCompile(`^(.*)-([0-9]{5})-of-([0-9]{5})\.gguf$`)

// ggufError names the file in an error of gguf.Open, which does not for a
// malformed file.
func ggufError(path string, err error) error {
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// vocabTypes names llama.cpp's tokenizer models (tokenizer.ggml.model).
var vocabTypes = map[string]string{
	"llama": "SPM", "gpt2": "BPE", "bert": "WPM", "t5": "UGM", "rwkv": "RWKV", "plamo2": "PLaMo2", "none": "none",
}

// specialTokenOrder is the order special tokens are printed in.
var specialTokenOrder = []string{"bos", "eos", "eot", "eom", "unknown", "separator", "padding", "mask", "fim_pre", "fim_suf", "fim_mid"}

// printInfo writes the human-readable description: one "label  value" line
// each, the values aligned.
func printInfo(w io.Writer, f *gguf.File, in models.Info, est models.MemoryEstimate, fullTemplate bool) error {
	var b strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "%-16s%s\n", label, fmt.Sprintf(format, args...))
	}
	line("file", "%s", in.Path)
	if in.Name != "" {
		line("name", "%s", in.Name)
	}
	line("architecture", "%s", dash(in.Architecture))
	line("parameters", "%s (%d)", humanCount(in.Parameters), in.Parameters)
	bpw := ""
	if in.Parameters > 0 {
		bpw = fmt.Sprintf(", %.2f bits per weight", float64(in.WeightsSize)*8/float64(in.Parameters))
	}
	ft := in.FileType
	if names := in.TensorTypeNames(); ft == "unknown" && len(names) > 0 {
		ft += " (most tensors " + names[0] + ")"
	}
	line("file type", "%s%s", ft, bpw)
	line("size", "%s (%d bytes; weights %s)", humanBytes(in.FileSize), in.FileSize, humanBytes(in.WeightsSize))
	line("gguf version", "%d", in.GGUFVersion)
	if in.ContextLength > 0 {
		line("context", "%d tokens (trained)", in.ContextLength)
	}
	if in.EmbeddingSize > 0 {
		line("embedding", "%d", in.EmbeddingSize)
	}
	if in.Layers > 0 {
		line("layers", "%d", in.Layers)
	}
	if in.Heads > 0 {
		heads := fmt.Sprintf("%d, %d for K and V", in.Heads, in.KVHeads)
		if in.EmbeddingSize > 0 {
			heads += fmt.Sprintf(" (size %d)", in.EmbeddingSize/in.Heads)
		}
		line("heads", "%s", heads)
	}
	if in.FeedForward > 0 {
		line("feed forward", "%d", in.FeedForward)
	}
	if in.ExpertCount > 0 {
		line("experts", "%d", in.ExpertCount)
	}
	if in.VocabModel != "" || in.VocabSize > 0 {
		typ := vocabTypes[in.VocabModel]
		if typ == "" {
			typ = dash(in.VocabModel)
		} else {
			typ += " (" + in.VocabModel + ")"
		}
		v := fmt.Sprintf("%s, %d tokens", typ, in.VocabSize)
		if in.VocabPre != "" {
			v += ", pre-tokenizer " + in.VocabPre
		}
		line("vocabulary", "%s", v)
	}
	if len(in.SpecialTokens) > 0 {
		var toks []string
		if v, ok := f.Lookup("tokenizer.ggml.tokens"); ok {
			toks = v.Strings()
		}
		var parts []string
		for _, name := range specialTokenOrder {
			id, ok := in.SpecialTokens[name]
			if !ok {
				continue
			}
			s := fmt.Sprintf("%s %d", name, id)
			if id >= 0 && id < len(toks) {
				s += " " + strconv.Quote(toks[id])
			}
			parts = append(parts, s)
		}
		line("special tokens", "%s", strings.Join(parts, ", "))
	}
	if p := in.Projector; p != nil {
		printProjector(line, p)
	}
	switch {
	case in.Projector != nil:
	case in.ChatTemplate == "":
		line("chat template", "none")
	case fullTemplate:
		line("chat template", "%d bytes, below", len(in.ChatTemplate))
	default:
		line("chat template", "%s", truncateTemplate(in.ChatTemplate, 60))
	}
	line("tensors", "%d", in.TensorCount)
	names := in.TensorTypeNames()
	width, most := 0, 0
	for _, n := range names {
		width = max(width, len(n))
		most = max(most, in.TensorTypes[n])
	}
	for _, n := range names {
		c := in.TensorTypes[n]
		bar := strings.Repeat("█", max(1, c*24/most))
		line("", "%-*s %5d %5.1f%%  %s", width, n, c, 100*float64(c)/float64(max(in.TensorCount, 1)), bar)
	}
	mem := fmt.Sprintf("%s for %d tokens: weights %s", humanBytes(est.Total), est.ContextSize, humanBytes(est.Weights))
	switch {
	case in.Projector != nil:
		mem = fmt.Sprintf("weights %s, and the encoder's compute buffers", humanBytes(est.Weights))
	case est.KVCache > 0:
		mem += fmt.Sprintf(" + KV cache %s (K %s, V %s)", humanBytes(est.KVCache), est.CacheTypeK, est.CacheTypeV)
	default:
		mem += ", no KV cache"
	}
	line("memory", "%s", mem)
	if in.ChatTemplate != "" && fullTemplate {
		b.WriteString("\n")
		b.WriteString(in.ChatTemplate)
		if !strings.HasSuffix(in.ChatTemplate, "\n") {
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// truncateTemplate returns the start of a chat template on one line: runs
// of white space become one space, and past n characters it is cut.
func truncateTemplate(t string, n int) string {
	s := strings.Join(strings.Fields(t), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return fmt.Sprintf("%s… (%d bytes; --template prints it)", string(r[:n]), len(t))
}

// humanCount formats a count as llama.cpp does parameter counts: "292.80 K",
// "1.10 B".
func humanCount(n uint64) string {
	switch {
	case n >= 1e12:
		return fmt.Sprintf("%.2f T", float64(n)/1e12)
	case n >= 1e9:
		return fmt.Sprintf("%.2f B", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f M", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.2f K", float64(n)/1e3)
	}
	return strconv.FormatUint(n, 10)
}
