package webhookserver

import (
	"context"
	"errors"
	"html/template"
	"net/http"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
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
// reconciler put in status.authorizationURL (signed with the operator's
// key, expiring) and hands the code to that integration through the Secret
// <integration>-oauth-code, which the reconciler spends. A state works once
// (its nonce is recorded in that Secret, which every replica reads), a
// code still waiting there is never replaced, and an integration with
// working tokens is left alone.
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
	ki, st, err := s.callbackIntegration(ctx, state, q.Get("client_id"))
	if s.refuseCallback(w, err) {
		return
	}
	// Ready: the stored tokens were confirmed and nothing is amiss (after
	// the token Secret is deleted, or the tokens are revoked, it is not).
	if status.IsTrue(ki, v1alpha1.ConditionReady) {
		s.page(w, http.StatusConflict, "Already authorized",
			"KommoIntegration "+ki.Namespace+"/"+ki.Name+" already holds working tokens; nothing was changed. "+
				"To replace them on purpose, delete its token Secret first, then authorize again.")
		return
	}
	claim := &TokenClaim{ID: "oauth-state\x00" + st.Nonce, Expires: st.Expires, At: s.now()}
	err = s.cluster.PutOAuthCode(ctx, ki, code, claim)
	if s.refuseCodeWrite(w, ki, err) {
		return
	}
	s.log.Info("OAuth authorization code stored", "integration", ki.Namespace+"/"+ki.Name)
	s.page(w, http.StatusOK, "Kommo authorization received",
		"The operator now exchanges the code for tokens for KommoIntegration "+ki.Namespace+"/"+ki.Name+
			"; its Authorized condition shows the result. You can close this page.")
}

// refuseCallback answers a state that did not verify; false when err is nil.
func (s *Server) refuseCallback(w http.ResponseWriter, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, tokens.ErrStateExpired):
		s.log.V(1).Info("OAuth callback refused: state expired")
		s.page(w, http.StatusBadRequest, "Authorization link expired",
			"This authorization link has expired. Open the KommoIntegration's current status.authorizationURL and authorize again.")
	case errors.Is(err, errBadState):
		s.log.V(1).Info("OAuth callback refused: state does not verify")
		s.page(w, http.StatusBadRequest, "Invalid request",
			"The state does not match a pending authorization. Start again from the KommoIntegration's status.authorizationURL.")
	default:
		s.log.Error(err, "OAuth callback: cannot check the state")
		s.page(w, http.StatusServiceUnavailable, "Try again", "The server cannot check the authorization right now; reload this page in a minute.")
	}
	return true
}

// refuseCodeWrite answers a code that was not stored; false when err is nil.
func (s *Server) refuseCodeWrite(w http.ResponseWriter, ki *v1alpha1.KommoIntegration, err error) bool {
	name := ki.Namespace + "/" + tokens.OAuthCodeSecretName(ki.Name)
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrTokenReused):
		s.log.V(1).Info("OAuth callback refused: state already used", "integration", ki.Namespace+"/"+ki.Name)
		s.page(w, http.StatusBadRequest, "Authorization link already used",
			"This authorization link was already used. Open the KommoIntegration's current status.authorizationURL to authorize again.")
	case errors.Is(err, ErrCodePending):
		s.page(w, http.StatusConflict, "An authorization is already pending",
			"Secret "+name+" holds a code the operator has not spent yet; nothing was changed. "+
				"Wait for the KommoIntegration's Authorized condition, then try again if needed.")
	case errors.Is(err, ErrForeignSecret):
		s.page(w, http.StatusConflict, "Cannot store the code",
			"Secret "+name+" exists and is not managed by the operator; remove it and authorize again.")
	default:
		s.log.Error(err, "OAuth callback: storing the code failed", "integration", ki.Namespace+"/"+ki.Name)
		s.page(w, http.StatusServiceUnavailable, "Try again", "The code could not be stored; reload this page to try again.")
	}
	return true
}

var errBadState = errors.New("state does not verify")

// callbackIntegration checks the state with the operator's state key and
// finds the integration it names. Every mismatch is errBadState (an expired
// but genuine state is tokens.ErrStateExpired), so the page does not tell
// which part was wrong.
func (s *Server) callbackIntegration(ctx context.Context, state, clientID string) (*v1alpha1.KommoIntegration, tokens.CallbackState, error) {
	if _, err := tokens.ParseCallbackState(state); err != nil {
		return nil, tokens.CallbackState{}, errBadState
	}
	key, err := s.cluster.StateKey(ctx)
	if errors.Is(err, ErrNoClientSecret) {
		return nil, tokens.CallbackState{}, errBadState
	}
	if err != nil {
		return nil, tokens.CallbackState{}, err
	}
	st, err := tokens.VerifyCallbackState(key, state, s.now())
	switch {
	case errors.Is(err, tokens.ErrStateExpired):
		return nil, st, err
	case err != nil:
		return nil, st, errBadState
	}
	ki, err := s.cluster.Integration(ctx, st.Integration)
	if errors.Is(err, ErrNotFound) {
		return nil, st, errBadState
	}
	if err != nil {
		return nil, st, err
	}
	if ki.Spec.OAuthCallback == nil || !ki.DeletionTimestamp.IsZero() {
		return nil, st, errBadState
	}
	if clientID != "" {
		oc, err := s.cluster.OAuthClient(ctx, ki)
		if err != nil || oc.ClientID != clientID {
			return nil, st, errBadState
		}
	}
	return ki, st, nil
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
