package webhookserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// dummySecret is compared against when the tenant is unknown, so that an
// unknown tenant and a wrong secret cost the same and look the same.
var dummySecret = make([]byte, 64)

const formContentType = "application/x-www-form-urlencoded"

// handleKommoWebhook accepts a Kommo delivery: authenticate, read and parse
// every contact, put one job to beanstalkd, and answer 2xx only once
// beanstalkd said INSERTED (its binlog has the job). Everything after the
// headers — reading the body included — happens within AnswerWithin.
func (s *Server) handleKommoWebhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	deadline := start.Add(s.cfg.AnswerWithin)
	// Bound the body read too; an error here only means the deadline stays
	// the server's ReadTimeout.
	_ = http.NewResponseController(w).SetReadDeadline(deadline)
	info, ok := s.authenticate(r.PathValue("tenant"), r.PathValue("secret"))
	if !ok {
		s.refuseWebhook(w, start, "", http.StatusNotFound, "not found", "")
		return
	}
	admitted, refused := s.admit.admit(info.ID, s.now())
	if refused != nil {
		s.refuseAdmission(w, start, info.ID, refused)
		return
	}
	defer admitted.release()
	payload, status, reason, logReason := s.readPayload(w, r)
	if status != 0 {
		s.refuseWebhook(w, start, info.ID, status, reason, logReason)
		return
	}
	if info.AccountID != 0 && payload.AccountID != info.AccountID {
		s.refuseWebhook(w, start, info.ID, http.StatusForbidden,
			"the payload's account[id] is not this tenant's Kommo account", "account mismatch")
		return
	}
	refs, leads := contactRefs(payload), leadRefs(payload)
	// A suspended binding's events are not queued: resuming runs a resync,
	// which catches up with everything, deletes included.
	if len(refs)+len(leads) > 0 && !info.Suspended {
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		err := s.enqueue(ctx, info, payload.AccountID, admitted.priority, refs)
		if err == nil {
			err = s.enqueueLeads(ctx, info, payload.AccountID, leads)
		}
		cancel()
		if err != nil {
			s.log.Error(err, "enqueue failed; answered 503", "tenant", info.ID)
			s.metrics.queueErrors.Inc()
			s.refuseWebhook(w, start, info.ID, http.StatusServiceUnavailable, "queue unavailable, retry later", "")
			return
		}
	}
	s.metrics.observeWebhook(info.ID, http.StatusOK, len(payload.Events), start)
	// No Content-Type: net/http sniffs the same text/plain; charset=utf-8
	// from "ok\n", and a header set by the handler costs a copy of the
	// header map per answer (issue 20: fewer bytes per request, fewer GCs
	// in the latency tail).
	_, _ = io.WriteString(w, "ok\n")
}

// contactRefs names the people the payload says changed, each once (its last
// action), in the order first named. Companies are not synced; nothing else
// of the body is kept: the worker reads the contacts from Kommo.
func contactRefs(p *kommo.WebhookPayload) []queue.ContactRef {
	refs := make([]queue.ContactRef, 0, len(p.Events))
	index := make(map[int64]int, len(p.Events))
	for _, ev := range p.Events {
		if ev.Contact.IsCompany() || ev.Contact.ID <= 0 {
			continue
		}
		if i, ok := index[ev.Contact.ID]; ok {
			refs[i].Action = string(ev.Action)
			continue
		}
		index[ev.Contact.ID] = len(refs)
		refs = append(refs, queue.ContactRef{ID: ev.Contact.ID, Action: string(ev.Action)})
	}
	return refs
}

// leadRefs names the leads the payload says changed, each once (its last
// action): the worker re-reads their contacts.
func leadRefs(p *kommo.WebhookPayload) []queue.LeadRef {
	refs := make([]queue.LeadRef, 0, len(p.Leads))
	index := make(map[int64]int, len(p.Leads))
	for _, ev := range p.Leads {
		if i, ok := index[ev.Lead.ID]; ok {
			refs[i].Action = string(ev.Action)
			continue
		}
		index[ev.Lead.ID] = len(refs)
		refs = append(refs, queue.LeadRef{ID: ev.Lead.ID, Action: string(ev.Action)})
	}
	return refs
}

// enqueueLeads puts one job per queue.MaxLeadsPerJob leads, like enqueue.
func (s *Server) enqueueLeads(ctx context.Context, info TenantInfo, accountID int64, refs []queue.LeadRef) error {
	receivedAt := s.now()
	for chunk := range slices.Chunk(refs, queue.MaxLeadsPerJob) {
		body, err := queue.EncodeLeadsJob(info.ID, accountID, receivedAt, chunk)
		if err != nil {
			return err
		}
		if _, err := s.queue.Put(ctx, s.cfg.Tube, body, jobPriority, 0, s.cfg.JobTTR); err != nil {
			return err
		}
	}
	return nil
}

// authenticate resolves the tenant and checks the path secret in constant
// time; every failure looks the same to the caller.
func (s *Server) authenticate(segment, secret string) (TenantInfo, bool) {
	info, ok := s.dir.Tenant(segment)
	if !ok {
		subtle.ConstantTimeCompare([]byte(secret), dummySecret)
		return TenantInfo{}, false
	}
	return info, subtle.ConstantTimeCompare([]byte(secret), info.Secret) == 1
}

// bodyBuffers recycles the buffers webhook bodies are read into.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readPayload reads and parses the form body. A non-zero status says why it
// was refused: reason goes to the caller; logReason, if set, to the log
// (the parser's reason can quote a value of the body, which is contact
// data, so the log gets only the key at fault; a malformed encoding is
// reported under the key "(body)" or the raw key).
func (s *Server) readPayload(w http.ResponseWriter, r *http.Request) (p *kommo.WebhookPayload, status int, reason, logReason string) {
	if ct := r.Header.Get("Content-Type"); ct != formContentType {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != formContentType {
			return nil, http.StatusUnsupportedMediaType, "want Content-Type " + formContentType, "content type"
		}
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, "body too large", "body too large"
	}
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer recycle(&bodyBuffers, buf)
	buf.Reset()
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge, "body too large", "body too large"
	case err != nil:
		return nil, http.StatusBadRequest, "could not read the body", "body read: " + err.Error()
	}
	// The parser reads the form encoding itself (no url.Values in between)
	// and copies what it keeps, so buf can go back to the pool.
	payload, err := kommo.ParseWebhookBody(buf.Bytes())
	if err != nil {
		logReason = "malformed webhook"
		var we *kommo.WebhookError
		if errors.As(err, &we) {
			logReason = "malformed webhook key " + truncate.Text(we.Key, 120)
		}
		return nil, http.StatusBadRequest, err.Error(), logReason
	}
	return payload, 0, "", ""
}

// enqueue puts one job per queue.MaxContactsPerJob contacts (more if such a
// job would exceed beanstalkd's max-job-size) and returns once beanstalkd
// answered INSERTED for every one. A failure after some were put
// leaves those in the queue: Kommo retries the delivery, and reading a
// contact twice changes nothing.
func (s *Server) enqueue(ctx context.Context, info TenantInfo, accountID int64, pri uint32, refs []queue.ContactRef) error {
	buf := jobBuffers.Get().(*bytes.Buffer)
	defer recycle(&jobBuffers, buf)
	receivedAt := s.now()
	jobs := (len(refs) + queue.MaxContactsPerJob - 1) / queue.MaxContactsPerJob
	s.admit.charge(info.ID, jobs, receivedAt)
	encode := func(chunk []queue.ContactRef) ([]byte, error) {
		return queue.AppendContactsJob(buf.AvailableBuffer(), info.ID, accountID, receivedAt, chunk)
	}
	put := func(body []byte) error {
		_, err := s.queue.Put(ctx, s.cfg.Tube, body, pri, 0, s.cfg.JobTTR)
		return err
	}
	for chunk := range slices.Chunk(refs, queue.MaxContactsPerJob) {
		if err := queue.PutWithin(chunk, s.cfg.MaxJobBytes, encode, put); err != nil {
			return err
		}
	}
	return nil
}

// jobBuffers recycles the buffers job bodies are encoded into.
var jobBuffers = sync.Pool{New: func() any {
	b := new(bytes.Buffer)
	b.Grow(queue.MaxContactsPerJob*40 + 256)
	return b
}}

func recycle(pool *sync.Pool, buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 { // do not pin rare huge bodies in the pool
		buf.Reset()
		pool.Put(buf)
	}
}

// refuseWebhook answers a 4xx/5xx with a reason that names the problem,
// never a secret (the reason comes from our parser, which quotes keys and
// short numeric values, never the path).
func (s *Server) refuseWebhook(w http.ResponseWriter, start time.Time, tenantID string, status int, reason, logReason string) {
	s.metrics.observeWebhook(tenantID, status, 0, start)
	if logReason != "" {
		s.log.V(1).Info("webhook refused", "tenant", tenantID, "status", status, "reason", logReason)
	}
	if status >= 500 {
		w.Header().Set("Retry-After", "5")
	}
	http.Error(w, reason, status)
}

// refuseAdmission answers a webhook the admission refused, with when to
// retry.
func (s *Server) refuseAdmission(w http.ResponseWriter, start time.Time, tenantID string, r *refusal) {
	s.metrics.refused.WithLabelValues(tenantID, r.reason).Inc()
	s.metrics.observeWebhook(tenantID, r.status, 0, start)
	w.Header().Set("Retry-After", retryAfterSeconds(r.retryAfter))
	http.Error(w, "too many webhooks ("+r.reason+"), retry later", r.status)
}
