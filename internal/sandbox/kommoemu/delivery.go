package kommoemu

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// deliveryQueue holds an account's contact changes waiting for delivery.
// One worker per account sends them in order.
type deliveryQueue struct {
	events []kommo.WebhookEvent
	leads  []kommo.LeadEvent
	wake   chan struct{} // capacity 1: "there is something to send"
	flush  chan struct{} // capacity 1: "end the batch window now"
	busy   bool          // the worker holds a batch it has not finished
}

func (q *deliveryQueue) init() {
	q.wake = make(chan struct{}, 1)
	q.flush = make(chan struct{}, 1)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// enqueue queues a change if some enabled hook wants it; the caller holds
// s.mu. A hook registered later does not receive earlier changes.
func (s *Server) enqueue(a *account, action kommo.Action, c kommo.Contact) {
	wanted := slices.ContainsFunc(a.hooks, func(h *hook) bool { return !h.disabled && h.wants(action, c.Type) })
	if !wanted {
		return
	}
	a.deliveries.events = append(a.deliveries.events, kommo.WebhookEvent{Action: action, Contact: cloneContact(c)})
	signal(a.deliveries.wake)
}

// Flush ends every account's current batch window: what is queued is sent
// now. With a long WebhookBatchWindow, tests use it to decide exactly which
// changes share a delivery.
func (s *Server) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if len(a.deliveries.events)+len(a.deliveries.leads) > 0 {
			signal(a.deliveries.flush)
		}
	}
}

// wants reports whether the hook subscribes to the change. Companies travel
// under "contacts" in the wire shape; the emulator sends them to hooks of
// either <action>_company or <action>_contact (unverified which Kommo does;
// the sync must cope with companies either way).
func (h *hook) wants(action kommo.Action, t kommo.ContactType) bool {
	verb := string(action)
	if slices.Contains(h.settings, verb+"_contact") {
		return true
	}
	return t == kommo.ContactTypeCompany && slices.Contains(h.settings, verb+"_company")
}

// target is a hook as the worker needs it outside the lock.
type target struct {
	h           *hook
	destination string
	settings    []string
}

// deliver is the account's delivery worker: after a change arrives it waits
// the batch window, then sends everything queued, in batches of at most
// WebhookMaxBatch events, to each enabled hook that wants them.
func (s *Server) deliver(a *account) {
	defer s.workers.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-a.deliveries.wake:
		}
		if d := s.opts.WebhookBatchWindow; d > 0 {
			s.batchWindow(a, d)
		}
		for s.ctx.Err() == nil {
			batch, leads, targets := s.takeBatch(a)
			if len(batch)+len(leads) == 0 {
				break
			}
			for _, t := range targets {
				s.deliverTo(a, t, batch, leads)
			}
			s.mu.Lock()
			a.deliveries.busy = false
			s.mu.Unlock()
		}
	}
}

// batchWindow waits d, or until Flush or Close.
func (s *Server) batchWindow(a *account, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.deliveries.flush:
	case <-s.ctx.Done():
	}
}

// takeBatch takes up to WebhookMaxBatch queued events, contacts' first.
func (s *Server) takeBatch(a *account) ([]kommo.WebhookEvent, []kommo.LeadEvent, []target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &a.deliveries
	n := min(len(q.events), s.opts.WebhookMaxBatch)
	m := min(len(q.leads), s.opts.WebhookMaxBatch-n)
	if n+m == 0 {
		return nil, nil, nil
	}
	batch := slices.Clone(q.events[:n])
	q.events = slices.Delete(q.events, 0, n)
	leads := slices.Clone(q.leads[:m])
	q.leads = slices.Delete(q.leads, 0, m)
	q.busy = true
	var targets []target
	for _, h := range a.sortedHooks() {
		if !h.disabled {
			targets = append(targets, target{h: h, destination: h.destination, settings: slices.Clone(h.settings)})
		}
	}
	return batch, leads, targets
}

func (s *Server) deliverTo(a *account, t target, batch []kommo.WebhookEvent, leadBatch []kommo.LeadEvent) {
	probe := hook{settings: t.settings}
	var events []kommo.WebhookEvent
	for _, ev := range batch {
		if probe.wants(ev.Action, ev.Contact.Type) {
			events = append(events, ev)
		}
	}
	var leads []kommo.LeadEvent
	for _, ev := range leadBatch {
		if probe.wantsLead(ev.Action) {
			leads = append(leads, ev)
		}
	}
	if len(events)+len(leads) == 0 {
		return
	}
	body := kommo.EncodeWebhook(&kommo.WebhookPayload{AccountID: a.ID, Subdomain: a.Subdomain, Events: events, Leads: leads}).Encode()
	ok := s.post(t.destination, body)
	s.recordDelivery(t.h, ok, len(events)+len(leads))
}

// post sends one delivery. Success is a 2xx answer within WebhookTimeout.
func (s *Server) post(destination, body string) bool {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, destination, strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "amoCRM-Webhooks/3.0 (kommoemu)")
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// recordDelivery counts a delivery and disables the hook once its failures
// within WebhookFailureWindow exceed WebhookMaxFailures (so the failure
// that disables it is itself a failure, as the reference says).
func (s *Server) recordDelivery(h *hook, ok bool, events int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.deliveries++
	s.stats.Deliveries++
	if ok {
		s.stats.DeliveredEvents += events
		return
	}
	h.failed++
	s.stats.DeliveryFailures++
	now := s.now()
	h.failures = append(recentFailures(h.failures, now, s.opts.WebhookFailureWindow), now)
	if len(h.failures) > s.opts.WebhookMaxFailures {
		h.disabled = true
	}
}

func recentFailures(fs []time.Time, now time.Time, window time.Duration) []time.Time {
	cutoff := now.Add(-window)
	return slices.DeleteFunc(fs, func(t time.Time) bool { return !t.After(cutoff) })
}

// WaitIdle blocks until no account has a change queued or a delivery in
// flight, or ctx ends. Tests call it after changing contacts.
func (s *Server) WaitIdle(ctx context.Context) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !s.idle() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func (s *Server) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if len(a.deliveries.events)+len(a.deliveries.leads) > 0 || a.deliveries.busy {
			return false
		}
	}
	return true
}
