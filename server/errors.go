package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// apiError is an error answered in OpenAI's shape:
//
//	{"error": {"message": "...", "type": "...", "param": null, "code": null}}
type apiError struct {
	Status  int    // HTTP status
	Message string // message
	Type    string // invalid_request_error, server_error, ...
	Param   string // the request field at fault, or ""
	Code    string // machine-readable code, or ""
}

func (e *apiError) Error() string { return e.Message }

// MarshalJSON writes the error object; an empty param or code is null, as
// OpenAI writes them.
func (e *apiError) MarshalJSON() ([]byte, error) {
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	b := body{Message: e.Message, Type: e.Type}
	if e.Param != "" {
		b.Param = &e.Param
	}
	if e.Code != "" {
		b.Code = &e.Code
	}
	return json.Marshal(struct {
		Error body `json:"error"`
	}{b})
}

// Error types, as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeNotFound       = "not_found_error"
	typeServer         = "server_error"
	typeOverloaded     = "server_overloaded"
)

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

func badRequestCode(param, code, format string, args ...any) *apiError {
	e := badRequest(param, format, args...)
	e.Code = code
	return e
}

func modelNotFound(name string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("The model %q does not exist on this server.", name)}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...)}
}

func tooLarge(limit int64) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Type: typeInvalidRequest, Code: "request_too_large",
		Message: fmt.Sprintf("The request body is larger than the limit of %d bytes.", limit)}
}

func queueFull() *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeOverloaded, Code: "queue_full",
		Message: "The server is busy: every slot is in use and the queue is full. Retry later."}
}

func shuttingDown() *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: typeOverloaded, Code: "shutting_down",
		Message: "The server is shutting down."}
}

func internalError(err error) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Type: typeServer, Code: "internal_error", Message: err.Error()}
}

func unauthorized(msg string) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Type: typeInvalidRequest, Code: "invalid_api_key", Message: msg}
}

// asAPIError returns err as an *apiError, wrapping any other error as an
// internal one.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return internalError(err)
}

// writeError answers err in OpenAI's shape.
func writeError(w http.ResponseWriter, err error) {
	ae := asAPIError(err)
	h := w.Header()
	switch ae.Status {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		h.Set("Retry-After", strconv.Itoa(1))
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="llamago"`)
	}
	writeJSON(w, ae.Status, ae)
}

// writeJSON answers v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(internalError(err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// trimLlama is err's message without the llama package's "llama: ".
func trimLlama(err error) string {
	return strings.TrimPrefix(err.Error(), "llama: ")
}
