package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(method string, h http.HandlerFunc, paths ...string) {
		for _, p := range paths {
			mux.HandleFunc(method+" "+p, h)
			mux.HandleFunc(p, methodNotAllowed(method))
		}
	}
	handle("POST", s.handleChat, "/v1/chat/completions", "/chat/completions")
	handle("POST", s.handleCompletions, "/v1/completions", "/completions")
	handle("POST", s.handleCompletions, "/v1/engines/{engine}/completions", "/engines/{engine}/completions")
	handle("POST", s.handleEmbeddings, "/v1/embeddings", "/embeddings")
	handle("POST", s.handleEmbeddings, "/v1/engines/{engine}/embeddings", "/engines/{engine}/embeddings")
	handle("GET", s.handleModels, "/v1/models", "/models")
	handle("GET", s.handleModel, "/v1/models/{model...}", "/models/{model...}")
	handle("GET", s.handleHealth, "/health", "/v1/health")
	handle("GET", s.handleMetrics, "/metrics")
	handle("POST", s.handleTokenize, "/tokenize")
	handle("POST", s.handleDetokenize, "/detokenize")
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFound("There is no route %s %s.", r.Method, r.URL.Path))
	})
	return s.middleware(mux)
}

func methodNotAllowed(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Type: typeInvalidRequest, Code: "method_not_allowed",
			Message: "Use " + method + " for " + r.URL.Path + "."})
	}
}

// middleware counts and logs requests, answers CORS preflights and checks
// the API key, in that order.
func (s *Server) middleware(mux *http.ServeMux) http.Handler {
	var keyHash [32]byte
	if s.cfg.APIKey != "" {
		keyHash = sha256.Sum256([]byte(s.cfg.APIKey))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, pattern := mux.Handler(r)
		route := routeLabel(pattern)
		rec := &statusWriter{ResponseWriter: w}
		// Every response carries a request id: the client's, if it sent a
		// usable one, as OpenAI's x-request-id.
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newID("req_")
		}
		w.Header().Set("X-Request-Id", id)
		defer func() {
			code := rec.code
			if code == 0 {
				code = http.StatusOK
			}
			s.met.countRequest(route, code)
			s.cfg.Logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", code,
				"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
		}()
		if s.cors(rec, r) {
			return
		}
		if s.cfg.APIKey != "" && route != "/health" && route != "/v1/health" {
			if err := checkKey(r, keyHash); err != nil {
				writeError(rec, err)
				return
			}
		}
		mux.ServeHTTP(rec, r)
	})
}

// routeLabel is the path of a mux pattern, for metrics: "POST /v1/x" is
// "/v1/x"; the catch-all is "other".
func routeLabel(pattern string) string {
	if _, p, ok := strings.Cut(pattern, " "); ok {
		pattern = p
	}
	if pattern == "" || pattern == "/" {
		return "other"
	}
	return pattern
}

// checkKey compares the bearer token with the key in constant time (of
// their SHA-256 digests, so that not even the length leaks).
func checkKey(r *http.Request, keyHash [32]byte) error {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if auth == "" {
		return unauthorized("No API key: send it as \"Authorization: Bearer KEY\".")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return unauthorized("The Authorization header must be \"Bearer KEY\".")
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(got[:], keyHash[:]) != 1 {
		return unauthorized("Incorrect API key.")
	}
	return nil
}

// cors sets the CORS headers for an allowed origin, and answers a
// preflight request (reporting true). Without CORSOrigins it does nothing.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if len(s.cfg.CORSOrigins) == 0 || origin == "" {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	allowed := ""
	switch {
	case slices.Contains(s.cfg.CORSOrigins, origin):
		allowed = origin
	case slices.Contains(s.cfg.CORSOrigins, "*"):
		allowed = "*"
	default:
		return false
	}
	h.Set("Access-Control-Allow-Origin", allowed)
	h.Set("Access-Control-Expose-Headers", "X-Request-Id")
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	// The headers the page asks for are allowed, as llama-server does:
	// the official SDKs send their own (x-stainless-*, openai-*), and
	// the origin is what CORS checks. They are only echoed when they are
	// a well-formed list of header names.
	allow := "Authorization, Content-Type"
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && len(req) <= 4096 && headerList(req) {
		allow = req
	}
	h.Set("Access-Control-Allow-Headers", allow)
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// headerList reports whether s is a comma-separated list of header names.
func headerList(s string) bool {
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return false
		}
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
				return false
			}
		}
	}
	return true
}

// validRequestID reports whether a client's X-Request-Id may be echoed:
// 1 to 128 printable ASCII characters.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// statusWriter records the status of a response. Unwrap lets
// http.ResponseController reach the connection to flush and set deadlines.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// readJSON reads the body, at most MaxBodyBytes, into v.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	limit := s.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return tooLarge(limit)
		}
		return badRequest("", "Could not read the request body: %v.", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return decodeError(errEmptyBody)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequestCode("", "invalid_json", "The body holds more than one JSON value.")
	}
	return nil
}

// extendWrite gives the response WriteTimeout from now to be written.
func (s *Server) extendWrite(w http.ResponseWriter) {
	if d := s.cfg.WriteTimeout; d > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
	}
}

// reply answers v as JSON, after the write deadline is extended.
func (s *Server) reply(w http.ResponseWriter, status int, v any) {
	s.extendWrite(w)
	writeJSON(w, status, v)
}

// fail answers err as JSON, after the write deadline is extended.
func (s *Server) fail(w http.ResponseWriter, err error) {
	s.extendWrite(w)
	writeError(w, err)
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// modelJSON is an entry of /v1/models.
type modelJSON struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) modelEntry(id string) modelJSON {
	return modelJSON{ID: id, Object: "model", Created: s.created, OwnedBy: "llamago"}
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	data := []modelJSON{}
	for _, n := range s.names {
		data = append(data, s.modelEntry(n))
	}
	s.reply(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("model")
	if id == "" || !s.knownModel(id) {
		s.fail(w, modelNotFound(id))
		return
	}
	s.reply(w, http.StatusOK, s.modelEntry(id))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.shutting.Load() {
		s.reply(w, http.StatusServiceUnavailable, map[string]any{"status": "shutting down"})
		return
	}
	busy := s.met.slotsBusy.Load()
	s.reply(w, http.StatusOK, map[string]any{
		"status":     "ok",
		"slots_idle": int64(s.cfg.Parallel) - busy,
		"slots_busy": busy,
		"queue":      s.met.queueDepth.Load(),
	})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	s.eng.refresh()
	var b bytes.Buffer
	s.met.write(&b, snapshot{slots: s.cfg.Parallel, queueCap: s.cfg.QueueSize, kvSize: s.eng.kvSize})
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.extendWrite(w)
	_, _ = w.Write(b.Bytes())
}
