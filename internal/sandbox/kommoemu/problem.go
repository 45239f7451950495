package kommoemu

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem types Kommo uses in problem+json bodies.
const (
	problemTypeHTTP  = "https://httpstatus.es/"
	problemTypeOAuth = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"
)

// problem is a problem+json body.
type problem struct {
	Title            string            `json:"title"`
	Type             string            `json:"type"`
	Status           int               `json:"status"`
	Detail           string            `json:"detail"`
	Hint             string            `json:"hint,omitempty"`
	ValidationErrors []validationError `json:"validation-errors,omitempty"`
}

type validationError struct {
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, status int, title, detail, hint string) {
	writeProblemBody(w, problem{Title: title, Type: problemTypeHTTP + strconv.Itoa(status), Status: status, Detail: detail, Hint: hint})
}

// writeOAuthProblem answers like Kommo's token endpoint: a generic title
// and detail, and the hint that tells the cases apart.
func writeOAuthProblem(w http.ResponseWriter, status int, hint string) {
	writeProblemBody(w, problem{
		Title:  "Incorrect request",
		Type:   problemTypeOAuth,
		Status: status,
		Detail: "The request is missing a required parameter or its parameters are invalid",
		Hint:   hint,
	})
}

// writeInvalidClient answers a refused client id or secret.
func writeInvalidClient(w http.ResponseWriter) {
	writeProblemBody(w, problem{
		Title:  "Unauthorized",
		Type:   problemTypeOAuth,
		Status: http.StatusUnauthorized,
		Detail: "Client authentication failed",
	})
}

func writeValidation(w http.ResponseWriter, errs ...validationError) {
	writeProblemBody(w, problem{
		Title:            "Bad Request",
		Type:             problemTypeHTTP + "400",
		Status:           http.StatusBadRequest,
		Detail:           "Request validation failed",
		ValidationErrors: errs,
	})
}

func writeProblemBody(w http.ResponseWriter, p problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// blockedPage is what a blocked account gets for every request: HTML, not
// JSON, as the reference warns.
const blockedPage = `<!DOCTYPE html>
<html><head><title>Access denied</title>
<style>body{font-family:sans-serif}</style>
<script>window.dataLayer=[];</script></head>
<body><h1>Access denied</h1>
<p>Your account has been blocked because of too many requests to the API. Please contact support.</p>
</body></html>
`

func writeBlockedPage(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(blockedPage))
}
