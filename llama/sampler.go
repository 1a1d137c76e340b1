package llama

/*
#include <stdlib.h>
#include "llama.h"
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"
)

// DefaultSeed asks for a random seed, as llama.cpp's LLAMA_DEFAULT_SEED.
const DefaultSeed = math.MaxUint32

// SamplerStage names one stage of a sampler chain, for WithSamplerOrder.
type SamplerStage string

// Sampler stages, named as llama.cpp's --samplers.
const (
	StagePenalties   SamplerStage = "penalties"
	StageDRY         SamplerStage = "dry"
	StageTopNSigma   SamplerStage = "top_n_sigma"
	StageTopK        SamplerStage = "top_k"
	StageTypicalP    SamplerStage = "typ_p"
	StageTopP        SamplerStage = "top_p"
	StageMinP        SamplerStage = "min_p"
	StageXTC         SamplerStage = "xtc"
	StageTemperature SamplerStage = "temperature"
)

// DefaultSamplerOrder is llama.cpp's default chain order.
var defaultOrder = []SamplerStage{
	StagePenalties, StageDRY, StageTopNSigma, StageTopK, StageTypicalP,
	StageTopP, StageMinP, StageXTC, StageTemperature,
}

// SamplerConfig holds every sampling parameter. Its zero value is not
// useful; DefaultSamplerConfig returns llama.cpp's defaults, which the
// SamplerOptions modify.
type SamplerConfig struct {
	Seed           uint32
	Temperature    float32 // <= 0: greedy
	DynTempRange   float32
	DynTempExp     float32
	TopK           int     // <= 0: off
	TopP           float32 // 1: off
	MinP           float32 // 0: off
	TypicalP       float32 // 1: off
	TopNSigma      float32 // <= 0: off
	XTCProbability float32 // 0: off
	XTCThreshold   float32
	MinKeep        int

	RepeatLastN      int // 0: off, -1: ContextSize; at most MaxSamplerWindow
	RepeatPenalty    float32
	FrequencyPenalty float32
	PresencePenalty  float32

	DRYMultiplier    float32 // 0: off
	DRYBase          float32
	DRYAllowedLength int
	DRYLastN         int // -1: ContextSize; at most MaxSamplerWindow
	DRYBreakers      []string

	Mirostat    int // 0 off, 1 or 2
	MirostatTau float32
	MirostatEta float32

	LogitBias map[TokenID]float32
	IgnoreEOS bool // ban the end-of-generation tokens, over LogitBias

	Grammar         string   // GBNF; "" for none
	GrammarRoot     string   // start rule, default "root"
	GrammarPatterns []string // lazy grammar: regexes that start it
	GrammarTokens   []TokenID

	Order []SamplerStage

	// ContextSize is the size of the context the sampler is for, which a
	// window of -1 stands for; 0 means the model's trained context.
	// Generate sets it to its sequence's context size.
	ContextSize int
}

// MaxSamplerWindow is the largest penalty window (RepeatLastN, DRYLastN)
// and ContextSize a sampler accepts: the largest context WithContextSize
// accepts. llama.cpp allocates the windows in full when it makes the
// sampler.
const MaxSamplerWindow = 1 << 24

// DefaultSamplerConfig returns llama.cpp's default sampling parameters
// (common_params_sampling): temperature 0.8, top-k 40, top-p 0.95, min-p
// 0.05, a random seed and no penalties.
func DefaultSamplerConfig() SamplerConfig {
	return SamplerConfig{
		Seed: DefaultSeed, Temperature: 0.8, DynTempExp: 1, TopK: 40, TopP: 0.95, MinP: 0.05,
		TypicalP: 1, TopNSigma: -1, XTCThreshold: 0.1, RepeatLastN: 64, RepeatPenalty: 1,
		DRYBase: 1.75, DRYAllowedLength: 2, DRYLastN: -1,
		DRYBreakers: []string{"\n", ":", "\"", "*"},
		MirostatTau: 5, MirostatEta: 0.1, GrammarRoot: "root",
	}
}

// SamplerOption modifies a SamplerConfig (an option of one's own may set
// any field). NewSampler refuses an invalid configuration.
type SamplerOption func(*SamplerConfig)

// WithGreedy always picks the most likely token.
func WithGreedy() SamplerOption { return func(c *SamplerConfig) { c.Temperature = 0 } }

// WithSeed seeds the random choice; DefaultSeed picks a random seed.
func WithSeed(seed uint32) SamplerOption { return func(c *SamplerConfig) { c.Seed = seed } }

// WithTemperature sets the temperature; 0 or less means greedy.
func WithTemperature(t float32) SamplerOption { return func(c *SamplerConfig) { c.Temperature = t } }

// WithDynamicTemperature varies the temperature by entropy within
// [t-rangeWidth, t+rangeWidth] with the given exponent.
func WithDynamicTemperature(rangeWidth, exponent float32) SamplerOption {
	return func(c *SamplerConfig) { c.DynTempRange, c.DynTempExp = rangeWidth, exponent }
}

// WithTopK keeps the k most likely tokens; 0 disables it.
func WithTopK(k int) SamplerOption { return func(c *SamplerConfig) { c.TopK = k } }

// WithTopP keeps the most likely tokens whose probabilities sum to p.
func WithTopP(p float32) SamplerOption { return func(c *SamplerConfig) { c.TopP = p } }

// WithMinP drops tokens less likely than p times the most likely one.
func WithMinP(p float32) SamplerOption { return func(c *SamplerConfig) { c.MinP = p } }

// WithTypicalP applies locally typical sampling with mass p.
func WithTypicalP(p float32) SamplerOption { return func(c *SamplerConfig) { c.TypicalP = p } }

// WithTopNSigma keeps tokens within n standard deviations of the top logit.
func WithTopNSigma(n float32) SamplerOption { return func(c *SamplerConfig) { c.TopNSigma = n } }

// WithXTC applies "exclude top choices" with the given probability and
// threshold.
func WithXTC(probability, threshold float32) SamplerOption {
	return func(c *SamplerConfig) { c.XTCProbability, c.XTCThreshold = probability, threshold }
}

// WithSamplerContextSize sets ContextSize, the context size a penalty
// window of -1 stands for (0: the model's trained context).
func WithSamplerContextSize(n int) SamplerOption {
	return func(c *SamplerConfig) { c.ContextSize = n }
}

// WithPenalties penalises tokens among the last lastN (-1: the context):
// repeat divides their logits, frequency and presence subtract.
func WithPenalties(lastN int, repeat, frequency, presence float32) SamplerOption {
	return func(c *SamplerConfig) {
		c.RepeatLastN, c.RepeatPenalty, c.FrequencyPenalty, c.PresencePenalty = lastN, repeat, frequency, presence
	}
}

// WithDRY applies the DRY ("don't repeat yourself") penalty; breakers nil
// keeps the default sequence breakers.
func WithDRY(multiplier, base float32, allowedLength, lastN int, breakers []string) SamplerOption {
	return func(c *SamplerConfig) {
		c.DRYMultiplier, c.DRYBase, c.DRYAllowedLength, c.DRYLastN = multiplier, base, allowedLength, lastN
		if breakers != nil {
			c.DRYBreakers = breakers
		}
	}
}

// WithMirostat uses Mirostat version 1 or 2 (0 turns it off) with target
// entropy tau and learning rate eta. It replaces the other samplers.
func WithMirostat(version int, tau, eta float32) SamplerOption {
	return func(c *SamplerConfig) { c.Mirostat, c.MirostatTau, c.MirostatEta = version, tau, eta }
}

// WithLogitBias adds bias to the logits of the given tokens (-Inf bans).
func WithLogitBias(bias map[TokenID]float32) SamplerOption {
	return func(c *SamplerConfig) { c.LogitBias = bias }
}

// WithIgnoreEOS bans the model's end-of-generation tokens, so that a
// generation goes on until another limit ends it.
func WithIgnoreEOS() SamplerOption { return func(c *SamplerConfig) { c.IgnoreEOS = true } }

// WithGrammar constrains output to a GBNF grammar starting at rule root
// ("" means "root"). A grammar that does not parse makes NewSampler return
// ErrInvalidGrammar with llama.cpp's parse error. (With an installed
// llama.cpp, -tags llama_system, the error says less, and llama.cpp prints
// its parse error to stderr, bypassing SetLogger.)
//
// So do grammars whose cost in llama.cpp is out of bounds, measured in Go
// before llama.cpp sees them: a repetition whose minimum exceeds its
// maximum, more than about two million elements once repetitions are
// expanded, groups nested more than 256 deep, left recursion (including
// through rules that can be empty, which llama.cpp misses), and rules
// whose ways to begin or continue would take llama.cpp's parser more than
// about 260000 steps for one character (nested optional items, many
// alternatives that each lead to many more, recursion that can end in
// several ways).
func WithGrammar(gbnf, root string) SamplerOption {
	return func(c *SamplerConfig) {
		c.Grammar, c.GrammarRoot, c.GrammarPatterns, c.GrammarTokens = gbnf, root, nil, nil
	}
}

// WithLazyGrammar constrains output to a GBNF grammar only once the text
// matches one of the trigger patterns (regular expressions) or one of the
// trigger tokens appears, as for tool calls.
func WithLazyGrammar(gbnf, root string, patterns []string, tokens []TokenID) SamplerOption {
	return func(c *SamplerConfig) {
		c.Grammar, c.GrammarRoot, c.GrammarPatterns, c.GrammarTokens = gbnf, root, patterns, tokens
	}
}

// WithSamplerOrder sets the order of the chain's stages; stages not listed
// are left out.
func WithSamplerOrder(stages ...SamplerStage) SamplerOption {
	return func(c *SamplerConfig) { c.Order = stages }
}

// Sampler picks tokens from a context's logits with a llama.cpp sampler
// chain. It is for one goroutine at a time; concurrent calls are
// serialised. Close it when done; closing its Model closes it too.
type Sampler struct {
	mu      sync.Mutex
	m       *Model
	c       *C.struct_llama_sampler
	grammar *C.struct_llama_sampler // the grammar stage inside c, if any
	config  SamplerConfig
	closed  bool
}

// NewSampler builds a sampler chain for the model. With no options it uses
// DefaultSamplerConfig.
func (m *Model) NewSampler(opts ...SamplerOption) (*Sampler, error) {
	cfg := DefaultSamplerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.check(m); err != nil {
		return nil, err
	}
	var eogs []TokenID
	if cfg.IgnoreEOS {
		eogs = m.eogTokens() // before the lock, which the cache takes
	}
	if err := m.rlock(); err != nil {
		return nil, err
	}
	defer m.mu.RUnlock()
	s := &Sampler{m: m, config: cfg}
	if err := s.build(eogs); err != nil {
		return nil, err
	}
	m.addChild(s)
	return s, nil
}

func (cfg *SamplerConfig) check(m *Model) error {
	for name, v := range map[string]float32{
		"top-p": cfg.TopP, "min-p": cfg.MinP, "typical-p": cfg.TypicalP, "xtc probability": cfg.XTCProbability,
		"repeat penalty": cfg.RepeatPenalty, "DRY multiplier": cfg.DRYMultiplier, "DRY base": cfg.DRYBase,
		"mirostat tau": cfg.MirostatTau, "mirostat eta": cfg.MirostatEta,
	} {
		if v != v || math.IsInf(float64(v), 0) || v < 0 {
			return invalidArg("%s %v", name, v)
		}
	}
	for name, v := range map[string]float32{
		"temperature": cfg.Temperature, "frequency penalty": cfg.FrequencyPenalty,
		"presence penalty": cfg.PresencePenalty, "top-n-sigma": cfg.TopNSigma,
		"dynamic temperature range": cfg.DynTempRange, "dynamic temperature exponent": cfg.DynTempExp,
		"xtc threshold": cfg.XTCThreshold,
	} {
		if v != v || math.IsInf(float64(v), 0) {
			return invalidArg("%s %v", name, v)
		}
	}
	if cfg.TopK > int(m.info.nVocab) {
		cfg.TopK = int(m.info.nVocab)
	}
	if cfg.RepeatLastN < -1 || cfg.DRYLastN < -1 || cfg.DRYAllowedLength < 0 || cfg.MinKeep < 0 {
		return invalidArg("negative sampler window")
	}
	for name, v := range map[string]int{"repeat-last-n": cfg.RepeatLastN, "DRY last-n": cfg.DRYLastN, "context size": cfg.ContextSize} {
		if v > MaxSamplerWindow {
			return invalidArg("%s %d, at most %d", name, v, MaxSamplerWindow)
		}
	}
	if cfg.ContextSize < 0 {
		return invalidArg("context size %d", cfg.ContextSize)
	}
	if cfg.Mirostat < 0 || cfg.Mirostat > 2 {
		return invalidArg("mirostat version %d", cfg.Mirostat)
	}
	for t, b := range cfg.LogitBias {
		if !m.validToken(t) {
			return fmt.Errorf("%w: logit bias for id %d", ErrInvalidToken, t)
		}
		if b != b {
			return invalidArg("logit bias NaN for token %d", t)
		}
	}
	for _, t := range cfg.GrammarTokens {
		if !m.validToken(t) {
			return fmt.Errorf("%w: grammar trigger id %d", ErrInvalidToken, t)
		}
	}
	for _, st := range cfg.Order {
		if !slicesContains(defaultOrder, st) {
			return invalidArg("unknown sampler stage %q", st)
		}
	}
	if cfg.GrammarRoot == "" {
		cfg.GrammarRoot = "root"
	}
	if strings.IndexByte(cfg.Grammar, 0) >= 0 || strings.IndexByte(cfg.GrammarRoot, 0) >= 0 {
		return fmt.Errorf("%w: NUL byte in grammar", ErrInvalidGrammar)
	}
	for _, b := range cfg.DRYBreakers {
		if strings.IndexByte(b, 0) >= 0 {
			return invalidArg("NUL byte in DRY sequence breaker")
		}
	}
	return nil
}

func slicesContains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// build creates the C chain from s.config; the caller holds the model.
// eogs are the end-of-generation tokens, with IgnoreEOS.
func (s *Sampler) build(eogs []TokenID) error {
	cfg := &s.config
	m := s.m
	params := C.llama_sampler_chain_default_params()
	params.no_perf = false
	chain := C.llama_sampler_chain_init(params)
	add := func(p *C.struct_llama_sampler) { C.llama_sampler_chain_add(chain, p) }

	if len(cfg.LogitBias) > 0 || cfg.IgnoreEOS {
		biases := make([]C.llama_logit_bias, 0, len(cfg.LogitBias)+len(eogs))
		for t, b := range cfg.LogitBias {
			if !slicesContains(eogs, t) {
				biases = append(biases, C.llama_logit_bias{token: C.llama_token(t), bias: C.float(b)})
			}
		}
		for _, t := range eogs {
			biases = append(biases, C.llama_logit_bias{token: C.llama_token(t), bias: C.float(math.Inf(-1))})
		}
		add(C.llama_sampler_init_logit_bias(C.int32_t(m.info.nVocab), C.int32_t(len(biases)), unsafe.SliceData(biases)))
	}
	if cfg.Grammar != "" {
		g, err := newGrammar(m, cfg)
		if err != nil {
			C.llama_sampler_free(chain)
			return err
		}
		add(g)
		s.grammar = g
	}

	minKeep := C.size_t(cfg.MinKeep)
	// llama.cpp reads a penalty window of -1 as 0 (off); it means the
	// context, as in llama-server.
	repeatLastN := cfg.window(m, cfg.RepeatLastN)
	switch {
	case cfg.Temperature <= 0 && cfg.Mirostat == 0:
		// Greedy still honours penalties, as llama.cpp does.
		if repeatLastN != 0 && (cfg.RepeatPenalty != 1 || cfg.FrequencyPenalty != 0 || cfg.PresencePenalty != 0) {
			add(C.llama_sampler_init_penalties(C.int32_t(repeatLastN), C.float(cfg.RepeatPenalty), C.float(cfg.FrequencyPenalty), C.float(cfg.PresencePenalty)))
		}
		add(C.llama_sampler_init_greedy())
	case cfg.Mirostat == 1:
		add(C.llama_sampler_init_temp(C.float(cfg.Temperature)))
		add(C.llama_sampler_init_mirostat(C.int32_t(m.info.nVocab), C.uint32_t(cfg.Seed), C.float(cfg.MirostatTau), C.float(cfg.MirostatEta), 100))
	case cfg.Mirostat == 2:
		add(C.llama_sampler_init_temp(C.float(cfg.Temperature)))
		add(C.llama_sampler_init_mirostat_v2(C.uint32_t(cfg.Seed), C.float(cfg.MirostatTau), C.float(cfg.MirostatEta)))
	default:
		order := cfg.Order
		if order == nil {
			order = defaultOrder
		}
		for _, st := range order {
			switch st {
			case StagePenalties:
				if repeatLastN != 0 && (cfg.RepeatPenalty != 1 || cfg.FrequencyPenalty != 0 || cfg.PresencePenalty != 0) {
					add(C.llama_sampler_init_penalties(C.int32_t(repeatLastN), C.float(cfg.RepeatPenalty), C.float(cfg.FrequencyPenalty), C.float(cfg.PresencePenalty)))
				}
			case StageDRY:
				if cfg.DRYMultiplier != 0 {
					add(newDRY(m, cfg))
				}
			case StageTopNSigma:
				if cfg.TopNSigma > 0 {
					add(C.llama_sampler_init_top_n_sigma(C.float(cfg.TopNSigma)))
				}
			case StageTopK:
				if cfg.TopK > 0 {
					add(C.llama_sampler_init_top_k(C.int32_t(cfg.TopK)))
				}
			case StageTypicalP:
				if cfg.TypicalP < 1 {
					add(C.llama_sampler_init_typical(C.float(cfg.TypicalP), minKeep))
				}
			case StageTopP:
				if cfg.TopP < 1 {
					add(C.llama_sampler_init_top_p(C.float(cfg.TopP), minKeep))
				}
			case StageMinP:
				if cfg.MinP > 0 {
					add(C.llama_sampler_init_min_p(C.float(cfg.MinP), minKeep))
				}
			case StageXTC:
				if cfg.XTCProbability > 0 {
					add(C.llama_sampler_init_xtc(C.float(cfg.XTCProbability), C.float(cfg.XTCThreshold), minKeep, C.uint32_t(cfg.Seed)))
				}
			case StageTemperature:
				add(C.llama_sampler_init_temp_ext(C.float(cfg.Temperature), C.float(cfg.DynTempRange), C.float(cfg.DynTempExp)))
			}
		}
		add(C.llama_sampler_init_dist(C.uint32_t(cfg.Seed)))
	}
	s.c = chain
	return nil
}

func newDRY(m *Model, cfg *SamplerConfig) *C.struct_llama_sampler {
	breakers := make([]*C.char, len(cfg.DRYBreakers))
	for i, b := range cfg.DRYBreakers {
		breakers[i] = C.CString(b)
	}
	defer func() {
		for _, b := range breakers {
			C.free(unsafe.Pointer(b))
		}
	}()
	var bp **C.char
	if len(breakers) > 0 {
		bp = (**C.char)(C.malloc(C.size_t(len(breakers)) * C.size_t(unsafe.Sizeof(bp))))
		defer C.free(unsafe.Pointer(bp))
		copy(unsafe.Slice(bp, len(breakers)), breakers)
	}
	return C.llama_sampler_init_dry(m.vocab, C.int32_t(cfg.contextSize(m)), C.float(cfg.DRYMultiplier), C.float(cfg.DRYBase),
		C.int32_t(cfg.DRYAllowedLength), C.int32_t(cfg.window(m, cfg.DRYLastN)), bp, C.size_t(len(breakers)))
}

// contextSize is ContextSize, or the model's trained context.
func (cfg *SamplerConfig) contextSize(m *Model) int {
	if cfg.ContextSize > 0 {
		return cfg.ContextSize
	}
	return min(max(m.info.nCtxTrain, 0), MaxSamplerWindow)
}

// window resolves a penalty window of -1 to the context size.
func (cfg *SamplerConfig) window(m *Model, n int) int {
	if n == -1 {
		return cfg.contextSize(m)
	}
	return n
}

func newGrammar(m *Model, cfg *SamplerConfig) (*C.struct_llama_sampler, error) {
	if err := checkGrammar(cfg.Grammar, cfg.GrammarRoot); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidGrammar, err)
	}
	gs := C.CString(cfg.Grammar)
	defer C.free(unsafe.Pointer(gs))
	root := C.CString(cfg.GrammarRoot)
	defer C.free(unsafe.Pointer(root))
	lazy := len(cfg.GrammarPatterns) > 0 || len(cfg.GrammarTokens) > 0
	var pats **C.char
	if len(cfg.GrammarPatterns) > 0 {
		pats = (**C.char)(C.malloc(C.size_t(len(cfg.GrammarPatterns)) * C.size_t(unsafe.Sizeof(pats))))
		defer C.free(unsafe.Pointer(pats))
		ps := unsafe.Slice(pats, len(cfg.GrammarPatterns))
		for i, p := range cfg.GrammarPatterns {
			if strings.IndexByte(p, 0) >= 0 {
				return nil, fmt.Errorf("%w: NUL byte in trigger pattern", ErrInvalidGrammar)
			}
			ps[i] = C.CString(p)
			defer C.free(unsafe.Pointer(ps[i]))
		}
	}
	var toks *C.llama_token
	if len(cfg.GrammarTokens) > 0 {
		toks = (*C.llama_token)(unsafe.Pointer(unsafe.SliceData(cfg.GrammarTokens)))
	}
	var errbuf [256]C.char
	g := C.llamago_sampler_init_grammar(m.vocab, gs, root, C.bool(lazy), pats, C.size_t(len(cfg.GrammarPatterns)),
		toks, C.size_t(len(cfg.GrammarTokens)), &errbuf[0], C.size_t(len(errbuf)))
	if g == nil {
		// llama.cpp's parse errors quote the rest of the grammar: keep
		// its first line, and name an empty rest.
		msg, _, _ := strings.Cut(C.GoString(&errbuf[0]), "\n")
		if strings.HasSuffix(msg, " at ") {
			msg += "the end"
		}
		return nil, fmt.Errorf("%w: %s", ErrInvalidGrammar, msg)
	}
	return g, nil
}

// Config returns the sampler's configuration.
func (s *Sampler) Config() SamplerConfig { return s.config }

// Sample picks a token from the logits of the i-th token of the context's
// last decoded batch (-1: the last), and accepts it (see Accept).
func (s *Sampler) Sample(c *Context, i int) (TokenID, error) {
	// The context first, as the generations that share the sampler take
	// them.
	if err := c.lock(); err != nil {
		return NullToken, err
	}
	defer c.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return NullToken, ErrClosed
	}
	return s.sample(c, i)
}

// sample is Sample with both locks held.
func (s *Sampler) sample(c *Context, i int) (TokenID, error) {
	if c.m != s.m {
		return NullToken, invalidArg("sampler and context belong to different models")
	}
	if i < 0 {
		i += len(c.outputs)
	}
	if i < 0 || i >= len(c.outputs) || !c.outputs[i] {
		return NullToken, fmt.Errorf("%w: index %d", ErrNoLogits, i)
	}
	t := TokenID(C.llamago_sampler_sample(s.c, c.c, C.int32_t(i)))
	if t < 0 {
		return NullToken, fmt.Errorf("llama: sampling failed at batch index %d", i)
	}
	return t, nil
}

// Accept tells the sampler that t was chosen, updating the state of
// penalties, grammar and Mirostat. Sample already accepts what it returns;
// call Accept for tokens chosen otherwise, such as prompt tokens for the
// repetition penalty. A token the grammar does not allow is refused with
// ErrInvalidToken.
func (s *Sampler) Accept(t TokenID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.m.checkToken(t); err != nil {
		return err
	}
	if s.grammar != nil && !C.llamago_sampler_allows(s.grammar, C.llama_token(t)) {
		return fmt.Errorf("%w: the grammar does not allow token %d here", ErrInvalidToken, t)
	}
	if !C.llamago_sampler_accept(s.c, C.llama_token(t)) {
		return fmt.Errorf("%w: the sampler refused token %d", ErrInvalidToken, t)
	}
	return nil
}

// Reset clears the sampler's state (penalty history, grammar position,
// Mirostat); the seed's random stream continues.
func (s *Sampler) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		C.llama_sampler_reset(s.c)
	}
}

// Seed returns the seed in use (the random one, with DefaultSeed).
func (s *Sampler) Seed() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	return uint32(C.llama_sampler_get_seed(s.c))
}

// Close frees the sampler. It is safe to call more than once.
func (s *Sampler) Close() error {
	if s.free() {
		s.m.removeChild(s)
	}
	return nil
}

func (s *Sampler) closeFromModel() { s.free() }

func (s *Sampler) free() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	C.llama_sampler_free(s.c)
	s.c, s.grammar, s.closed = nil, nil, true
	return true
}
