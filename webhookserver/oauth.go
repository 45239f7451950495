package webhookserver

import (
	"context"
	"errors"
	"html/template"
	"net/http"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// maxCodeLength bounds the authorization code accepted from the query
// (Kommo's are a few hundred characters).
const maxCodeLength = 4096

// resultPage is the short page the admin's browser lands on. Only fixed
// phrases and object names are shown, escaped by html/template; never the
// code or the state.
var resultPage = template.Must(template.New("result").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

type resultPageData struct {
	Title, Message string
}

// handleOAuthCallback receives Kommo's redirect after an account admin
// granted (or refused) access: it checks the state the KommoIntegration
// reconciler put in status.authorizationURL and hands the code to that
// integration through the Secret <integration>-oauth-code, which the
// reconciler spends.
func (s *Server) handleOAuthCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("from_widget") == "1":
		// Installing from the widget sends a code without state: nothing
		// proves which integration it is for, or that Kommo sent it, so it
		// is not stored. Kommo ignores this answer.
		s.page(w, http.StatusOK, "Kommo widget installed",
			"To authorize the integration, open the URL in the KommoIntegration's status.authorizationURL.")
		return
	case q.Get("error") != "":
		msg := "Kommo reported an error; nothing was changed. Try the authorization URL again."
		if q.Get("error") == "access_denied" {
			msg = "Access was refused in Kommo; nothing was changed."
		}
		s.page(w, http.StatusForbidden, "Not authorized", msg)
		return
	}
	code, state := q.Get("code"), q.Get("state")
	if code == "" || state == "" || len(code) > maxCodeLength || !printableASCII(code) {
		s.page(w, http.StatusBadRequest, "Invalid request", "The callback needs the code and state Kommo sends.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*s.cfg.AnswerWithin)
	defer cancel()
	ki, err := s.callbackIntegration(ctx, state, q.Get("client_id"))
	if errors.Is(err, errBadState) {
		s.log.V(1).Info("OAuth callback refused: state does not verify")
		s.page(w, http.StatusBadRequest, "Invalid request",
			"The state does not match a pending authorization. Start again from the KommoIntegration's status.authorizationURL.")
		return
	}
	if err != nil {
		s.log.Error(err, "OAuth callback: cannot check the state")
		s.page(w, http.StatusServiceUnavailable, "Try again", "The server cannot check the authorization right now; reload this page in a minute.")
		return
	}
	err = s.cluster.PutOwnedSecret(ctx, ki, tokens.OAuthCodeSecretName(ki.Name), map[string][]byte{tokens.OAuthCodeKey: []byte(code)}, nil)
	switch {
	case errors.Is(err, ErrForeignSecret):
		s.page(w, http.StatusConflict, "Cannot store the code",
			"Secret "+ki.Namespace+"/"+tokens.OAuthCodeSecretName(ki.Name)+" exists and is not managed by the operator; remove it and authorize again.")
		return
	case err != nil:
		s.log.Error(err, "OAuth callback: storing the code failed", "integration", ki.Namespace+"/"+ki.Name)
		s.page(w, http.StatusServiceUnavailable, "Try again", "The code could not be stored; reload this page to try again.")
		return
	}
	s.log.Info("OAuth authorization code stored", "integration", ki.Namespace+"/"+ki.Name)
	s.page(w, http.StatusOK, "Kommo authorization received",
		"The operator now exchanges the code for tokens for KommoIntegration "+ki.Namespace+"/"+ki.Name+
			"; its Authorized condition shows the result. You can close this page.")
}

var errBadState = errors.New("state does not verify")

// callbackIntegration finds the integration the state names and checks the
// state's tag with its client secret. Every mismatch is errBadState, so the
// page does not tell which part was wrong.
func (s *Server) callbackIntegration(ctx context.Context, state, clientID string) (*syncv1.KommoIntegration, error) {
	key, err := tokens.ParseCallbackState(state)
	if err != nil {
		return nil, errBadState
	}
	ki, err := s.cluster.Integration(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, errBadState
	}
	if err != nil {
		return nil, err
	}
	if ki.Spec.OAuthCallback == nil || (clientID != "" && clientID != ki.Spec.ClientID) || !ki.DeletionTimestamp.IsZero() {
		return nil, errBadState
	}
	secret, err := s.cluster.ClientSecret(ctx, ki)
	if errors.Is(err, ErrNoClientSecret) {
		return nil, errBadState
	}
	if err != nil {
		return nil, err
	}
	if !tokens.VerifyCallbackState(state, string(secret)) {
		return nil, errBadState
	}
	return ki, nil
}

// page answers a small HTML page that no cache keeps and that leaks no
// Referer (the URL holds the code).
func (s *Server) page(w http.ResponseWriter, status int, title, message string) {
	s.metrics.observeRoute("oauth-callback", status)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'")
	w.WriteHeader(status)
	_ = resultPage.Execute(w, resultPageData{Title: title, Message: message})
}
