package server

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// TestBadInput: each malformed request gets the right status and an error
// in OpenAI's shape, and the server goes on serving.
func TestBadInput(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBodyBytes = 64 << 10
	cfg.MaxTokens = 100
	_, base := startServer(t, cfg)
	chat, comp := base+"/v1/chat/completions", base+"/v1/completions"
	msgs := `"messages":[{"role":"user","content":"Hi"}]`
	huge := `{"prompt":"` + strings.Repeat("a", 70<<10) + `"}`
	long := `{"prompt":"` + strings.Repeat("Once upon a time ", 100) + `"}`
	tests := []struct {
		name, url, body string
		status          int
		param, code     string
	}{
		{"malformed JSON", chat, `{"messages": [`, 400, "", "invalid_json"},
		{"not JSON", comp, `prompt=hello`, 400, "", "invalid_json"},
		{"empty body", comp, ``, 400, "", "invalid_json"},
		{"array body", comp, `[1,2]`, 400, "", "invalid_json"},
		{"two values", comp, `{"prompt":"a"} {}`, 400, "", "invalid_json"},
		{"max_tokens string", comp, `{"prompt":"a","max_tokens":"ten"}`, 400, "max_tokens", "invalid_type"},
		{"temperature string", chat, `{` + msgs + `,"temperature":"hot"}`, 400, "temperature", "invalid_type"},
		{"stream number", chat, `{` + msgs + `,"stream":1}`, 400, "stream", "invalid_type"},
		{"messages object", chat, `{"messages":{"role":"user"}}`, 400, "messages", "invalid_type"},
		{"prompt number", comp, `{"prompt":42}`, 400, "prompt", ""},
		{"stop number", comp, `{"prompt":"a","stop":7}`, 400, "stop", ""},
		{"content number", chat, `{"messages":[{"role":"user","content":5}]}`, 400, "content", ""},
		// stories260K has no projector (see vision_test.go for one).
		{"image content", chat, `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400, "messages[0].content", ""},
		{"audio content", chat, `{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, 400, "content", ""},
		{"huge body", comp, huge, 413, "", "request_too_large"},
		{"negative max_tokens", comp, `{"prompt":"a","max_tokens":-1}`, 400, "max_tokens", ""},
		{"zero max_tokens", chat, `{` + msgs + `,"max_tokens":0}`, 400, "max_tokens", ""},
		{"max_tokens negative", comp, `{"prompt":"a","max_tokens":-1}`, 400, "max_tokens", ""},
		{"chat max_tokens 0", chat, `{` + msgs + `,"max_tokens":0}`, 400, "max_tokens", ""},
		{"max_completion_tokens negative", chat, `{` + msgs + `,"max_completion_tokens":-5}`, 400, "max_tokens", ""},
		{"prompt too long", comp, long, 400, "prompt", "context_length_exceeded"},
		{"empty prompt list", comp, `{"prompt":[]}`, 400, "prompt", ""},
		{"no prompt", comp, `{"max_tokens":3}`, 400, "prompt", ""},
		{"no messages", chat, `{"messages":[]}`, 400, "messages", ""},
		{"bad role", chat, `{"messages":[{"role":"wizard","content":"x"}]}`, 400, "messages[0].role", ""},
		{"token out of vocabulary", comp, `{"prompt":[1,99999]}`, 400, "prompt", "invalid_token"},
		{"temperature range", chat, `{` + msgs + `,"temperature":3}`, 400, "temperature", ""},
		{"top_p range", chat, `{` + msgs + `,"top_p":1.5}`, 400, "top_p", ""},
		{"negative top_k", chat, `{` + msgs + `,"top_k":-1}`, 400, "top_k", ""},
		{"n too large", chat, `{` + msgs + `,"n":129}`, 400, "n", ""},
		{"n zero", chat, `{` + msgs + `,"n":0}`, 400, "n", ""},
		{"bad seed", chat, `{` + msgs + `,"seed":-7}`, 400, "seed", ""},
		{"logit_bias key", chat, `{` + msgs + `,"logit_bias":{"abc":1}}`, 400, "logit_bias", "invalid_token"},
		{"logit_bias value", chat, `{` + msgs + `,"logit_bias":{"5":500}}`, 400, "logit_bias", ""},
		{"repeat_last_n beyond the context", comp, `{"prompt":"a","repeat_last_n":257}`, 400, "repeat_last_n", ""},
		{"repeat_last_n beyond 32 bits", comp, `{"prompt":"a","repeat_last_n":4294967306}`, 400, "repeat_last_n", ""},
		{"bad grammar", comp, `{"prompt":"a","grammar":"root ::= ("}`, 400, "grammar", ""},
		// One of these crashed llama.cpp's schema converter, and with it
		// the server; the others made it, or the grammar parser, loop or
		// grow without end.
		{"schema pattern with (?:)", chat, `{` + msgs + `,` + schemaFormat(`{"type":"string","pattern":"^(?:a)$"}`) + `}`, 400, "response_format.json_schema.schema", ""},
		{"schema pattern with a named group", chat, `{` + msgs + `,` + schemaFormat(`{"type":"string","pattern":"^(?<n>a)$"}`) + `}`, 400, "response_format.json_schema.schema", ""},
		{"schema pattern with a lookahead", chat, `{` + msgs + `,` + schemaFormat(`{"type":"string","pattern":"^(?=a)b$"}`) + `}`, 400, "response_format.json_schema.schema", ""},
		{"schema pattern with a leading quantifier", chat, `{` + msgs + `,` + schemaFormat(`{"type":"string","pattern":"^+[a-z]$"}`) + `}`, 400, "response_format.json_schema.schema", ""},
		{"schema pattern with a stray bracket", chat, `{` + msgs + `,` + schemaFormat(`{"type":"string","pattern":"^a]$"}`) + `}`, 400, "response_format.json_schema.schema", ""},
		{"schema with inverted lengths", chat, `{` + msgs + `,` + schemaFormat(`{"type":"string","minLength":3,"maxLength":1}`) + `}`, 400, "response_format.json_schema.schema", ""},
		{"schema pattern with an inverted repetition", chat, `{` + msgs + `,` + schemaFormat(`{"type":"string","pattern":"^a{2,1}$"}`) + `}`, 400, "response_format.json_schema.schema", ""},
		{"grammar with an inverted repetition", comp, `{"prompt":"a","grammar":"root ::= \"a\"{2,1}"}`, 400, "grammar", ""},
		{"grammar with hidden left recursion", comp, `{"prompt":"a","grammar":"root ::= z root | \"b\"\nz ::= y\ny ::= \"a\" |"}`, 400, "grammar", ""},
		{"grammar and response_format", chat, `{` + msgs + `,"grammar":"root ::= \"a\"","response_format":{"type":"json_object"}}`, 400, "grammar", ""},
		{"bad response_format", chat, `{` + msgs + `,"response_format":{"type":"yaml"}}`, 400, "response_format.type", ""},
		{"json_schema without schema", chat, `{` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, 400, "response_format.json_schema.schema", ""},
		{"top_logprobs without logprobs", chat, `{` + msgs + `,"top_logprobs":2}`, 400, "top_logprobs", ""},
		{"top_logprobs too many", chat, `{` + msgs + `,"logprobs":true,"top_logprobs":21}`, 400, "top_logprobs", ""},
		{"tool name", chat, `{` + msgs + `,"tools":[{"type":"function","function":{"name":"a b"}}]}`, 400, "tools[0].function.name", ""},
		{"tool type", chat, `{` + msgs + `,"tools":[{"type":"retrieval"}]}`, 400, "tools[0].type", ""},
		{"tool twice", chat, `{` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]}`, 400, "tools[1].function.name", ""},
		{"tool parameters", chat, `{` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":[1]}}]}`, 400, "tools[0].function.parameters", ""},
		{"tool schema", chat, `{` + msgs + `,"tool_choice":"required","tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string","pattern":"^(?i)x$"}}}}}]}`, 400, "tools", ""},
		{"too many tools", chat, `{` + msgs + `,"tools":[` + strings.TrimSuffix(strings.Repeat(`{"type":"function","function":{"name":"f"}},`, 129), ",") + `]}`, 400, "tools", ""},
		{"tool_choice value", chat, `{` + msgs + `,"tool_choice":"always"}`, 400, "tool_choice", ""},
		{"tool_choice unknown", chat, `{` + msgs + `,"tool_choice":{"type":"function","function":{"name":"g"}},"tools":[{"type":"function","function":{"name":"f"}}]}`, 400, "tool_choice", ""},
		{"tool_choice without tools", chat, `{` + msgs + `,"tool_choice":"required"}`, 400, "tool_choice", ""},
		{"tools with grammar", chat, `{` + msgs + `,"tool_choice":"required","grammar":"root ::= \"a\"","tools":[{"type":"function","function":{"name":"f"}}]}`, 400, "tools", ""},
		{"too many stops", comp, `{"prompt":"a","stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}`, 400, "stop", ""},
		{"suffix", comp, `{"prompt":"a","suffix":"b"}`, 400, "suffix", ""},
		{"embeddings without input", base + "/v1/embeddings", `{"model":"stories260K"}`, 400, "input", ""},
		{"embeddings bad format", base + "/v1/embeddings", `{"input":"a","encoding_format":"hex"}`, 400, "encoding_format", ""},
		{"embeddings dimensions", base + "/v1/embeddings", `{"input":"a","dimensions":1000}`, 400, "dimensions", ""},
		{"embeddings input type", base + "/v1/embeddings", `{"input":{"text":"a"}}`, 400, "input", ""},
		{"tokenize without content", base + "/tokenize", `{}`, 400, "content", ""},
		{"detokenize bad token", base + "/detokenize", `{"tokens":[-1]}`, 400, "tokens", "invalid_token"},
		{"detokenize wrong type", base + "/detokenize", `{"tokens":"abc"}`, 400, "tokens", "invalid_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, tt.url, tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %s", code, tt.status, body)
			}
			checkErrorShape(t, body, tt.param, tt.code)
		})
	}

	// Routes and methods.
	if code, body := get(t, base+"/v1/nothing"); code != 404 {
		t.Errorf("unknown route: %d %s", code, body)
	} else {
		checkErrorShape(t, body, "", "not_found")
	}
	if code, body := get(t, chat); code != 405 {
		t.Errorf("GET chat: %d %s", code, body)
	} else {
		checkErrorShape(t, body, "", "method_not_allowed")
	}

	// A body that lies about its length, and one cut short.
	req, _ := http.NewRequest("POST", comp, bytes.NewReader([]byte(`{"prompt":"a"}`)))
	req.ContentLength = 100 << 20
	if resp, err := httpClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Errorf("declared 100 MiB: %d", resp.StatusCode)
		}
	}

	// After all that, the server still serves.
	code, body := post(t, comp, `{"prompt":"Once upon a time","max_tokens":8,"temperature":0}`)
	if code != 200 || !strings.HasPrefix(decode[completionJSON](t, body).Choices[0].Text, ", there was") {
		t.Fatalf("after bad input: %d %s", code, body)
	}
}

// checkErrorShape checks an OpenAI error body: message and type, param and
// code as given ("" for any).
func checkErrorShape(t *testing.T, body []byte, param, code string) {
	t.Helper()
	e := decode[struct {
		Error *apiErrorJSON `json:"error"`
	}](t, body).Error
	if e == nil || e.Message == "" || e.Type == "" {
		t.Fatalf("not an OpenAI error: %s", body)
	}
	if param != "" && (e.Param == nil || *e.Param != param) {
		t.Errorf("param = %v, want %q: %s", e.Param, param, body)
	}
	if code != "" && (e.Code == nil || *e.Code != code) {
		t.Errorf("code = %v, want %q: %s", e.Code, code, body)
	}
}

// schemaFormat is a response_format field of type json_schema.
func schemaFormat(schema string) string {
	return `"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":` + schema + `}}`
}
