package models

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. The errors the Store returns wrap them, so that callers
// can test for them with errors.Is.
var (
	// ErrNotFound is matched by every error that reports a model missing,
	// locally (a *NotFoundError) or on the server (an *HTTPError with
	// status 404, or Hugging Face's "repository not found").
	ErrNotFound = errors.New("model not found")

	// ErrInvalidRef reports a malformed or refused model reference, such as
	// a Hugging Face file name that would escape the store.
	ErrInvalidRef = errors.New("invalid model reference")

	// ErrOffline reports that a model would have to be downloaded while
	// Store.Offline is set.
	ErrOffline = errors.New("offline mode is on, not downloading")

	// ErrUnauthorized is matched by an *HTTPError with status 401 or 403:
	// the repository is private or gated, or the token was refused.
	ErrUnauthorized = errors.New("unauthorized")

	// ErrChecksum is matched by a *ChecksumError: a download whose size or
	// SHA-256 is not the expected one.
	ErrChecksum = errors.New("checksum mismatch")

	// ErrNoMatch reports that a Hugging Face repository has no GGUF file of
	// the requested quantization.
	ErrNoMatch = errors.New("no matching GGUF file")

	// ErrIncomplete reports a split model (NAME-0000K-of-0000N.gguf) with
	// parts missing.
	ErrIncomplete = errors.New("split model is incomplete")

	// ErrAmbiguous reports a bare name that matches several files in one
	// search directory.
	ErrAmbiguous = errors.New("ambiguous model name")

	// ErrOutsideStore reports an attempt to remove a file that is not in
	// one of the store's directories.
	ErrOutsideStore = errors.New("not in the model store")

	// ErrBusy reports that a model is being downloaded and cannot be
	// removed now.
	ErrBusy = errors.New("model is being downloaded")
)

// A NotFoundError reports a model that is not available locally. Its message
// is one line that says what was searched and how to get the model.
// errors.Is(err, ErrNotFound) reports true for it.
type NotFoundError struct {
	// Ref is the reference as given.
	Ref string
	// Searched lists the directories searched or, for a path, the file
	// looked at.
	Searched []string
	// PullRef, if not empty, is a reference that Pull can download.
	PullRef string
	// Aliases are the catalog aliases, suggested when PullRef is empty.
	Aliases []string
	// IsPath is set when Ref names a file path rather than a model.
	IsPath bool
	// Err gives more detail, such as ErrOffline or ErrIncomplete, or is nil.
	Err error
}

// Error implements the error interface.
func (e *NotFoundError) Error() string {
	var b strings.Builder
	if e.IsPath {
		fmt.Fprintf(&b, "model file %s not found", quote(e.Ref))
	} else {
		fmt.Fprintf(&b, "model %s not found", quote(e.Ref))
	}
	if len(e.Searched) > 0 {
		fmt.Fprintf(&b, " (searched: %s)", strings.Join(e.Searched, ", "))
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	switch {
	case e.IsPath:
	case e.PullRef != "" && errors.Is(e.Err, ErrOffline):
		fmt.Fprintf(&b, "; pull it when online with: llamago pull %s, or give a path", e.PullRef)
	case e.PullRef != "":
		fmt.Fprintf(&b, "; pull it with: llamago pull %s, or give a path", e.PullRef)
	default:
		b.WriteString("; give a path to a .gguf file, or pull a model with: llamago pull hf://OWNER/REPO/FILE.gguf or OWNER/REPO[:QUANT]")
		if len(e.Aliases) > 0 {
			fmt.Fprintf(&b, " or an alias (%s)", strings.Join(e.Aliases, ", "))
		}
	}
	return b.String()
}

// Is reports whether target is ErrNotFound.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Unwrap returns e.Err.
func (e *NotFoundError) Unwrap() error { return e.Err }

// An HTTPError reports a request answered with an unexpected status. For
// 401 and 403 it matches ErrUnauthorized, and for 404, or Hugging Face's
// RepoNotFound and EntryNotFound codes, ErrNotFound.
type HTTPError struct {
	// URL is the URL requested.
	URL string
	// StatusCode and Status are those of the response, as in http.Response.
	StatusCode int
	Status     string
	// Code is the value of Hugging Face's X-Error-Code header, if any, such
	// as "GatedRepo" or "RepoNotFound".
	Code string
	// TokenSent tells whether the request carried an access token.
	TokenSent bool
}

// Error implements the error interface.
func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("GET %s: %s", e.URL, e.Status)
	var hint string
	switch {
	case e.Code == "GatedRepo":
		hint = "the repository is gated: accept its terms on the Hugging Face website, then set HF_TOKEN to an access token of that account"
		if e.TokenSent {
			hint = "the repository is gated and HF_TOKEN's account has no access yet: accept its terms on the Hugging Face website"
		}
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		hint = "the repository is private, gated or does not exist; if you have access, set HF_TOKEN to a Hugging Face access token"
		if e.TokenSent {
			hint = "the repository is private, gated or does not exist, or the token in HF_TOKEN was refused or has no access to it"
		}
	case e.StatusCode == http.StatusNotFound || e.Code == "RepoNotFound" || e.Code == "EntryNotFound":
		hint = "no such repository or file; check the owner, repository and file names"
	case e.StatusCode == http.StatusTooManyRequests:
		hint = "rate limited; try again later"
		if !e.TokenSent {
			hint += ", or set HF_TOKEN to a Hugging Face access token"
		}
	case e.StatusCode >= 500:
		hint = "server error; try again later"
	}
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// Unwrap returns the sentinel errors that e matches.
func (e *HTTPError) Unwrap() []error {
	var errs []error
	if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
		errs = append(errs, ErrUnauthorized)
	}
	if e.StatusCode == http.StatusNotFound || e.Code == "RepoNotFound" || e.Code == "EntryNotFound" {
		errs = append(errs, ErrNotFound)
	}
	return errs
}

// A ChecksumError reports a download whose size or SHA-256 digest is not the
// expected one. The download is deleted. errors.Is(err, ErrChecksum)
// reports true for it.
type ChecksumError struct {
	// URL is where the file came from.
	URL string
	// What is "size" or "sha256".
	What string
	// Want and Got are the expected and actual values: decimal byte counts
	// or hex digests.
	Want, Got string
}

// Error implements the error interface.
func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s: %s mismatch: want %s, got %s (download deleted)", e.URL, e.What, e.Want, e.Got)
}

// Is reports whether target is ErrChecksum.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// invalidRef returns an error that wraps ErrInvalidRef.
func invalidRef(ref, why string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidRef, ref, why)
}

// quote quotes a reference for a message: as it is, between double quotes,
// unless it has quotes or characters that do not print, which %q escapes.
// Windows paths keep single backslashes.
func quote(s string) string {
	if strings.ContainsRune(s, '"') || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return `"` + s + `"`
}
