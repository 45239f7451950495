package webhookserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
)

// Keys of the widget-key Secret besides contract.WidgetKeySecretKey:
// what the admin entered for the list, kept for the operator to show and
// for a later use; the binding's spec.list decides which list is used.
const (
	WidgetListTitleKey = "listTitle"
	WidgetListIDKey    = "listID"
)

// maxWidgetBody bounds the JSON the widget posts.
const maxWidgetBody = 16 << 10

// widgetKeyRequest is the body of POST /widget.
type widgetKeyRequest struct {
	APIKey    string `json:"apiKey"`
	ListTitle string `json:"listTitle,omitempty"`
	ListID    int64  `json:"listID,omitempty"`
}

// widgetKeyResponse answers a stored key.
type widgetKeyResponse struct {
	Stored   bool     `json:"stored"`
	Bindings []string `json:"bindings"`
}

// WidgetStatus is the body of GET /widget/status: what the widget's status
// panel shows. LastError is a condition message of the binding, which the
// operator writes without secrets.
type WidgetStatus struct {
	Connected bool                `json:"connected"`
	Binding   string              `json:"binding"`
	ListID    int64               `json:"listID,omitempty"`
	ListTitle string              `json:"listTitle,omitempty"`
	Import    *WidgetImportStatus `json:"import,omitempty"`
	LastError string              `json:"lastError,omitempty"`
}

// WidgetImportStatus is the initial import's progress.
type WidgetImportStatus struct {
	Phase     string `json:"phase,omitempty"`
	Imported  int64  `json:"imported"`
	Total     int64  `json:"total"`
	Completed bool   `json:"completed"`
}

// handleWidgetKey stores the Unisender API key the widget sends into the
// widget-key Secret of every binding of the caller's integration that
// allows it (spec.allowWidgetKey).
func (s *Server) handleWidgetKey(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*s.cfg.AnswerWithin)
	defer cancel()
	caller, ok := s.widgetCaller(ctx, w, r, "widget")
	if !ok {
		return
	}
	if !caller.claims.IsAdmin {
		s.widgetError(w, "widget", http.StatusForbidden, "only an administrator of the Kommo account may change the Unisender key")
		return
	}
	req, status, msg := readWidgetKeyRequest(w, r)
	if status != 0 {
		s.widgetError(w, "widget", status, msg)
		return
	}
	bindings, err := s.widgetBindings(ctx, caller)
	if err != nil {
		s.internalError(w, "widget", err)
		return
	}
	var allowed []v1alpha1.UnisenderBinding
	for _, b := range bindings {
		if b.Spec.AllowWidgetKey {
			allowed = append(allowed, b)
		}
	}
	if len(allowed) == 0 {
		s.widgetError(w, "widget", http.StatusForbidden, noWidgetBindingMessage(len(bindings)))
		return
	}
	resp := widgetKeyResponse{Stored: true}
	claim := s.tokenClaim(&caller.claims)
	for i := range allowed {
		b := &allowed[i]
		err := s.cluster.PutOwnedSecret(ctx, b, contract.WidgetKeySecretName(b.Name), req.secretData(), claim)
		if errors.Is(err, ErrTokenReused) {
			s.widgetError(w, "widget", http.StatusUnauthorized, errTokenReused)
			return
		}
		if errors.Is(err, ErrForeignSecret) {
			s.widgetError(w, "widget", http.StatusConflict, fmt.Sprintf(
				"Secret %s/%s exists and is not managed by the operator; remove or rename it", b.Namespace, contract.WidgetKeySecretName(b.Name)))
			return
		}
		if err != nil {
			s.internalError(w, "widget", err)
			return
		}
		resp.Bindings = append(resp.Bindings, b.Namespace+"/"+b.Name)
	}
	s.log.Info("Unisender API key stored from the Kommo widget",
		"bindings", resp.Bindings, "accountID", caller.claims.AccountID, "userID", caller.claims.UserID)
	s.writeJSON(w, "widget", http.StatusOK, resp)
}

func noWidgetBindingMessage(bindings int) string {
	if bindings == 0 {
		return "no UnisenderBinding uses this Kommo integration yet"
	}
	return "no UnisenderBinding of this Kommo integration accepts a key from the widget: set spec.allowWidgetKey: true on the binding, or put the key in its spec.apiKeySecretRef Secret"
}

// readWidgetKeyRequest decodes and checks the body.
func readWidgetKeyRequest(w http.ResponseWriter, r *http.Request) (widgetKeyRequest, int, string) {
	var req widgetKeyRequest
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, http.StatusUnsupportedMediaType, "want Content-Type application/json"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWidgetBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return req, http.StatusRequestEntityTooLarge, "body too large"
	}
	if err != nil {
		return req, http.StatusBadRequest, "could not read the body"
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return req, http.StatusBadRequest, "want a JSON object {\"apiKey\": \"…\", \"listTitle\"?: \"…\", \"listID\"?: n}"
	}
	req.APIKey = strings.TrimSpace(req.APIKey)
	req.ListTitle = strings.TrimSpace(req.ListTitle)
	switch {
	case req.APIKey == "":
		return req, http.StatusBadRequest, "apiKey is required"
	case len(req.APIKey) > 256 || !printableASCII(req.APIKey):
		return req, http.StatusBadRequest, "apiKey is not a Unisender API key (printable characters, at most 256)"
	case len(req.ListTitle) > 255:
		return req, http.StatusBadRequest, "listTitle is longer than 255 characters"
	case req.ListID < 0:
		return req, http.StatusBadRequest, "listID must be a positive number"
	}
	return req, 0, ""
}

func (req widgetKeyRequest) secretData() map[string][]byte {
	data := map[string][]byte{contract.WidgetKeySecretKey: []byte(req.APIKey)}
	if req.ListTitle != "" {
		data[WidgetListTitleKey] = []byte(req.ListTitle)
	}
	if req.ListID > 0 {
		data[WidgetListIDKey] = []byte(strconv.FormatInt(req.ListID, 10))
	}
	return data
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// handleWidgetStatus reports the sync state of the caller's binding: the
// first (by name) that accepts a widget key, else the first.
func (s *Server) handleWidgetStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*s.cfg.AnswerWithin)
	defer cancel()
	caller, ok := s.widgetCaller(ctx, w, r, "widget-status")
	if !ok {
		return
	}
	bindings, err := s.widgetBindings(ctx, caller)
	if err != nil {
		s.internalError(w, "widget-status", err)
		return
	}
	if len(bindings) == 0 {
		s.widgetError(w, "widget-status", http.StatusNotFound, noWidgetBindingMessage(0))
		return
	}
	chosen := &bindings[0]
	for i := range bindings {
		if bindings[i].Spec.AllowWidgetKey {
			chosen = &bindings[i]
			break
		}
	}
	s.writeJSON(w, "widget-status", http.StatusOK, widgetStatusOf(chosen))
}

func widgetStatusOf(b *v1alpha1.UnisenderBinding) WidgetStatus {
	st := WidgetStatus{
		Binding:   b.Namespace + "/" + b.Name,
		Connected: meta.IsStatusConditionTrue(b.Status.Conditions, v1alpha1.ConditionReady),
		ListID:    b.Status.ListID,
		ListTitle: b.Spec.List.Title,
		LastError: lastError(b.Status.Conditions),
	}
	if imp := b.Status.Import; imp != nil {
		st.Import = &WidgetImportStatus{
			Phase: string(imp.Phase), Imported: imp.Imported, Total: imp.Total,
			Completed: imp.Phase == v1alpha1.ImportCompleted,
		}
	}
	return st
}

// lastError is the message of what stops the binding: Stalled if true,
// else a Ready=False that is not mere progress.
func lastError(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, v1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		return c.Message
	}
	c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
	if c == nil || c.Status == metav1.ConditionTrue {
		return ""
	}
	switch c.Reason {
	case v1alpha1.ReasonProgressing, v1alpha1.ReasonImportRunning, v1alpha1.ReasonSuspended:
		return ""
	}
	return c.Message
}

// widgetCaller verifies the token or answers the refusal.
func (s *Server) widgetCaller(ctx context.Context, w http.ResponseWriter, r *http.Request, route string) (*widgetCaller, bool) {
	caller, err := s.verifyWidgetToken(ctx, r.Header.Get("X-Auth-Token"))
	if err == nil {
		return caller, true
	}
	var te *tokenError
	if errors.As(err, &te) {
		s.log.V(1).Info("widget token refused", "route", route, "reason", te.detail.Error())
		s.widgetError(w, route, cmp.Or(te.status, http.StatusUnauthorized), te.msg)
		return nil, false
	}
	s.internalError(w, route, err)
	return nil, false
}

// widgetBindings lists the bindings of every integration the token is
// valid for, skipping those being deleted. Only integrations on record for
// the token's account qualify (verifyWidgetToken selects them so; checked
// here again because it is what keeps a key out of another account's
// binding).
func (s *Server) widgetBindings(ctx context.Context, caller *widgetCaller) ([]v1alpha1.UnisenderBinding, error) {
	var out []v1alpha1.UnisenderBinding
	for i := range caller.integrations {
		if caller.integrations[i].Status.AccountID != caller.claims.AccountID {
			continue
		}
		bs, err := s.cluster.BindingsOf(ctx, &caller.integrations[i])
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			if b.DeletionTimestamp.IsZero() {
				out = append(out, b)
			}
		}
	}
	return out, nil
}

// widgetError answers {"error": msg}, the shape the widget shows.
func (s *Server) widgetError(w http.ResponseWriter, route string, status int, msg string) {
	s.writeJSON(w, route, status, map[string]string{"error": msg})
}

// internalError logs err (errors from the API server name objects, never
// Secret data) and answers a generic 500.
func (s *Server) internalError(w http.ResponseWriter, route string, err error) {
	s.log.Error(err, "request failed", "route", route)
	s.widgetError(w, route, http.StatusInternalServerError, "internal error; the operator's logs say more")
}

func (s *Server) writeJSON(w http.ResponseWriter, route string, status int, v any) {
	s.metrics.observeRoute(route, status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
