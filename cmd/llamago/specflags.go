package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/spf13/pflag"

	"github.com/llamago/llamago/llama"
)

// specFlags are the speculative decoding flags of run, chat and serve,
// with llama.cpp's names: a draft model (--model-draft, short -md) or
// prompt lookup (--spec-ngram), and the draft's limits.
type specFlags struct {
	ModelDraft string
	DraftMax   int
	DraftMin   int
	DraftPMin  float32
	NGram      int

	draft *llama.Model // loaded by load
}

func addSpecFlags(f *pflag.FlagSet, s *specFlags) {
	def := llama.DefaultSpeculation()
	f.StringVar(&s.ModelDraft, "model-draft", "", "draft model for speculative decoding, with the model's vocabulary (short -md)")
	f.IntVar(&s.DraftMax, "draft-max", def.DraftMax, fmt.Sprintf("most tokens drafted per step (speculative decoding; at most %d)", llama.MaxDraft))
	f.IntVar(&s.DraftMin, "draft-min", def.DraftMin, "fewest drafted tokens worth checking (speculative decoding)")
	f.Float32Var(&s.DraftPMin, "draft-p-min", def.PMin, "lowest probability of a drafted token under the draft model")
	f.IntVar(&s.NGram, "spec-ngram", 0, "speculative decoding by prompt lookup: draft what followed the last N tokens earlier in the prompt or output (0: off)")
}

// validate checks the flags.
func (s *specFlags) validate() error {
	if s.ModelDraft != "" && s.NGram > 0 {
		return usageErrorf("give --model-draft or --spec-ngram, not both")
	}
	if s.NGram < 0 {
		return usageErrorf("--spec-ngram must be 0 (off) or positive, not %d", s.NGram)
	}
	if s.DraftMax < 0 || s.DraftMax > llama.MaxDraft {
		return usageErrorf("--draft-max must be between 0 and %d, not %d", llama.MaxDraft, s.DraftMax)
	}
	if s.DraftMin < 0 || s.DraftMin > s.DraftMax {
		return usageErrorf("--draft-min must be between 0 and --draft-max (%d), not %d", s.DraftMax, s.DraftMin)
	}
	if !(s.DraftPMin >= 0 && s.DraftPMin <= 1) {
		return usageErrorf("--draft-p-min must be between 0 and 1, not %v", s.DraftPMin)
	}
	return nil
}

// on reports whether the flags ask for speculative decoding.
func (s *specFlags) on() bool { return s.ModelDraft != "" || s.NGram > 0 }

// speculation is the llama.Speculation the flags set.
func (s *specFlags) speculation() llama.Speculation {
	return llama.Speculation{DraftMax: s.DraftMax, DraftMin: s.DraftMin, PMin: s.DraftPMin, NGram: s.NGram}
}

// describe names the speculation, for bench's results.
func (s *specFlags) describe() string {
	src := fmt.Sprintf("ngram %d", s.NGram)
	if s.ModelDraft != "" {
		src = "draft " + filepath.Base(s.ModelDraft)
	}
	return fmt.Sprintf("%s, max %d, min %d, p-min %g", src, s.DraftMax, s.DraftMin, s.DraftPMin)
}

// generateOptions are the generation options the flags set: none without
// speculation.
func (s *specFlags) generateOptions() []llama.GenerateOption {
	if !s.on() {
		return nil
	}
	return []llama.GenerateOption{llama.WithSpeculation(s.speculation())}
}

// load loads the draft model, if any, with opts; the caller closes it
// (s.close).
func (s *specFlags) load(ctx context.Context, opts ...llama.ModelOption) error {
	if s.ModelDraft == "" {
		return nil
	}
	d, err := loadModel(ctx, s.ModelDraft, opts...)
	if err != nil {
		return fmt.Errorf("--model-draft: %w", err)
	}
	s.draft = d
	return nil
}

// close closes the draft model, if one was loaded.
func (s *specFlags) close() {
	if s.draft != nil {
		s.draft.Close()
	}
}

// contextOptions give the context the draft model, if any.
func (s *specFlags) contextOptions() []llama.ContextOption {
	if s.draft == nil {
		return nil
	}
	return []llama.ContextOption{llama.WithDraftModel(s.draft)}
}

// printSpecTimings prints the drafts' line of --timings.
func printSpecTimings(w io.Writer, s llama.Stats) {
	if s.DraftTokens == 0 {
		return
	}
	fmt.Fprintf(w, "draft:      %d tokens drafted, %d accepted (%.1f%%)\n",
		s.DraftTokens, s.AcceptedTokens, 100*s.AcceptanceRate())
}
