package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llamago/llamago/chat"
	"github.com/llamago/llamago/llama"
)

// Defaults of Config.
const (
	DefaultParallel     = 4
	DefaultSlotContext  = 4096 // or the model's trained context, if smaller
	DefaultBatchSize    = 2048
	DefaultUBatchSize   = 512
	DefaultQueueSize    = 64
	DefaultMaxBodyBytes = 8 << 20
	DefaultReadTimeout  = time.Minute
	DefaultWriteTimeout = 10 * time.Minute
	DefaultEmbedContext = 2048 // or SlotContext, if smaller

	// completionMaxTokens is the max_tokens of a text completion that gives
	// none: OpenAI's default for the legacy endpoint.
	completionMaxTokens = 16
	// MaxChoices is the most choices (n) of one request. Choices beyond
	// Config.Parallel run as more tasks, which wait in the queue for
	// slots like other requests (counted against QueueSize).
	MaxChoices = 128
	maxStops   = 16
	maxPrompts = 64
)

// Config configures a Server. The zero value of every field means its
// default.
type Config struct {
	// ModelID is the model's name in responses and in /v1/models
	// (default: the model file's name without .gguf). Aliases are more
	// names listed with it. As llama-server does, a request naming any
	// model is served by the one model, and the response names ModelID;
	// with StrictModel, a request naming a model that is neither ModelID
	// nor an alias gets 404. A request without a model is served.
	ModelID     string
	Aliases     []string
	StrictModel bool

	// Parallel is the number of sequences decoded together (slots),
	// default DefaultParallel. SlotContext is the positions of each slot:
	// prompt and output together (default DefaultSlotContext, at most the
	// model's trained context). The KV cache holds Parallel × SlotContext.
	Parallel    int
	SlotContext int
	// UnifiedKV puts every sequence in one KV buffer instead of a stream
	// each (see the engine's comment): less memory for n > 1, slower
	// attention with many sequences.
	UnifiedKV bool
	// BatchSize and UBatchSize are n_batch and n_ubatch of the context.
	BatchSize, UBatchSize int
	// Threads and BatchThreads are the generation and prompt threads
	// (default llama.DefaultThreads()).
	Threads, BatchThreads int
	// ContextOptions are more options of the generation and embeddings
	// contexts: flash attention, cache types, RoPE.
	ContextOptions []llama.ContextOption
	// Draft is a draft model for speculative decoding of the generations
	// (see llama.WithDraftModel), with the model's vocabulary; the caller
	// owns it. Speculation sets how generations speculate: by default
	// with Draft, llama's defaults, and not at all without it; its NGram
	// drafts by prompt lookup, which needs no Draft. Usage reports the
	// drafted tokens accepted and rejected (completion_tokens_details).
	Draft       *llama.Model
	Speculation *llama.Speculation

	// EmbedContext is the most tokens of one embeddings input (default
	// DefaultEmbedContext, at most SlotContext).
	EmbedContext int

	// Template renders chat messages (default: chat.Resolve(model, "")).
	Template *chat.Template

	// Projector is the model's vision projector: chat messages may then
	// hold image_url parts, each placed where the template puts the
	// message's content (nil: images get 400). MaxImagePixels bounds the
	// declared sizes of a request's images, all together (default
	// llama.DefaultMaxImagePixels): PNG compresses a plain image of
	// gigapixels into a few kilobytes.
	// FetchImage, if set, fetches http(s) image URLs (FetchHTTPImage
	// does); without it only data: URLs are taken.
	Projector      *llama.Projector
	MaxImagePixels int
	FetchImage     func(ctx context.Context, url string) ([]byte, error)

	// QueueSize is the most requests that wait for a slot when every slot
	// is busy (default DefaultQueueSize; negative: none wait). Beyond it
	// requests get 503.
	QueueSize int
	// MaxPromptTokens is the most tokens of one prompt (default and at
	// most SlotContext-1). MaxTokens is the most tokens a request may ask
	// to generate, and what a chat request that does not say gets (default
	// SlotContext); generation also ends where the slot's context does.
	MaxPromptTokens int
	MaxTokens       int

	// APIKey, if set, is required as "Authorization: Bearer KEY" by every
	// route but /health.
	APIKey string
	// CORSOrigins are the origins allowed to call the API from a browser
	// ("*": any); none by default, and then no CORS headers are sent.
	CORSOrigins []string
	// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes);
	// larger ones get 413.
	MaxBodyBytes int64
	// ReadTimeout bounds reading a request (default DefaultReadTimeout).
	// WriteTimeout bounds each write of a response (default
	// DefaultWriteTimeout): a stream may run longer, but not stall.
	// Negative values mean no limit.
	ReadTimeout, WriteTimeout time.Duration

	// Logger receives a line per request and the server's errors
	// (default: discarded).
	Logger *slog.Logger
}

// Server is an OpenAI-compatible HTTP server for one model. Its handler
// serves:
//
//	POST /v1/chat/completions           chat, streaming with SSE
//	POST /v1/completions                text completion
//	POST /v1/engines/{engine}/completions  the same, for legacy clients
//	POST /v1/embeddings                 embeddings
//	GET  /v1/models, /v1/models/{id}    the model
//	GET  /health                        liveness
//	GET  /metrics                       Prometheus metrics
//	POST /tokenize, /detokenize         llama-server's tokenizer routes
//
// The /v1 routes also answer without the /v1 prefix.
type Server struct {
	cfg     Config
	model   *llama.Model
	tmpl    *chat.Template
	stops   []string // the chat template's end-of-turn markers
	eng     *engine
	emb     *embedder
	scorer  *scorer // prompt logprobs of completions with echo
	met     *metrics
	handler http.Handler
	names   []string
	created int64

	toolFormat  chat.ToolFormat // how the template's model writes tool calls
	fingerprint string          // system_fingerprint: the model and llama.cpp build

	shutting atomic.Bool
	mu       sync.Mutex
	srv      *http.Server
	base     context.Context // of every request; cancelled to stop them
	stop     context.CancelFunc
	closed   bool
}

// New makes a server for a loaded model, which the caller keeps and closes
// after the server.
func New(m *llama.Model, cfg Config) (*Server, error) {
	if err := cfg.fill(m); err != nil {
		return nil, err
	}
	if sp := cfg.Speculation; sp != nil {
		if err := sp.Validate(); err != nil {
			return nil, fmt.Errorf("server: speculation: %w", err)
		}
		if sp.DraftMax > 0 && sp.NGram == 0 && cfg.Draft == nil {
			return nil, errors.New("server: speculation with a draft model, and Config.Draft is nil")
		}
	}
	s := &Server{cfg: cfg, model: m, tmpl: cfg.Template, met: newMetrics(), created: time.Now().Unix()}
	if s.tmpl == nil {
		t, err := chat.Resolve(m, "")
		if err != nil {
			return nil, fmt.Errorf("server: the model's chat template: %w (choose another)", err)
		}
		s.tmpl = t
	}
	s.stops = templateStops(m, s.tmpl)
	s.toolFormat = chat.DetectToolFormat(s.tmpl)
	s.fingerprint = fingerprint(m)
	s.names = append([]string{cfg.ModelID}, cfg.Aliases...)
	ctxOpts := append([]llama.ContextOption{
		llama.WithThreads(cfg.Threads), llama.WithBatchThreads(cfg.BatchThreads),
	}, cfg.ContextOptions...)
	eng, err := newEngine(m, engineConfig{
		parallel: cfg.Parallel, slotCtx: cfg.SlotContext, nBatch: cfg.BatchSize, nUbatch: cfg.UBatchSize,
		queue: cfg.QueueSize, unified: cfg.UnifiedKV, ctxOpts: ctxOpts,
		draft: cfg.Draft, spec: cfg.Speculation,
	}, s.met, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s.eng = eng
	s.emb = newEmbedder(m, cfg.EmbedContext, ctxOpts)
	s.scorer = newScorer(m, cfg.SlotContext, ctxOpts)
	s.base, s.stop = context.WithCancel(context.Background())
	s.handler = s.routes()
	return s, nil
}

// fill sets the defaults and checks the values.
func (c *Config) fill(m *llama.Model) error {
	if m == nil || m.VocabOnly() {
		return errors.New("server: needs a model loaded with its weights")
	}
	if c.ModelID == "" {
		c.ModelID = strings.TrimSuffix(filepath.Base(m.Path()), ".gguf")
	}
	if c.Parallel == 0 {
		c.Parallel = DefaultParallel
	}
	if c.Parallel < 1 || c.Parallel > llama.MaxSequences() {
		return fmt.Errorf("server: %d parallel sequences, want 1 to %d", c.Parallel, llama.MaxSequences())
	}
	if c.SlotContext == 0 {
		c.SlotContext = DefaultSlotContext
		if t := m.TrainedContext(); t > 0 && t < c.SlotContext {
			c.SlotContext = t
		}
	}
	if c.SlotContext < 8 || c.SlotContext*c.Parallel > 1<<24 {
		return fmt.Errorf("server: slot context of %d tokens for %d slots", c.SlotContext, c.Parallel)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.UBatchSize == 0 {
		c.UBatchSize = DefaultUBatchSize
	}
	if c.BatchSize < c.Parallel || c.UBatchSize < 1 {
		return fmt.Errorf("server: batch size %d (micro-batch %d) is smaller than the %d parallel sequences", c.BatchSize, c.UBatchSize, c.Parallel)
	}
	if c.Threads == 0 {
		c.Threads = llama.DefaultThreads()
	}
	if c.BatchThreads == 0 {
		c.BatchThreads = c.Threads
	}
	if c.EmbedContext == 0 {
		c.EmbedContext = min(DefaultEmbedContext, c.SlotContext)
	}
	if c.EmbedContext < 1 {
		return fmt.Errorf("server: embeddings context of %d tokens", c.EmbedContext)
	}
	switch {
	case c.QueueSize == 0:
		c.QueueSize = DefaultQueueSize
	case c.QueueSize < 0:
		c.QueueSize = 0
	}
	if c.MaxPromptTokens == 0 || c.MaxPromptTokens > c.SlotContext-1 {
		c.MaxPromptTokens = c.SlotContext - 1
	}
	if c.MaxTokens == 0 || c.MaxTokens > c.SlotContext {
		c.MaxTokens = c.SlotContext
	}
	if c.MaxPromptTokens < 1 || c.MaxTokens < 1 {
		return fmt.Errorf("server: limits of %d prompt tokens and %d generated tokens", c.MaxPromptTokens, c.MaxTokens)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.Aliases = slices.DeleteFunc(slices.Clone(c.Aliases), func(a string) bool { return a == "" || a == c.ModelID })
	c.CORSOrigins = slices.DeleteFunc(slices.Clone(c.CORSOrigins), func(o string) bool { return o == "" })
	return nil
}

// Config returns the configuration in effect, with defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Handler is the server's HTTP handler, for use with a server of the
// caller's (Serve sets timeouts and shutdown up itself).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on l until Shutdown or Close, and returns
// http.ErrServerClosed then.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed || s.srv != nil || s.shutting.Load() {
		// A Shutdown that came first stops it too.
		s.mu.Unlock()
		l.Close()
		return http.ErrServerClosed
	}
	read, write := s.cfg.ReadTimeout, s.cfg.WriteTimeout
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: positive(min(read, 10*time.Second)),
		ReadTimeout:       positive(read),
		WriteTimeout:      positive(write),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
	srv := s.srv
	s.mu.Unlock()
	return srv.Serve(l)
}

func positive(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// ListenAndServe listens on addr (host:port) and serves; see Serve.
func (s *Server) ListenAndServe(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Shutdown stops the server gracefully: it stops accepting connections and
// requests (new ones get 503), and waits for the requests in progress to
// finish. When ctx is done first, it cancels the generations still running
// (their clients get an error), closes the connections and returns
// ctx.Err(). Close the server afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		s.stop() // cancel every request's context: the engine frees their slots
		srv.Close()
	}
	return err
}

// Close stops serving at once, cancels every request, and frees the
// contexts. The model stays loaded.
func (s *Server) Close() error {
	s.shutting.Store(true)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv := s.srv
	s.mu.Unlock()
	s.stop()
	if srv != nil {
		srv.Close()
	}
	s.eng.close()
	s.emb.close()
	s.scorer.close()
	return nil
}

// knownModel reports whether a request may name model: any name, unless
// Config.StrictModel.
func (s *Server) knownModel(model string) bool {
	return !s.cfg.StrictModel || model == "" || slices.Contains(s.names, model)
}

// fingerprint is the system_fingerprint of responses: it changes with the
// model file and with the llama.cpp build, which together decide the
// output for a seed.
func fingerprint(m *llama.Model) string {
	h := sha256.Sum256([]byte(m.Fingerprint() + "\x00" + llama.BuildInfo().Commit))
	return "fp_" + hex.EncodeToString(h[:5])
}

// turnMarkers are the end-of-turn and start-of-turn markers of chat
// formats; a reply ends at those its template writes.
var turnMarkers = []string{
	"<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|start_header_id|>", "<|end|>", "<|user|>",
	"<end_of_turn>", "<start_of_turn>", "<|END_OF_TURN_TOKEN|>", "<|START_OF_TURN_TOKEN|>",
	"<｜end▁of▁sentence｜>", "<｜User｜>", "[INST]", "<|endoftext|>", "</s>",
}

// templateStops returns the markers that the template writes and that the
// model does not turn into an end-of-generation token: replies stop there.
func templateStops(m *llama.Model, t *chat.Template) []string {
	probe := []chat.Message{{Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello"}, {Role: "user", Content: "Bye"}}
	text, err := t.Render(probe, renderOptions(m, true))
	if err != nil {
		return nil
	}
	var stops []string
	for _, mk := range turnMarkers {
		if !strings.Contains(text, mk) {
			continue
		}
		toks, err := m.Tokenize(mk, llama.ParseSpecial)
		if err == nil && len(toks) == 1 && m.IsEOG(toks[0]) {
			continue // the model stops there by itself
		}
		stops = append(stops, mk)
	}
	return stops
}

func renderOptions(m *llama.Model, gen bool) chat.RenderOptions {
	return chat.RenderOptions{AddGenerationPrompt: gen, BOS: specialText(m, m.BOS()), EOS: specialText(m, m.EOS())}
}

func specialText(m *llama.Model, t llama.TokenID) string {
	if t == llama.NullToken {
		return ""
	}
	s, _ := m.TokenText(t)
	return s
}
