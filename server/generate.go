package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/llamago/llamago/chat"
	"github.com/llamago/llamago/llama"
)

var negInf = math.Inf(-1)

// genParams are the checked generation settings of a request.
type genParams struct {
	n            int
	maxTokens    int
	stops        []string
	sampling     []llama.SamplerOption
	grammar      string
	grammarParam string // the request field the grammar comes from
	seed         int64  // -1: random
	logprobs     int    // -1: none
	stream       bool
	includeUsage bool
}

// job is a generation request ready to run: one or more prompts, each
// with n choices.
type job struct {
	chat    bool
	id      string
	created int64
	prompts [][]llama.TokenID
	echo    []string // completions with echo: the text of each prompt
	// echoLogprobs are those of each echoed prompt's tokens, with
	// logprobs.
	echoLogprobs [][]tokenLogprob
	p            *genParams
	tools        *toolSetup   // chat with tools: replies are parsed for calls
	media        *mediaPrompt // a chat with images: generated from its text
}

// mediaPrompt is a chat prompt with images: the rendered text, its
// images, and how the text is tokenized (BOS added unless it has one).
type mediaPrompt struct {
	text   string
	images []*llama.Image
	flags  llama.SpecialTokens
}

// renderedChat is a rendered and tokenized chat prompt.
type renderedChat struct {
	tokens []llama.TokenID
	text   string
	flags  llama.SpecialTokens // what gives tokens from text
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if !s.checkModel(w, r, req.Model) {
		return
	}
	maxTokens := req.MaxTokens
	if req.MaxCompletionTokens != nil {
		maxTokens = req.MaxCompletionTokens
	}
	p, err := s.genParams(&req.samplingParams, maxTokens, s.cfg.MaxTokens, 1)
	if err != nil {
		s.fail(w, err)
		return
	}
	switch {
	case req.TopLogprobs != nil && (req.Logprobs == nil || !*req.Logprobs):
		s.fail(w, badRequest("top_logprobs", "'top_logprobs' needs 'logprobs' set to true."))
		return
	case req.TopLogprobs != nil && (*req.TopLogprobs < 0 || *req.TopLogprobs > maxTopLogprobs):
		s.fail(w, badRequest("top_logprobs", "'top_logprobs' must be between 0 and %d.", maxTopLogprobs))
		return
	case req.Logprobs != nil && *req.Logprobs:
		p.logprobs = 0
		if req.TopLogprobs != nil {
			p.logprobs = *req.TopLogprobs
		}
	}
	tools, choice, err := s.chatTools(&req)
	if err != nil {
		s.fail(w, err)
		return
	}
	j := &job{chat: true, id: newID("chatcmpl-"), created: time.Now().Unix(), p: p}
	if len(tools) > 0 && choice.Mode != chat.ToolNone {
		if err := s.toolGrammar(p, tools, choice); err != nil {
			s.fail(w, err)
			return
		}
		j.tools = &toolSetup{format: s.toolFormat, single: choice.Single}
	}
	images, err := s.chatImages(r.Context(), req.Messages)
	if err != nil {
		s.fail(w, err)
		return
	}
	prompt, err := s.chatPrompt(req.Messages, tools)
	if err != nil {
		s.fail(w, err)
		return
	}
	j.prompts = [][]llama.TokenID{prompt.tokens}
	if len(images) > 0 {
		j.media = &mediaPrompt{text: prompt.text, images: images, flags: prompt.flags}
	}
	p.stops = append(p.stops, s.stops...)
	s.generate(w, r, j)
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := s.readJSON(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if !s.checkModel(w, r, req.Model) {
		return
	}
	p, err := s.genParams(&req.samplingParams, req.MaxTokens, min(completionMaxTokens, s.cfg.MaxTokens), 0)
	if err != nil {
		s.fail(w, err)
		return
	}
	switch {
	case req.Suffix != nil && *req.Suffix != "":
		s.fail(w, badRequest("suffix", "'suffix' is not supported by this server."))
		return
	case req.BestOf != nil && *req.BestOf != p.n:
		s.fail(w, badRequest("best_of", "'best_of' is not supported by this server, except equal to 'n'."))
		return
	case req.Logprobs != nil && (*req.Logprobs < 0 || *req.Logprobs > maxTopLogprobs):
		s.fail(w, badRequest("logprobs", "'logprobs' must be between 0 and %d.", maxTopLogprobs))
		return
	case req.Logprobs != nil:
		p.logprobs = *req.Logprobs
	}
	if req.Prompt == nil || len(req.Prompt.items) == 0 {
		s.fail(w, badRequest("prompt", "'prompt' is required and must not be empty."))
		return
	}
	if len(req.Prompt.items) > maxPrompts {
		s.fail(w, badRequest("prompt", "At most %d prompts per request.", maxPrompts))
		return
	}
	j := &job{id: newID("cmpl-"), created: time.Now().Unix(), p: p}
	for _, item := range req.Prompt.items {
		toks, err := s.promptTokens("prompt", item, llama.AddSpecial|llama.ParseSpecial, s.cfg.MaxPromptTokens)
		if err != nil {
			s.fail(w, err)
			return
		}
		j.prompts = append(j.prompts, toks)
		if req.Echo {
			text := item.text
			if !item.isText {
				text = s.piecesText(toks)
			}
			j.echo = append(j.echo, text)
		}
		if req.Echo && p.logprobs >= 0 {
			lps, err := s.scorer.score(r.Context(), toks, p.logprobs)
			if err != nil {
				if r.Context().Err() == nil {
					s.fail(w, asAPIError(err))
				}
				return
			}
			j.echoLogprobs = append(j.echoLogprobs, lps)
		}
	}
	s.generate(w, r, j)
}

// promptTokens tokenizes a prompt, or checks its token ids, and its size.
func (s *Server) promptTokens(field string, item promptItem, flags llama.SpecialTokens, limit int) ([]llama.TokenID, error) {
	var toks []llama.TokenID
	if item.isText {
		var err error
		if toks, err = s.model.Tokenize(item.text, flags); err != nil {
			return nil, badRequest(field, "Could not tokenize '%s': %v.", field, err)
		}
	} else {
		for _, t := range item.tokens {
			if t < 0 || t >= int64(s.model.VocabSize()) {
				return nil, badRequestCode(field, "invalid_token", "Token id %d in '%s' is outside the vocabulary of %d tokens.", t, field, s.model.VocabSize())
			}
			toks = append(toks, llama.TokenID(t))
		}
	}
	if len(toks) == 0 {
		return nil, badRequest(field, "'%s' is empty: it gives no tokens.", field)
	}
	if len(toks) > limit {
		return nil, badRequestCode(field, "context_length_exceeded",
			"'%s' has %d tokens, more than the limit of %d.", field, len(toks), limit)
	}
	return toks, nil
}

// piece is the text of a token, control tokens as "".
func (s *Server) piece(t llama.TokenID) string {
	p, _ := s.model.TokenToPiece(t, false)
	return p
}

func (s *Server) piecesText(toks []llama.TokenID) string {
	var b strings.Builder
	for _, t := range toks {
		b.WriteString(s.piece(t))
	}
	return b.String()
}

// chatPrompt renders the messages with the chat template and tokenizes
// them, as chat.Session does for its first turn.
//
// A last assistant message (without tool calls) is a prefill, as
// llama-server takes it: the reply continues its text.
func (s *Server) chatPrompt(in []chatMessage, tools []chat.Tool) (renderedChat, error) {
	if len(in) == 0 {
		return renderedChat{}, badRequest("messages", "'messages' is required and must not be empty.")
	}
	msgs := make([]chat.Message, len(in))
	for i, m := range in {
		role := m.Role
		switch role {
		case "developer":
			role = "system"
		case "system", "user", "assistant", "tool":
		case "":
			return renderedChat{}, badRequest(fmt.Sprintf("messages[%d].role", i), "Message %d has no role.", i)
		default:
			return renderedChat{}, badRequest(fmt.Sprintf("messages[%d].role", i), "Message %d has the unknown role %q.", i, m.Role)
		}
		msgs[i] = chat.Message{Role: role, Content: m.Content.text, Reasoning: m.Reasoning,
			ToolCalls: objectArguments(m.ToolCalls), Name: m.Name, ToolCallID: m.ToolCallID}
	}
	prefill := ""
	if last := msgs[len(msgs)-1]; len(msgs) > 1 && last.Role == "assistant" && len(last.ToolCalls) == 0 {
		prefill, msgs = last.Content, msgs[:len(msgs)-1]
	}
	opts := renderOptions(s.model, true)
	for _, t := range tools {
		opts.Tools = append(opts.Tools, t)
	}
	text, err := s.tmpl.Render(msgs, opts)
	text += prefill
	if err != nil {
		var re *chat.RaiseError
		if errors.As(err, &re) {
			return renderedChat{}, badRequest("messages", "The chat template refused the messages: %s", re.Message)
		}
		return renderedChat{}, badRequest("messages", "The chat template could not render the messages: %v", err)
	}
	toks, err := s.model.Tokenize(text, llama.ParseSpecial)
	if err != nil {
		return renderedChat{}, badRequest("messages", "Could not tokenize the messages: %v.", err)
	}
	flags := llama.ParseSpecial
	if bos := s.model.BOS(); s.model.AddsBOS() && bos != llama.NullToken {
		if len(toks) == 0 || toks[0] != bos {
			toks = append([]llama.TokenID{bos}, toks...)
			flags |= llama.AddSpecial
		}
		for len(toks) > 1 && toks[0] == bos && toks[1] == bos {
			toks = toks[1:]
		}
	}
	if len(toks) > s.cfg.MaxPromptTokens {
		return renderedChat{}, badRequestCode("messages", "context_length_exceeded",
			"The messages have %d tokens, more than the limit of %d.", len(toks), s.cfg.MaxPromptTokens)
	}
	return renderedChat{tokens: toks, text: text, flags: flags}, nil
}

// genParams checks the sampling fields and turns them into sampler
// options. Fields not given keep llama.cpp's defaults (temperature 0.8,
// top_k 40, top_p 0.95, min_p 0.05), as llama-server does.
func (s *Server) genParams(q *samplingParams, maxTokens *int, defMax, minTokens int) (*genParams, error) {
	p := &genParams{n: 1, maxTokens: defMax, seed: -1, logprobs: -1, stream: q.Stream}
	p.includeUsage = q.StreamOptions != nil && q.StreamOptions.IncludeUsage
	if maxTokens != nil {
		// More than the server's limit is clamped to it, as llama-server
		// does: the choice ends with finish_reason "length". A text
		// completion may ask for 0 (with echo, to get the prompt back).
		if *maxTokens < minTokens {
			return nil, badRequest("max_tokens", "'max_tokens' must be at least %d, not %d.", minTokens, *maxTokens)
		}
		p.maxTokens = min(*maxTokens, s.cfg.MaxTokens)
	}
	if q.N != nil {
		if *q.N < 1 || *q.N > MaxChoices {
			return nil, badRequest("n", "'n' must be between 1 and %d, not %d.", MaxChoices, *q.N)
		}
		p.n = *q.N
	}
	if len(q.Stop) > maxStops {
		return nil, badRequest("stop", "At most %d stop strings, not %d.", maxStops, len(q.Stop))
	}
	for _, st := range q.Stop {
		if st != "" {
			p.stops = append(p.stops, st)
		}
	}
	opt := func(o llama.SamplerOption) { p.sampling = append(p.sampling, o) }
	checkRange := func(name string, v *float64, lo, hi float64) error {
		if v != nil && (!finite(*v) || *v < lo || *v > hi) {
			return badRequest(name, "'%s' must be between %g and %g, not %v.", name, lo, hi, *v)
		}
		return nil
	}
	for _, c := range []struct {
		name   string
		v      *float64
		lo, hi float64
	}{
		{"temperature", q.Temperature, 0, 2},
		{"top_p", q.TopP, 0, 1},
		{"min_p", q.MinP, 0, 1},
		{"presence_penalty", q.PresencePenalty, -2, 2},
		{"frequency_penalty", q.FrequencyPenalty, -2, 2},
		{"repeat_penalty", q.RepeatPenalty, 0, 10},
	} {
		if err := checkRange(c.name, c.v, c.lo, c.hi); err != nil {
			return nil, err
		}
	}
	if q.Temperature != nil {
		opt(llama.WithTemperature(float32(*q.Temperature)))
	}
	if q.TopP != nil {
		opt(llama.WithTopP(float32(*q.TopP)))
	}
	if q.MinP != nil {
		opt(llama.WithMinP(float32(*q.MinP)))
	}
	if q.TopK != nil {
		if *q.TopK < 0 {
			return nil, badRequest("top_k", "'top_k' must be 0 (off) or positive, not %d.", *q.TopK)
		}
		opt(llama.WithTopK(*q.TopK))
	}
	// A window of -1 is the slot's context, as in llama-server; a longer
	// one sees nothing more, and llama.cpp allocates it in full.
	opt(llama.WithSamplerContextSize(s.cfg.SlotContext))
	if q.RepeatLastN != nil && (*q.RepeatLastN < -1 || *q.RepeatLastN > s.cfg.SlotContext) {
		return nil, badRequest("repeat_last_n", "'repeat_last_n' must be -1 (the context), 0 (off) or at most the context size %d, not %d.", s.cfg.SlotContext, *q.RepeatLastN)
	}
	if q.PresencePenalty != nil || q.FrequencyPenalty != nil || q.RepeatPenalty != nil || q.RepeatLastN != nil {
		lastN, repeat, freq, pres := 64, 1.0, 0.0, 0.0
		if q.RepeatLastN != nil {
			lastN = *q.RepeatLastN
		}
		if q.RepeatPenalty != nil {
			repeat = *q.RepeatPenalty
		}
		if q.FrequencyPenalty != nil {
			freq = *q.FrequencyPenalty
		}
		if q.PresencePenalty != nil {
			pres = *q.PresencePenalty
		}
		opt(llama.WithPenalties(lastN, float32(repeat), float32(freq), float32(pres)))
	}
	if q.Seed != nil {
		if *q.Seed < -1 || *q.Seed >= math.MaxUint32 {
			return nil, badRequest("seed", "'seed' must be -1 (random) or between 0 and %d, not %d.", uint32(math.MaxUint32-1), *q.Seed)
		}
		p.seed = *q.Seed
	}
	bias := map[llama.TokenID]float32{}
	for k, v := range q.LogitBias {
		id, ok := parseTokenID(k)
		if !ok || id < 0 || id >= int64(s.model.VocabSize()) {
			return nil, badRequestCode("logit_bias", "invalid_token", "'logit_bias' key %q is not a token id of this model's vocabulary of %d tokens.", k, s.model.VocabSize())
		}
		if !finite(v) || v < -100 || v > 100 {
			return nil, badRequest("logit_bias", "'logit_bias' values must be between -100 and 100, not %v.", v)
		}
		b := float32(v)
		if v <= -100 {
			b = float32(negInf) // -100 bans the token, as OpenAI documents
		}
		bias[llama.TokenID(id)] = b
	}
	if len(bias) > 0 {
		opt(llama.WithLogitBias(bias))
	}
	if q.IgnoreEOS {
		opt(llama.WithIgnoreEOS())
	}

	p.grammar = q.Grammar
	if rf := q.ResponseFormat; rf != nil && rf.Type != "" && rf.Type != "text" {
		if q.Grammar != "" {
			return nil, badRequest("grammar", "'grammar' and 'response_format' cannot be used together.")
		}
		switch rf.Type {
		case "json_object":
			p.grammar, p.grammarParam = jsonObjectGrammar, "response_format"
		case "json_schema":
			if rf.JSONSchema == nil || len(rf.JSONSchema.Schema) == 0 || string(rf.JSONSchema.Schema) == "null" {
				return nil, badRequest("response_format.json_schema.schema", "'response_format' of type json_schema needs 'json_schema.schema'.")
			}
			g, err := llama.JSONSchemaGrammar(string(rf.JSONSchema.Schema))
			if err != nil {
				return nil, badRequest("response_format.json_schema.schema", "The JSON schema cannot be used: %s.", trimLlama(err))
			}
			p.grammar, p.grammarParam = g, "response_format"
		default:
			return nil, badRequest("response_format.type", "'response_format.type' must be text, json_object or json_schema, not %q.", rf.Type)
		}
	}
	if p.grammar != "" {
		opt(llama.WithGrammar(p.grammar, ""))
	}
	return p, nil
}

// samplers makes the samplers of choices first to first+count-1 of a
// prompt: choice i gets seed+i.
func (s *Server) samplers(p *genParams, first, count int) ([]*llama.Sampler, error) {
	var out []*llama.Sampler
	for i := first; i < first+count; i++ {
		seed := uint32(llama.DefaultSeed)
		if p.seed >= 0 {
			seed = uint32((p.seed + int64(i)) % math.MaxUint32)
		}
		sm, err := s.model.NewSampler(append(p.sampling[:len(p.sampling):len(p.sampling)], llama.WithSeed(seed))...)
		if err != nil {
			for _, x := range out {
				x.Close()
			}
			switch {
			case errors.Is(err, llama.ErrInvalidGrammar):
				param := "grammar"
				if p.grammarParam != "" {
					param = p.grammarParam
				}
				return nil, badRequest(param, "The grammar does not parse: %v.", strings.TrimPrefix(err.Error(), "llama: "))
			case errors.Is(err, llama.ErrInvalidArgument), errors.Is(err, llama.ErrInvalidToken):
				return nil, badRequest("", "Invalid sampling parameters: %v.", strings.TrimPrefix(err.Error(), "llama: "))
			}
			return nil, internalError(err)
		}
		out = append(out, sm)
	}
	return out, nil
}

// generate submits the job's prompts to the engine and answers with the
// result, or streams it.
func (s *Server) generate(w http.ResponseWriter, r *http.Request, j *job) {
	if s.shutting.Load() {
		s.fail(w, shuttingDown())
		return
	}
	ctx := r.Context()
	if j.p.maxTokens == 0 {
		// Nothing to generate (a completion with max_tokens 0): each
		// choice is its echo, if any.
		out := newOutbox(0)
		for i := range len(j.prompts) * j.p.n {
			out.send(event{choice: i, finish: "length"})
		}
		for _, p := range j.prompts {
			out.usage.prompt += len(p)
		}
		s.respond(ctx, w, j, out)
		return
	}
	// Choices beyond the parallel sequences go to more tasks, which wait
	// in the queue for their slots.
	var tasks []*task
	for i, prompt := range j.prompts {
		for first := 0; first < j.p.n; first += s.cfg.Parallel {
			tasks = append(tasks, &task{prompt: prompt, n: min(s.cfg.Parallel, j.p.n-first), choiceBase: i*j.p.n + first})
		}
	}
	out := newOutbox(len(tasks))
	closeAll := func() {
		for _, t := range tasks {
			t.closeSamplers()
		}
	}
	for _, t := range tasks {
		sms, err := s.samplers(j.p, t.choiceBase%j.p.n, t.n)
		if err != nil {
			closeAll()
			s.fail(w, err)
			return
		}
		t.ctx, t.maxTokens, t.stops, t.samplers, t.logprobs, t.out = ctx, j.p.maxTokens, j.p.stops, sms, j.p.logprobs, out
		if j.media != nil {
			t.media, t.proj = j.media, s.cfg.Projector
		}
	}
	if err := s.eng.submit(tasks...); err != nil {
		closeAll()
		s.fail(w, err)
		return
	}
	s.respond(ctx, w, j, out)
}

// respond answers with the job's result, or streams it.
func (s *Server) respond(ctx context.Context, w http.ResponseWriter, j *job, out *outbox) {
	if j.p.stream {
		s.stream(ctx, w, j, out)
		return
	}
	s.collect(ctx, w, j, out)
}

// wait passes the events of out to f as they come, until every task ends
// or ctx is done.
func (s *Server) wait(ctx context.Context, out *outbox, f func([]event) error) (usage, error) {
	for {
		evs, done, u, err := out.take()
		if len(evs) > 0 {
			if werr := f(evs); werr != nil {
				return u, werr
			}
		}
		if done {
			return u, err
		}
		select {
		case <-out.notify:
		case <-ctx.Done():
			return u, ctx.Err() // the engine's generations end with ctx

		}
	}
}

// choiceState accumulates one choice of a response.
type choiceState struct {
	text     strings.Builder
	logprobs []tokenLogprob
	offset   int // bytes of text so far, for text_offset
	finish   string
}

func (s *Server) collect(ctx context.Context, w http.ResponseWriter, j *job, out *outbox) {
	choices := make([]choiceState, len(j.prompts)*j.p.n)
	for i := range choices {
		if j.echo != nil {
			choices[i].text.WriteString(j.echo[i/j.p.n])
		}
	}
	u, err := s.wait(ctx, out, func(evs []event) error {
		for _, ev := range evs {
			c := &choices[ev.choice]
			c.text.WriteString(ev.text)
			c.logprobs = append(c.logprobs, ev.logprobs...)
			if ev.finish != "" {
				c.finish = ev.finish
			}
		}
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			s.fail(w, err)
		}
		return
	}
	resp := map[string]any{"id": j.id, "created": j.created, "model": s.cfg.ModelID, "usage": usageOf(u),
		"system_fingerprint": s.fingerprint}
	list := make([]any, len(choices))
	for i := range choices {
		c := &choices[i]
		if j.chat {
			msg := map[string]any{"role": "assistant", "content": c.text.String()}
			finish := c.finish
			if j.tools != nil {
				ct := newChoiceTools(j.tools)
				text, calls := ct.feed(s, c.text.String(), true)
				msg["content"] = text
				if len(calls) > 0 {
					if strings.TrimSpace(text) == "" {
						msg["content"] = nil
					}
					list := make([]toolCallJSON, len(calls))
					for k, call := range calls {
						args := argumentsText(call)
						list[k] = toolCallJSON{ID: call.ID, Type: "function", Function: functionCallJSON{Name: call.Function.Name, Arguments: &args}}
					}
					msg["tool_calls"] = list
					if finish == "stop" {
						finish = "tool_calls"
					}
				}
			}
			ch := map[string]any{
				"index":         i,
				"message":       msg,
				"finish_reason": finish,
				"logprobs":      nil,
			}
			if j.p.logprobs >= 0 {
				ch["logprobs"] = s.chatLogprobs(c.logprobs)
			}
			list[i] = ch
			continue
		}
		ch := map[string]any{"index": i, "text": c.text.String(), "finish_reason": c.finish, "logprobs": nil}
		if j.p.logprobs >= 0 {
			offset := 0
			var echoed *completionLogprobs
			if j.echoLogprobs != nil {
				echoed = s.completionLogprobs(j.echoLogprobs[i/j.p.n], &offset)
			}
			if j.echo != nil {
				offset = len(j.echo[i/j.p.n]) // the pieces may differ from the text (a leading space)
			}
			lps := s.completionLogprobs(c.logprobs, &offset)
			if echoed != nil {
				lps.Tokens = append(echoed.Tokens, lps.Tokens...)
				lps.TokenLogprobs = append(echoed.TokenLogprobs, lps.TokenLogprobs...)
				lps.TopLogprobs = append(echoed.TopLogprobs, lps.TopLogprobs...)
				lps.TextOffset = append(echoed.TextOffset, lps.TextOffset...)
			}
			ch["logprobs"] = lps
		}
		list[i] = ch
	}
	resp["choices"] = list
	resp["object"] = "text_completion"
	if j.chat {
		resp["object"] = "chat.completion"
	}
	s.reply(w, http.StatusOK, resp)
}

// usageJSON is OpenAI's usage object.
type usageJSON struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	// With speculative decoding: the drafted tokens the model accepted
	// and those it rejected, in OpenAI's fields for predicted outputs.
	CompletionTokensDetails *completionDetails `json:"completion_tokens_details,omitempty"`
}

type completionDetails struct {
	AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
	RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
}

func usageOf(u usage) *usageJSON {
	j := &usageJSON{PromptTokens: u.prompt, CompletionTokens: u.completion, TotalTokens: u.prompt + u.completion}
	j.PromptTokensDetails.CachedTokens = u.cached
	if u.drafted > 0 {
		j.CompletionTokensDetails = &completionDetails{AcceptedPredictionTokens: u.accepted, RejectedPredictionTokens: u.drafted - u.accepted}
	}
	return j
}

// Logprobs in the chat format.
type chatLogprobs struct {
	Content []chatLogprob `json:"content"`
	Refusal *string       `json:"refusal"`
}

type chatLogprob struct {
	Token       string        `json:"token"`
	Logprob     float64       `json:"logprob"`
	Bytes       []int         `json:"bytes"`
	TopLogprobs []chatTopProb `json:"top_logprobs"`
}

type chatTopProb struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

func bytesOf(s string) []int {
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return b
}

// jsonLogprob keeps logprobs representable in JSON.
func jsonLogprob(lp float64) float64 {
	if math.IsInf(lp, -1) || math.IsNaN(lp) || lp < -9999 {
		return -9999
	}
	return lp
}

func (s *Server) chatLogprobs(lps []tokenLogprob) *chatLogprobs {
	out := &chatLogprobs{Content: []chatLogprob{}}
	for _, lp := range lps {
		piece := s.piece(lp.ID)
		c := chatLogprob{Token: piece, Logprob: jsonLogprob(lp.Logprob), Bytes: bytesOf(piece), TopLogprobs: []chatTopProb{}}
		for _, a := range lp.Top {
			p := s.piece(a.ID)
			c.TopLogprobs = append(c.TopLogprobs, chatTopProb{Token: p, Logprob: jsonLogprob(a.Logprob), Bytes: bytesOf(p)})
		}
		out.Content = append(out.Content, c)
	}
	return out
}

// Logprobs in the legacy completions format.
type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []*float64           `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

func (s *Server) completionLogprobs(lps []tokenLogprob, offset *int) *completionLogprobs {
	out := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []*float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, lp := range lps {
		piece := s.piece(lp.ID)
		out.Tokens = append(out.Tokens, piece)
		out.TextOffset = append(out.TextOffset, *offset)
		*offset += len(piece)
		if lp.none {
			// The first token of an echoed prompt: null, as OpenAI's.
			out.TokenLogprobs = append(out.TokenLogprobs, nil)
			out.TopLogprobs = append(out.TopLogprobs, nil)
			continue
		}
		v := jsonLogprob(lp.Logprob)
		out.TokenLogprobs = append(out.TokenLogprobs, &v)
		top := map[string]float64{}
		for _, a := range lp.Top {
			if _, dup := top[s.piece(a.ID)]; !dup {
				top[s.piece(a.ID)] = jsonLogprob(a.Logprob)
			}
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
	}
	return out
}

// Streaming chunks.
type chunkJSON struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           []chunkChoice `json:"choices"`
	Usage             *usageJSON    `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        *deltaJSON `json:"delta,omitempty"` // chat
	Text         *string    `json:"text,omitempty"`  // completions
	Logprobs     any        `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

type deltaJSON struct {
	Role      string         `json:"role,omitempty"`
	Content   *string        `json:"content,omitempty"`
	ToolCalls []toolCallJSON `json:"tool_calls,omitempty"`
}

// sse writes server-sent events, each write within WriteTimeout.
type sse struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	buf     []byte
}

func (e *sse) data(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(internalError(err))
	}
	e.buf = append(e.buf, "data: "...)
	e.buf = append(e.buf, b...)
	e.buf = append(e.buf, "\n\n"...)
}

func (e *sse) flush() error {
	if e.timeout > 0 {
		_ = e.rc.SetWriteDeadline(time.Now().Add(e.timeout))
	}
	_, err := e.w.Write(e.buf)
	e.buf = e.buf[:0]
	if err != nil {
		return err
	}
	return e.rc.Flush()
}

func (s *Server) stream(ctx context.Context, w http.ResponseWriter, j *job, out *outbox) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	e := &sse{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
	object := "text_completion"
	if j.chat {
		object = "chat.completion.chunk"
	}
	chunk := func(c chunkChoice) chunkJSON {
		return chunkJSON{ID: j.id, Object: object, Created: j.created, Model: s.cfg.ModelID, SystemFingerprint: s.fingerprint, Choices: []chunkChoice{c}}
	}
	nChoices := len(j.prompts) * j.p.n
	offsets := make([]int, nChoices)
	var tools []*choiceTools
	if j.tools != nil {
		tools = make([]*choiceTools, nChoices)
		for i := range tools {
			tools[i] = newChoiceTools(j.tools)
		}
	}
	for i := range nChoices {
		switch {
		case j.chat:
			empty := ""
			e.data(chunk(chunkChoice{Index: i, Delta: &deltaJSON{Role: "assistant", Content: &empty}}))
		case j.echo != nil:
			text := j.echo[i/j.p.n]
			c := chunkChoice{Index: i, Text: &text}
			if j.echoLogprobs != nil {
				c.Logprobs = s.completionLogprobs(j.echoLogprobs[i/j.p.n], &offsets[i])
			}
			offsets[i] = len(text)
			e.data(chunk(c))
		}
	}
	if err := e.flush(); err != nil {
		return
	}
	u, err := s.wait(ctx, out, func(evs []event) error {
		for _, ev := range evs {
			c := chunkChoice{Index: ev.choice}
			text := ev.text
			finish := ev.finish
			if tools != nil {
				// Calls as OpenAI streams them: a delta with the index,
				// id, type and name, then the arguments.
				ct := tools[ev.choice]
				var calls []chat.ToolCall
				text, calls = ct.feed(s, text, ev.finish != "")
				if text != "" {
					e.data(chunk(chunkChoice{Index: ev.choice, Delta: &deltaJSON{Content: &text}}))
					text = ""
				}
				for n, call := range calls {
					k := len(ct.calls) - len(calls) + n
					empty, args := "", argumentsText(call)
					e.data(chunk(chunkChoice{Index: ev.choice, Delta: &deltaJSON{ToolCalls: []toolCallJSON{
						{Index: &k, ID: call.ID, Type: "function", Function: functionCallJSON{Name: call.Function.Name, Arguments: &empty}}}}}))
					e.data(chunk(chunkChoice{Index: ev.choice, Delta: &deltaJSON{ToolCalls: []toolCallJSON{
						{Index: &k, Function: functionCallJSON{Arguments: &args}}}}}))
				}
				if finish == "stop" && len(ct.calls) > 0 {
					finish = "tool_calls"
				}
				if ev.logprobs == nil && finish == "" {
					continue
				}
			}
			if j.chat {
				c.Delta = &deltaJSON{}
				if text != "" {
					c.Delta.Content = &text
				}
			} else {
				c.Text = &text
			}
			if ev.logprobs != nil {
				if j.chat {
					c.Logprobs = s.chatLogprobs(ev.logprobs)
				} else {
					c.Logprobs = s.completionLogprobs(ev.logprobs, &offsets[ev.choice])
				}
			}
			if finish != "" {
				if j.chat && text != "" {
					// The text, then the end in a chunk of its own, as
					// OpenAI sends it.
					e.data(chunk(c))
					c = chunkChoice{Index: ev.choice, Delta: &deltaJSON{}}
				}
				c.FinishReason = &finish
			}
			e.data(chunk(c))
		}
		return e.flush()
	})
	if err != nil {
		if ctx.Err() == nil {
			e.data(asAPIError(err))
			_ = e.flush()
		}
		return
	}
	if j.p.includeUsage {
		e.data(chunkJSON{ID: j.id, Object: object, Created: j.created, Model: s.cfg.ModelID, SystemFingerprint: s.fingerprint, Choices: []chunkChoice{}, Usage: usageOf(u)})
	}
	e.buf = append(e.buf, "data: [DONE]\n\n"...)
	_ = e.flush()
}

// objectArguments passes the arguments of calls, which OpenAI clients
// send as a JSON string, as the object they hold: templates render them
// with tojson, as transformers has them.
func objectArguments(calls []chat.ToolCall) []chat.ToolCall {
	out := slices.Clone(calls)
	for i, c := range out {
		if s, ok := c.Function.Arguments.(string); ok {
			if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") && json.Valid([]byte(t)) {
				out[i].Function.Arguments = json.RawMessage(t)
			}
		}
	}
	return out
}
