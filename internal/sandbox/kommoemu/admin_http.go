package kommoemu

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// badRequestError is an admin request the emulator cannot act on.
type badRequestError string

func (e badRequestError) Error() string { return string(e) }

func badRequest(msg string) error { return badRequestError(msg) }

// adminDo wraps a JSON-in, JSON-out admin call.
func adminDo[Req any](fn func(Req) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if !adminDecode(w, r, &req) {
			return
		}
		out, err := fn(req)
		adminAnswer(w, out, err)
	}
}

// adminDoSub is adminDo for calls under /_admin/accounts/{sub}/.
func adminDoSub[Req any](fn func(string, Req) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if !adminDecode(w, r, &req) {
			return
		}
		out, err := fn(r.PathValue("sub"), req)
		adminAnswer(w, out, err)
	}
}

// adminDecode reads a JSON body; an empty body is an empty request.
func adminDecode(w http.ResponseWriter, r *http.Request, dst any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	err := json.NewDecoder(r.Body).Decode(dst)
	if err != nil && !errors.Is(err, io.EOF) {
		http.Error(w, `{"error":"body must be a JSON object"}`, http.StatusBadRequest)
		return false
	}
	return true
}

// adminAnswer writes out as JSON, or the error: 404 for ErrNotFound, 400
// otherwise (the Go API only fails on bad input).
func adminAnswer(w http.ResponseWriter, out any, err error) {
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ErrNotFound) {
			status = http.StatusNotFound
		}
		writeJSON(w, status, "application/json", map[string]string{"error": err.Error()})
		return
	}
	adminOK(w, out)
}

func adminOK(w http.ResponseWriter, out any) {
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, "application/json", out)
}

func contextWithTimeout(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}
