package kommoemu

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// hook is a registered webhook; guarded by Server.mu.
type hook struct {
	id                   int64
	destination          string
	settings             []string
	sort                 int
	disabled             bool
	createdAt, updatedAt int64
	failures             []time.Time // business time of recent failures
	deliveries, failed   int
}

// Webhook is a registered webhook as the admin API shows it, with its
// delivery counters.
type Webhook struct {
	ID             int64    `json:"id"`
	Destination    string   `json:"destination"`
	Settings       []string `json:"settings"`
	Sort           int      `json:"sort"`
	Disabled       bool     `json:"disabled"`
	CreatedAt      int64    `json:"created_at"`
	UpdatedAt      int64    `json:"updated_at"`
	Deliveries     int      `json:"deliveries"`      // POSTs attempted
	Failures       int      `json:"failures"`        // failed POSTs, all time
	RecentFailures int      `json:"recent_failures"` // failed POSTs within WebhookFailureWindow
}

// knownSettings are the webhook events Kommo offers.
var knownSettings = map[string]bool{}

func init() {
	for _, entity := range []string{"lead", "contact", "company", "customer", "task"} {
		for _, verb := range []string{"add", "update", "delete", "restore", "responsible", "note"} {
			knownSettings[verb+"_"+entity] = true
		}
	}
	knownSettings["status_lead"] = true
	knownSettings["add_talk"] = true
	knownSettings["update_talk"] = true
	knownSettings["add_unsorted"] = true
}

// Webhooks lists the account's webhooks by sort, then id.
func (s *Server) Webhooks(subdomain string) ([]Webhook, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return nil, err
	}
	out := make([]Webhook, 0, len(a.hooks))
	for _, h := range a.sortedHooks() {
		out = append(out, Webhook{ID: h.id, Destination: h.destination, Settings: slices.Clone(h.settings),
			Sort: h.sort, Disabled: h.disabled, CreatedAt: h.createdAt, UpdatedAt: h.updatedAt,
			Deliveries: h.deliveries, Failures: h.failed,
			RecentFailures: len(recentFailures(slices.Clone(h.failures), s.now(), s.opts.WebhookFailureWindow))})
	}
	return out, nil
}

// SetWebhookDisabled disables or re-enables a hook, as the account admin
// does in Kommo's settings. Re-enabling forgets its recent failures.
func (s *Server) SetWebhookDisabled(subdomain, destination string, disabled bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return err
	}
	h := a.hookFor(destination)
	if h == nil {
		return fmt.Errorf("%w: webhook with that destination", ErrNotFound)
	}
	h.disabled = disabled
	if !disabled {
		h.failures = nil
	}
	return nil
}

func (a *account) sortedHooks() []*hook {
	hs := slices.Clone(a.hooks)
	slices.SortFunc(hs, func(x, y *hook) int { return cmp.Or(cmp.Compare(x.sort, y.sort), cmp.Compare(x.id, y.id)) })
	return hs
}

func (a *account) hookFor(destination string) *hook {
	for _, h := range a.hooks {
		if h.destination == destination {
			return h
		}
	}
	return nil
}

func (h *hook) wire(accountID int64) map[string]any {
	return map[string]any{
		"id": h.id, "destination": h.destination, "created_at": h.createdAt, "updated_at": h.updatedAt,
		"account_id": accountID, "created_by": 0, "sort": h.sort, "disabled": h.disabled, "settings": h.settings,
	}
}

// serveListWebhooks is GET /api/v4/webhooks; 204 when there are none.
func (s *Server) serveListWebhooks(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	s.mu.Lock()
	list := []map[string]any{}
	for _, h := range r.acct.sortedHooks() {
		list = append(list, h.wire(r.acct.ID))
	}
	s.mu.Unlock()
	if len(list) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_total_items": len(list),
		"_links":       map[string]link{"self": {r.base + "/api/v4/webhooks"}},
		"_embedded":    map[string]any{"webhooks": list},
	})
}

type subscribeRequest struct {
	Destination string   `json:"destination"`
	Settings    []string `json:"settings"`
	Sort        int      `json:"sort"`
}

// serveSubscribe is POST /api/v4/webhooks. Subscribing a registered
// destination again replaces its settings and sort and re-enables it
// (unverified on Kommo; the emulator's reading).
func (s *Server) serveSubscribe(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	var req subscribeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeValidation(w, validationError{Path: "", Detail: "body must be a JSON object"})
		return
	}
	if errs := validateSubscribe(req); len(errs) > 0 {
		writeValidation(w, errs...)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix()
	status := http.StatusOK
	h := r.acct.hookFor(req.Destination)
	if h == nil {
		h = &hook{id: s.newID(), destination: req.Destination, createdAt: now}
		r.acct.hooks = append(r.acct.hooks, h)
		status = http.StatusCreated
	}
	h.settings, h.sort, h.updatedAt = slices.Clone(req.Settings), req.Sort, now
	h.disabled, h.failures = false, nil
	writeJSON(w, status, halJSON, h.wire(r.acct.ID))
}

func validateSubscribe(req subscribeRequest) []validationError {
	var errs []validationError
	u, err := url.Parse(req.Destination)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(req.Destination) > 2048 {
		errs = append(errs, validationError{Path: "destination", Detail: "must be an absolute http(s) URL"})
	}
	if len(req.Settings) == 0 {
		errs = append(errs, validationError{Path: "settings", Detail: "must name at least one event"})
	}
	for _, st := range req.Settings {
		if !knownSettings[st] {
			errs = append(errs, validationError{Path: "settings", Detail: "unknown event " + truncate.Text(st, 40)})
		}
	}
	return errs
}

// serveUnsubscribe is DELETE /api/v4/webhooks with {"destination": …}.
func (s *Server) serveUnsubscribe(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	var req struct {
		Destination string `json:"destination"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Destination == "" {
		writeValidation(w, validationError{Path: "destination", Detail: "required"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := r.acct.hookFor(req.Destination)
	if h == nil {
		writeProblem(w, http.StatusNotFound, "Not found", "no webhook with that destination", "")
		return
	}
	r.acct.hooks = slices.DeleteFunc(r.acct.hooks, func(x *hook) bool { return x == h })
	w.WriteHeader(http.StatusNoContent)
}
