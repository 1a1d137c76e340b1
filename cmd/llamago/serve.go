package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/llamago/llamago/chat"
	"github.com/llamago/llamago/llama"
	"github.com/llamago/llamago/server"
)

// serveOptions are the flags and streams of "llamago serve".
type serveOptions struct {
	IO *iostreams

	Model        string
	Host         string
	Port         int
	Aliases      []string
	StrictModel  bool
	ChatTemplate string

	Parallel     int
	CtxSize      int // per slot
	BatchSize    int
	UBatchSize   int
	Threads      int
	ThreadsBatch int
	GPULayers    int
	FlashAttn    string
	CacheTypeK   string
	CacheTypeV   string
	KVUnified    bool
	NoMmap       bool
	Mlock        bool
	LoRA         loraFlags
	Vision       visionFlags // --mmproj
	ImageURLs    bool        // --allow-image-urls
	MaxImagePx   int         // --max-image-pixels
	Spec         specFlags   // speculative decoding

	Queue           int
	MaxPromptTokens int
	MaxTokens       int
	APIKey          string
	APIKeyFile      string
	CORS            []string
	MaxBodyBytes    int64
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	ShutdownTimeout time.Duration
	Quiet           bool

	// Set by validate from the flags above.
	flashAttn      llama.FlashAttention
	cacheK, cacheV llama.CacheType
	builtin        string // --chat-template names a built-in template
}

func newServeCmd(streams *iostreams, runF func(*serveOptions) error) *cobra.Command {
	opts := &serveOptions{IO: streams}
	cmd := &cobra.Command{
		Use:   "serve -m MODEL [flags]",
		Short: "Serve a model over an OpenAI-compatible HTTP API",
		Long: "Serve a model over HTTP with the OpenAI API: /v1/chat/completions,\n" +
			"/v1/completions (and the legacy /v1/engines/{engine}/completions),\n" +
			"/v1/embeddings and /v1/models, plus /health, /metrics (Prometheus),\n" +
			"/tokenize and /detokenize. Point an OpenAI client's base URL at\n" +
			"http://HOST:PORT/v1.\n\n" +
			"Up to --parallel requests are decoded together, in one batch per step;\n" +
			"each has a slot of --ctx-size positions (prompt and reply), so the KV cache\n" +
			"holds --parallel × --ctx-size. A follow-up request reuses the cached prefix\n" +
			"of an earlier one. Beyond the slots, --queue requests wait; more get 503.\n\n" +
			"The server listens on 127.0.0.1 unless --host says otherwise; --api-key (or\n" +
			"$LLAMAGO_API_KEY, or --api-key-file) requires \"Authorization: Bearer KEY\".\n" +
			"Requests name the model by its file name without .gguf or an --alias; the\n" +
			"first alias is the ID /v1/models reports.\n" +
			"SIGTERM or Ctrl-C stops accepting requests and lets those in progress\n" +
			"finish, for up to --shutdown-timeout.",
		Example: `  llamago serve -m stories260K.gguf --chat-template chatml
  llamago serve -m model.gguf --parallel 8 -c 8192 -ngl 99 --host 0.0.0.0 --api-key-file key.txt
  llamago serve -m model.gguf --alias gpt-3.5-turbo --alias text-davinci-003 --cors https://app.example`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runServe(cmd.Context(), opts)
		},
	}

	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&opts.Model, "model", "m", "", "model file (GGUF) or model reference, required")
	f.StringVar(&opts.Host, "host", "127.0.0.1", "address to listen on")
	f.IntVar(&opts.Port, "port", 8080, "port to listen on (0: any free port)")
	f.StringArrayVar(&opts.Aliases, "alias", nil, "another name of the model in /v1/models (repeatable; the first is the one responses report)")
	f.BoolVar(&opts.StrictModel, "strict-model", false, "refuse (404) requests naming a model other than the model's name or an alias (default: any name is served by the model)")
	f.StringVar(&opts.ChatTemplate, "chat-template", "", "chat template: a built-in name (chatml, llama3, ...) or a file of Jinja source (default: the model's, else chatml)")
	f.IntVar(&opts.Parallel, "parallel", server.DefaultParallel, "requests decoded together (slots)")
	f.IntVarP(&opts.CtxSize, "ctx-size", "c", 0, "positions of each slot, prompt and reply (0: 4096 or the model's trained context, if smaller)")
	f.IntVarP(&opts.BatchSize, "batch-size", "b", server.DefaultBatchSize, "logical batch size: most tokens decoded in one step")
	f.IntVar(&opts.UBatchSize, "ubatch-size", server.DefaultUBatchSize, "physical batch size (short -ub); also the most prompt tokens read per step")
	f.IntVarP(&opts.Threads, "threads", "t", llama.DefaultThreads(), "threads for generation")
	f.IntVar(&opts.ThreadsBatch, "threads-batch", 0, "threads for prompt processing (short -tb; default: the same as --threads)")
	f.IntVar(&opts.GPULayers, "n-gpu-layers", -1, "layers to offload to GPUs (short -ngl; -1: all)")
	f.StringVar(&opts.FlashAttn, "flash-attn", "auto", flashAttnUsage)
	f.StringVar(&opts.CacheTypeK, "cache-type-k", "f16", "KV cache type for K (short -ctk): "+cacheTypeNames)
	f.StringVar(&opts.CacheTypeV, "cache-type-v", "f16", "KV cache type for V, as --cache-type-k (short -ctv)")
	f.BoolVar(&opts.KVUnified, "kv-unified", false, "one KV buffer for all slots: less memory for n > 1, slower attention with many slots")
	f.BoolVar(&opts.NoMmap, "no-mmap", false, "read the model into memory instead of mapping it")
	f.BoolVar(&opts.Mlock, "mlock", false, "lock the model in RAM")
	addLoRAFlags(f, &opts.LoRA)
	addVisionFlags(f, &opts.Vision, false)
	f.BoolVar(&opts.ImageURLs, "allow-image-urls", false, "fetch http(s) image URLs of chat requests (default: only data: URLs)")
	f.IntVar(&opts.MaxImagePx, "max-image-pixels", llama.DefaultMaxImagePixels, "most pixels (width × height, as declared) of the images of a request, all together")
	addSpecFlags(f, &opts.Spec)
	f.IntVar(&opts.Queue, "queue", server.DefaultQueueSize, "requests that may wait for a slot (0: none); beyond them requests get 503")
	f.IntVar(&opts.MaxPromptTokens, "max-prompt-tokens", 0, "most tokens of a prompt (0: the slot's positions less one)")
	f.IntVar(&opts.MaxTokens, "max-tokens", 0, "most tokens a request may generate, and the default of chat requests (0: the slot's positions)")
	f.StringVar(&opts.APIKey, "api-key", "", "require this key as \"Authorization: Bearer KEY\" (default: $LLAMAGO_API_KEY)")
	f.StringVar(&opts.APIKeyFile, "api-key-file", "", "read the API key from a file")
	f.StringArrayVar(&opts.CORS, "cors", nil, "allow browsers on this origin to call the API (repeatable; \"*\": any)")
	f.Int64Var(&opts.MaxBodyBytes, "max-body-bytes", server.DefaultMaxBodyBytes, "largest request body; larger ones get 413")
	f.DurationVar(&opts.ReadTimeout, "read-timeout", server.DefaultReadTimeout, "time to read a request (0: no limit)")
	f.DurationVar(&opts.WriteTimeout, "write-timeout", server.DefaultWriteTimeout, "time to write each part of a response (0: no limit)")
	f.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM or Ctrl-C, how long requests in progress may go on")
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "do not log each request on stderr")
	return cmd
}

// validate checks the flags and sets the parsed fields.
func (o *serveOptions) validate() error {
	if o.Model == "" {
		return usageErrorf("--model is required")
	}
	if err := o.LoRA.parse(); err != nil {
		return err
	}
	if err := o.Vision.validate(); err != nil {
		return err
	}
	if o.MaxImagePx < 1 {
		return usageErrorf("--max-image-pixels must be positive, not %d", o.MaxImagePx)
	}
	if o.ImageURLs && o.Vision.MMProj == "" {
		return usageErrorf("--allow-image-urls needs --mmproj")
	}
	if err := o.Spec.validate(); err != nil {
		return err
	}
	if o.Host == "" {
		return usageErrorf("--host must not be empty (0.0.0.0 listens on every interface)")
	}
	if o.Port < 0 || o.Port > 65535 {
		return usageErrorf("--port must be between 0 and 65535, not %d", o.Port)
	}
	if o.Parallel < 1 || o.Parallel > llama.MaxSequences() {
		return usageErrorf("--parallel must be between 1 and %d, not %d", llama.MaxSequences(), o.Parallel)
	}
	if o.CtxSize < 0 {
		return usageErrorf("--ctx-size must be 0 (the default) or positive, not %d", o.CtxSize)
	}
	if o.CtxSize > 0 && o.CtxSize < 8 {
		return usageErrorf("--ctx-size must be at least 8, not %d", o.CtxSize)
	}
	if o.BatchSize < o.Parallel {
		return usageErrorf("--batch-size must be at least --parallel (%d), not %d", o.Parallel, o.BatchSize)
	}
	if err := checkComputeFlags(o.UBatchSize, o.Threads, &o.ThreadsBatch, o.GPULayers); err != nil {
		return err
	}
	var err error
	if o.flashAttn, o.cacheK, o.cacheV, err = parseAttention(o.FlashAttn, o.CacheTypeK, o.CacheTypeV); err != nil {
		return err
	}
	if o.Queue < 0 {
		return usageErrorf("--queue must be 0 or positive, not %d", o.Queue)
	}
	if o.MaxPromptTokens < 0 {
		return usageErrorf("--max-prompt-tokens must be 0 (the default) or positive, not %d", o.MaxPromptTokens)
	}
	if o.MaxTokens < 0 {
		return usageErrorf("--max-tokens must be 0 (the default) or positive, not %d", o.MaxTokens)
	}
	if o.APIKey != "" && o.APIKeyFile != "" {
		return usageErrorf("--api-key and --api-key-file cannot be used together")
	}
	if o.MaxBodyBytes < 1 {
		return usageErrorf("--max-body-bytes must be positive, not %d", o.MaxBodyBytes)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--read-timeout", o.ReadTimeout}, {"--write-timeout", o.WriteTimeout}, {"--shutdown-timeout", o.ShutdownTimeout}} {
		if d.v < 0 {
			return usageErrorf("%s must not be negative, not %v", d.flag, d.v)
		}
	}
	for _, a := range o.Aliases {
		if strings.TrimSpace(a) == "" {
			return usageErrorf("--alias must not be empty")
		}
	}
	if name := o.ChatTemplate; name != "" {
		if slices.Contains(chat.BuiltinNames(), name) {
			o.builtin = name
		} else if st, err := os.Stat(name); err != nil || st.IsDir() {
			return usageErrorf("--chat-template %q is neither a built-in template (%s) nor a file",
				name, strings.Join(chat.BuiltinNames(), ", "))
		}
	}
	return nil
}

// apiKey is the key of --api-key, --api-key-file or $LLAMAGO_API_KEY.
func (o *serveOptions) apiKey() (string, error) {
	switch {
	case o.APIKeyFile != "":
		b, err := os.ReadFile(o.APIKeyFile)
		if err != nil {
			return "", err
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("--api-key-file %s is empty", o.APIKeyFile)
		}
		return key, nil
	case o.APIKey != "":
		return o.APIKey, nil
	}
	return os.Getenv("LLAMAGO_API_KEY"), nil
}

// template is the chat template of --chat-template, or nil for the model's.
func (o *serveOptions) template() (*chat.Template, error) {
	switch {
	case o.builtin != "":
		return chat.Builtin(o.builtin)
	case o.ChatTemplate != "":
		src, err := os.ReadFile(o.ChatTemplate)
		if err != nil {
			return nil, err
		}
		t, err := chat.ParseTemplate(string(src))
		if err != nil {
			return nil, fmt.Errorf("--chat-template %s: %w", o.ChatTemplate, err)
		}
		return t, nil
	}
	return nil, nil
}

// runServe loads the model and serves it until SIGTERM, Ctrl-C or a
// failure of the listener.
func runServe(ctx context.Context, opts *serveOptions) error {
	errOut := opts.IO.ErrOut
	key, err := opts.apiKey()
	if err != nil {
		return err
	}
	tmpl, err := opts.template()
	if err != nil {
		return err
	}
	noteCPUFallback(ctx, opts.GPULayers)
	model, err := loadModel(ctx, opts.Model,
		llama.WithGPULayers(opts.GPULayers), llama.WithMmap(!opts.NoMmap), llama.WithMlock(opts.Mlock))
	if err != nil {
		return err
	}
	defer model.Close()
	if err := opts.Spec.load(ctx, llama.WithGPULayers(opts.GPULayers), llama.WithMmap(!opts.NoMmap), llama.WithMlock(opts.Mlock)); err != nil {
		return err
	}
	defer opts.Spec.close()
	adapters, err := opts.LoRA.load(model)
	if err != nil {
		return err
	}
	proj, err := opts.Vision.load(model, opts.Threads)
	if err != nil {
		return err
	}
	if tmpl == nil {
		tmpl, err = chat.FromModel(model)
		if errors.Is(err, chat.ErrNoTemplate) {
			fmt.Fprintf(errOut, "llamago: warning: the model has no chat template; chat requests use chatml (see --chat-template)\n")
			tmpl, err = chat.Builtin("chatml")
		}
		if err != nil {
			return fmt.Errorf("%w (choose another with --chat-template)", err)
		}
	}
	level := slog.LevelInfo
	if opts.Quiet {
		level = slog.LevelWarn
	}
	queue := opts.Queue
	if queue == 0 {
		queue = -1 // none wait
	}
	cfg := server.Config{
		Aliases:      opts.Aliases,
		StrictModel:  opts.StrictModel,
		Parallel:     opts.Parallel,
		SlotContext:  opts.CtxSize,
		UnifiedKV:    opts.KVUnified,
		BatchSize:    opts.BatchSize,
		UBatchSize:   opts.UBatchSize,
		Threads:      opts.Threads,
		BatchThreads: opts.ThreadsBatch,
		ContextOptions: append([]llama.ContextOption{
			llama.WithFlashAttention(opts.flashAttn),
			llama.WithCacheTypes(opts.cacheK, opts.cacheV),
		}, adapters...),
		Draft:           opts.Spec.draft,
		Template:        tmpl,
		QueueSize:       queue,
		MaxPromptTokens: opts.MaxPromptTokens,
		MaxTokens:       opts.MaxTokens,
		APIKey:          key,
		CORSOrigins:     opts.CORS,
		MaxBodyBytes:    opts.MaxBodyBytes,
		ReadTimeout:     noLimit(opts.ReadTimeout),
		WriteTimeout:    noLimit(opts.WriteTimeout),
		Logger:          slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level})),
		Projector:       proj,
		MaxImagePixels:  opts.MaxImagePx,
	}
	if opts.ImageURLs {
		cfg.FetchImage = server.FetchHTTPImage
	}
	if opts.Spec.on() {
		sp := opts.Spec.speculation()
		cfg.Speculation = &sp
	}
	if len(opts.Aliases) > 0 {
		// The first alias is the model's ID; its file name stays valid.
		base := strings.TrimSuffix(filepath.Base(model.Path()), ".gguf")
		cfg.ModelID, cfg.Aliases = opts.Aliases[0], append(slices.Clone(opts.Aliases[1:]), base)
	}
	srv, err := server.New(model, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)))
	if err != nil {
		return err
	}
	c := srv.Config()
	fmt.Fprintf(errOut, "llamago: serving %s at http://%s/v1 (%d slots of %d tokens, queue %d)\n",
		c.ModelID, ln.Addr(), c.Parallel, c.SlotContext, c.QueueSize)
	if key == "" && !loopback(opts.Host) {
		fmt.Fprintf(errOut, "llamago: warning: listening on %s without an API key: anyone who can reach it can use it (see --api-key)\n", opts.Host)
	}

	stopCtx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-stopCtx.Done():
	}
	fmt.Fprintf(errOut, "llamago: shutting down: waiting up to %v for requests in progress\n", opts.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(errOut, "llamago: cancelled the requests still running after %v\n", opts.ShutdownTimeout)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return ctx.Err() // Ctrl-C exits 130, SIGTERM 0
}

// noLimit maps the flags' 0 (no limit) to the server's negative.
func noLimit(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// loopback reports whether host is a loopback name or address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
