package unisenderemu

import (
	"bytes"
	"context"
	"crypto/md5" //nolint:gosec // the digest Unisender's hook uses
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Hook defaults, per the reference: a delivery must get HTTP 200 within
// 3 s; a failed one is retried every 10 minutes for 24 hours, then the
// hook is stopped until setHook status=active.
const (
	DefaultHookRetryInterval = 10 * time.Minute
	DefaultHookMaxAttempts   = 24 * 6
	HookTimeout              = 3 * time.Second
)

// Hook statuses.
const (
	HookActive  = "active"
	HookStopped = "stopped"
)

// HookEventFormats are the event_format values setHook accepts (the
// likely ones; unverified). Deliveries are a JSON POST whichever is set.
var HookEventFormats = []string{"json_post", "http_get"}

// HookView is an account's event hook as the admin API shows it.
type HookView struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	EventFormat string   `json:"event_format"`
	Status      string   `json:"status"`
	Pending     int      `json:"pending"`   // events waiting for delivery
	Attempts    int      `json:"attempts"`  // failed attempts of the pending delivery
	Delivered   int      `json:"delivered"` // deliveries answered 200
	Failed      int      `json:"failed"`    // deliveries that failed
}

// hookState is an account's hook, guarded by Server.mu.
type hookState struct {
	view    HookView
	pending []hookEvent
	due     time.Time // when the next attempt may go (retries wait)
}

// hookEvent is one event: the shape is Unisender Go's (unverified for
// this API): event_name and event_data with the address, its status and
// when.
type hookEvent struct {
	Name string            `json:"event_name"`
	Data map[string]string `json:"event_data"`
}

func (s *Server) setHook(a *account, form formValues) (any, *apiError) {
	hookURL := strings.TrimSpace(form.Get("hook_url"))
	if !strings.HasPrefix(hookURL, "http://") && !strings.HasPrefix(hookURL, "https://") {
		return nil, errInvalidArg("hook_url must be an http(s) URL")
	}
	format := form.Get("event_format")
	if format == "" {
		format = HookEventFormats[0]
	}
	if !slices.Contains(HookEventFormats, format) {
		return nil, errInvalidArg("unknown event_format")
	}
	status := form.Get("status")
	if status == "" {
		status = HookActive
	}
	if status != HookActive && status != HookStopped {
		return nil, errInvalidArg("status must be active or stopped")
	}
	events := listParam(form, "events")
	if len(events) == 0 {
		return nil, errInvalidArg("events is required")
	}
	h := a.hook
	if h == nil || h.view.URL != hookURL {
		h = &hookState{}
		a.hook = h
	}
	h.view.URL, h.view.Events, h.view.EventFormat, h.view.Status = hookURL, events, format, status
	h.view.Attempts, h.due = 0, time.Time{}
	s.wakeHooks()
	return map[string]any{}, nil
}

// queueHookEvent queues an event for the account's active hook, if it
// subscribed to it; the caller holds s.mu.
func (s *Server) queueHookEvent(a *account, name string, c *contact, status string) {
	h := a.hook
	if h == nil || h.view.Status != HookActive || !slices.Contains(h.view.Events, name) {
		return
	}
	h.pending = append(h.pending, hookEvent{Name: name, Data: map[string]string{
		"email": c.email, "status": status, "event_time": formatTime(s.now()),
	}})
	s.wakeHooks()
}

// SetContactAvailability sets an address's availability (unreachable,
// mailbox_full, …: a bounce), as the service would after a delivery, and
// emits an email_status event.
func (s *Server) SetContactAvailability(key, email, availability string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.adminContact(key, email)
	if err != nil {
		return err
	}
	c.availability = availability
	s.queueHookEvent(s.accounts[key], "email_status", c, availability)
	return nil
}

// Hook returns the account's hook.
func (s *Server) Hook(key string) (HookView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[key]
	if a == nil || a.hook == nil {
		return HookView{}, false
	}
	v := a.hook.view
	v.Pending = len(a.hook.pending)
	return v, true
}

// StopHook stops the account's hook as 24 hours of failed deliveries
// would; its pending events are lost.
func (s *Server) StopHook(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[key]; a != nil && a.hook != nil {
		a.hook.view.Status, a.hook.pending = HookStopped, nil
	}
}

func (s *Server) wakeHooks() {
	s.hookOnce.Do(func() {
		s.hookWake = make(chan struct{}, 1)
		go s.deliverHooks()
	})
	select {
	case s.hookWake <- struct{}{}:
	default:
	}
}

// deliverHooks sends every account's pending events until Close.
func (s *Server) deliverHooks() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-s.hookWake:
		case <-tick.C:
		}
		for _, d := range s.dueDeliveries() {
			ok := post(d.url, d.body)
			s.settleDelivery(d, ok)
		}
	}
}

type delivery struct {
	key    string
	url    string
	body   []byte
	events int
}

// dueDeliveries takes, per account, the pending events whose hook is
// active and due, signed with the account's key.
func (s *Server) dueDeliveries() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []delivery
	for key, a := range s.accounts {
		h := a.hook
		if h == nil || h.view.Status != HookActive || len(h.pending) == 0 || s.now().Before(h.due) {
			continue
		}
		out = append(out, delivery{key: key, url: h.view.URL, body: signedBody(key, h.pending, h.view.Attempts), events: len(h.pending)})
	}
	return out
}

// signedBody is {"auth":…,"events_by_user":[{"events":[…]}]} (plus
// retry_count on a retry) where auth is the MD5 of the body with the API
// key in its place.
func signedBody(key string, events []hookEvent, retry int) []byte {
	body := map[string]any{"auth": key, "events_by_user": []any{map[string]any{"events": events}}}
	if retry > 0 {
		body["retry_count"] = retry
	}
	raw, _ := json.Marshal(body)
	sum := md5.Sum(raw) //nolint:gosec // see the import
	keyJSON, _ := json.Marshal(key)
	return bytes.Replace(raw, append([]byte(`"auth":`), keyJSON...), []byte(`"auth":"`+hex.EncodeToString(sum[:])+`"`), 1)
}

func post(url string, body []byte) bool {
	ctx, cancel := context.WithTimeout(context.Background(), HookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// settleDelivery drops the delivered events, or schedules the retry and
// stops the hook after the last attempt.
func (s *Server) settleDelivery(d delivery, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[d.key]
	if a == nil || a.hook == nil || a.hook.view.URL != d.url {
		return
	}
	h := a.hook
	if ok {
		h.pending = h.pending[min(d.events, len(h.pending)):]
		h.view.Delivered++
		h.view.Attempts = 0
		return
	}
	h.view.Failed++
	h.view.Attempts++
	if h.view.Attempts >= s.opts.hookMaxAttempts() {
		h.view.Status, h.pending, h.view.Attempts = HookStopped, nil, 0
		return
	}
	h.due = s.now().Add(s.opts.hookRetryInterval())
}

func (o Options) hookRetryInterval() time.Duration {
	if o.HookRetryInterval > 0 {
		return o.HookRetryInterval
	}
	return DefaultHookRetryInterval
}

func (o Options) hookMaxAttempts() int {
	if o.HookMaxAttempts > 0 {
		return o.HookMaxAttempts
	}
	return DefaultHookMaxAttempts
}

// exportContacts is the legacy synchronous export: list_id (required),
// offset, limit (at most 1000), field_names[] (email, email_status,
// email_availability, or user fields) and an optional email_status
// filter. It answers {"field_names":[…],"data":[[…],…]} in contact order.
func (s *Server) exportContacts(a *account, form formValues) (any, *apiError) {
	listID, err := strconv.ParseInt(form.Get("list_id"), 10, 64)
	if err != nil || a.listByID(listID) == nil {
		return nil, errInvalidArg("list_id must name a list")
	}
	offset, _ := strconv.Atoi(form.Get("offset"))
	limit, err := strconv.Atoi(form.Get("limit"))
	if err != nil || limit < 1 || limit > 1000 || offset < 0 {
		return nil, errInvalidArg("limit must be 1 to 1000, offset at least 0")
	}
	names := listParam(form, "field_names")
	if len(names) == 0 {
		names = []string{"email"}
	}
	want := form.Get("email_status")
	var rows [][]string
	for _, c := range a.allContacts() {
		if c.membership[listID] == nil || c.email == "" || (want != "" && c.status != want) {
			continue
		}
		rows = append(rows, exportRow(c, names))
	}
	rows = rows[min(offset, len(rows)):]
	rows = rows[:min(limit, len(rows))]
	return map[string]any{"field_names": names, "data": rows}, nil
}

func exportRow(c *contact, names []string) []string {
	row := make([]string, len(names))
	for i, n := range names {
		switch n {
		case "email":
			row[i] = c.email
		case "email_status":
			row[i] = c.status
		case "email_availability":
			row[i] = c.availabilityOrDefault()
		default:
			row[i] = c.fields[n]
		}
	}
	return row
}

func (c *contact) availabilityOrDefault() string {
	if c.availability == "" {
		return "available"
	}
	return c.availability
}

// ErrNoHook: the account registered no hook.
var ErrNoHook = errors.New("unisenderemu: no hook registered")

// availabilities are the values of email.availability, per the reference.
var availabilities = []string{"available", "unreachable", "temp_unreachable", "mailbox_full", "spam_rejected", "spam_folder"}

func (s *Server) adminSetAvailability(key string, r *http.Request) (any, error) {
	var body struct {
		Availability string `json:"availability"`
	}
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	if !slices.Contains(availabilities, body.Availability) {
		return nil, fmt.Errorf("availability must be one of %s", strings.Join(availabilities, ", "))
	}
	return nil, s.SetContactAvailability(key, r.PathValue("email"), body.Availability)
}

// adminSetStatuses sets one global status on many addresses at once
// ({"emails":[…],"status":"unsubscribed"}), as a burst of unsubscribes.
func (s *Server) adminSetStatuses(key string, r *http.Request) (any, error) {
	var body struct {
		Emails []string `json:"emails"`
		Status string   `json:"status"`
	}
	if err := decodeBody(r, &body); err != nil {
		return nil, err
	}
	for _, e := range body.Emails {
		if err := s.SetContactStatus(key, e, body.Status); err != nil {
			return nil, fmt.Errorf("%s: %w", e, err)
		}
	}
	return nil, nil
}
