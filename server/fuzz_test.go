package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/llamago/llamago/internal/testllama"
)

// FuzzHandler posts request bodies to the server's handler: every body
// gets a response, an error of OpenAI's shape for a status of 400 or more
// but never a 500, within testllama.Bounded's limits, and the server keeps
// serving. go test runs the seeds, bodies that crashed the server or made
// it work without end; explore with
//
//	go test -run '^$' -fuzz FuzzHandler ./server
func FuzzHandler(f *testing.F) {
	cfg := testConfig(f)
	cfg.MaxTokens = 8
	cfg.MaxBodyBytes = 64 << 10
	s, err := New(stories(f), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	h := s.Handler()
	msgs := `"messages":[{"role":"user","content":"Hi"}]`
	for _, seed := range []struct{ path, body string }{
		{"/v1/chat/completions", `{` + msgs + `}`},
		{"/v1/completions", `{"prompt":"Once upon a time","max_tokens":4,"temperature":0}`},
		{"/v1/chat/completions", `{` + msgs + `,` + schemaFormat(`{"type":"string","pattern":"^(?:a)$"}`) + `}`},
		{"/v1/chat/completions", `{` + msgs + `,` + schemaFormat(`{"type":"string","minLength":3,"maxLength":1}`) + `}`},
		{"/v1/chat/completions", `{` + msgs + `,` + schemaFormat(`{"type":"string","pattern":"^a]$"}`) + `}`},
		{"/v1/completions", `{"prompt":"a","grammar":"root ::= \"a\"{2,1}"}`},
		{"/v1/completions", `{"prompt":"a","repeat_last_n":4294967306}`},
		{"/v1/completions", `{"prompt":"a","repeat_last_n":-1,"repeat_penalty":1.5}`},
		{"/v1/embeddings", `{"input":["a","b"]}`},
		{"/tokenize", `{"content":"Once"}`},
		{"/detokenize", `{"tokens":[1,2,3]}`},
	} {
		f.Add(seed.path, seed.body)
	}
	paths := []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize", "/detokenize"}
	f.Fuzz(func(t *testing.T, path, body string) {
		// The path picks a route; the body is the input.
		route := paths[len(path)%len(paths)]
		testllama.Bounded(route+" "+body, func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "POST", route, bytes.NewReader([]byte(body))))
			checkFuzzResponse(t, route, body, rec)
		})
	})
}

func checkFuzzResponse(t *testing.T, route, body string, rec *httptest.ResponseRecorder) {
	t.Helper()
	switch {
	case rec.Code >= 500:
		t.Fatalf("POST %s %q: %d %s", route, body, rec.Code, rec.Body)
	case rec.Code >= 400:
		var e struct {
			Error *struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == nil || e.Error.Message == "" {
			t.Fatalf("POST %s %q: %d, not an OpenAI error: %s", route, body, rec.Code, rec.Body)
		}
	case rec.Code != http.StatusOK:
		t.Fatalf("POST %s %q: status %d", route, body, rec.Code)
	}
}
