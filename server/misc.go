package server

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/http"

	"github.com/llamago/llamago/llama"
)

// maxEmbeddingInputs is the most inputs of one embeddings request, as
// OpenAI's.
const maxEmbeddingInputs = 2048

func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if !s.checkModel(w, r, req.Model) {
		return
	}
	if s.shutting.Load() {
		s.fail(w, shuttingDown())
		return
	}
	if req.Input == nil || len(req.Input.items) == 0 {
		s.fail(w, badRequest("input", "'input' is required and must not be empty."))
		return
	}
	if len(req.Input.items) > maxEmbeddingInputs {
		s.fail(w, badRequest("input", "At most %d inputs per request.", maxEmbeddingInputs))
		return
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		s.fail(w, badRequest("encoding_format", "'encoding_format' must be float or base64, not %q.", req.EncodingFormat))
		return
	}
	dims := 0
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > s.model.EmbeddingSize() {
			s.fail(w, badRequest("dimensions", "'dimensions' must be between 1 and %d, the size of this model's embeddings.", s.model.EmbeddingSize()))
			return
		}
		dims = *req.Dimensions
	}
	var inputs [][]llama.TokenID
	total := 0
	for _, item := range req.Input.items {
		toks, err := s.promptTokens("input", item, llama.AddSpecial|llama.ParseSpecial, s.cfg.EmbedContext)
		if err != nil {
			s.fail(w, err)
			return
		}
		inputs = append(inputs, toks)
		total += len(toks)
	}
	vecs, err := s.emb.embed(r.Context(), inputs, dims)
	if err != nil {
		if r.Context().Err() == nil {
			s.fail(w, err)
		}
		return
	}
	s.met.embeddingTokens.Add(uint64(total))
	data := make([]map[string]any, len(vecs))
	for i, v := range vecs {
		var emb any = v
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(v))
			for k, x := range v {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(x))
			}
			emb = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	s.reply(w, http.StatusOK, map[string]any{
		"object": "list",
		"data":   data,
		"model":  s.cfg.ModelID,
		"usage":  map[string]int{"prompt_tokens": total, "total_tokens": total},
	})
}

func (s *Server) handleTokenize(w http.ResponseWriter, r *http.Request) {
	var req tokenizeRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Content == nil {
		s.fail(w, badRequest("content", "'content' is required."))
		return
	}
	var flags llama.SpecialTokens
	if req.AddSpecial {
		flags |= llama.AddSpecial
	}
	if req.ParseSpecial == nil || *req.ParseSpecial {
		flags |= llama.ParseSpecial
	}
	toks, err := s.model.Tokenize(*req.Content, flags)
	if err != nil {
		s.fail(w, badRequest("content", "Could not tokenize 'content': %v.", err))
		return
	}
	if !req.WithPieces {
		if toks == nil {
			toks = []llama.TokenID{}
		}
		s.reply(w, http.StatusOK, map[string]any{"tokens": toks})
		return
	}
	type piece struct {
		ID    llama.TokenID `json:"id"`
		Piece string        `json:"piece"`
	}
	out := []piece{}
	for _, t := range toks {
		p, _ := s.model.TokenToPiece(t, true)
		out = append(out, piece{t, p})
	}
	s.reply(w, http.StatusOK, map[string]any{"tokens": out})
}

func (s *Server) handleDetokenize(w http.ResponseWriter, r *http.Request) {
	var req detokenizeRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	toks := make([]llama.TokenID, len(req.Tokens))
	for i, t := range req.Tokens {
		if t < 0 || t >= int64(s.model.VocabSize()) {
			s.fail(w, badRequestCode("tokens", "invalid_token", "Token id %d is outside the vocabulary of %d tokens.", t, s.model.VocabSize()))
			return
		}
		toks[i] = llama.TokenID(t)
	}
	text, err := s.model.Detokenize(toks, false, true)
	if err != nil {
		s.fail(w, badRequest("tokens", "Could not detokenize: %v.", err))
		return
	}
	s.reply(w, http.StatusOK, map[string]any{"content": text})
}

// checkModel answers 404 and returns false unless the request names a
// served model, in its body and, on the legacy engines route, its path.
func (s *Server) checkModel(w http.ResponseWriter, r *http.Request, model string) bool {
	if engine := r.PathValue("engine"); engine != "" && !s.knownModel(engine) {
		s.fail(w, modelNotFound(engine))
		return false
	}
	if !s.knownModel(model) {
		s.fail(w, modelNotFound(model))
		return false
	}
	return true
}
