package webhookserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
)

// dummySecret is compared against when the tenant is unknown, so that an
// unknown tenant and a wrong secret cost the same and look the same.
var dummySecret = make([]byte, 64)

// jobPriority is beanstalkd's priority for webhook jobs (lower is sooner);
// resyncs and re-enqueued dead letters may use a lower priority.
const jobPriority = 1024

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
	if len(payload.Events) > 0 { // none: e.g. only leads; well-formed, nothing to sync
		ctx, cancel := context.WithDeadline(r.Context(), deadline)
		err := s.enqueue(ctx, info, payload)
		cancel()
		if err != nil {
			s.log.Error(err, "enqueue failed; answered 503", "tenant", info.ID)
			s.metrics.queueErrors.Inc()
			s.refuseWebhook(w, start, info.ID, http.StatusServiceUnavailable, "queue unavailable, retry later", "")
			return
		}
	}
	s.metrics.observeWebhook(info.ID, http.StatusOK, len(payload.Events), start)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
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
			logReason = "malformed webhook key " + truncate(we.Key, 120)
		}
		return nil, http.StatusBadRequest, err.Error(), logReason
	}
	return payload, 0, "", ""
}

// enqueue puts the job and returns once beanstalkd answered INSERTED.
func (s *Server) enqueue(ctx context.Context, info TenantInfo, p *kommo.WebhookPayload) error {
	buf := jobBuffers.Get().(*bytes.Buffer)
	defer recycle(&jobBuffers, buf)
	body, err := appendJob(buf, info.ID, p, s.now())
	if err != nil {
		return err
	}
	_, err = s.queue.Put(ctx, s.cfg.Tube, body, jobPriority, 0, s.cfg.JobTTR)
	return err
}

// jobBuffers recycles the buffers job bodies are encoded into.
var jobBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func recycle(pool *sync.Pool, buf *bytes.Buffer) {
	if buf.Cap() <= 64<<10 { // do not pin rare huge bodies in the pool
		buf.Reset()
		pool.Put(buf)
	}
}

// appendJob encodes the job body: a queue.Envelope of kind webhook whose
// payload is the JSON of p. It writes the envelope's few fields and the
// payload (kommo.WebhookPayload.AppendJSON, the same bytes as json.Marshal)
// straight into buf, rather than marshalling the payload and then the
// envelope around it: this is the hot path of every webhook. A tenant id
// that is not plain "namespace/name" text falls back to
// queue.Envelope.Encode. The result aliases buf.
func appendJob(buf *bytes.Buffer, tenantID string, p *kommo.WebhookPayload, receivedAt time.Time) ([]byte, error) {
	if !plainJSONText(tenantID) {
		return queue.Envelope{Version: queue.EnvelopeVersion, Tenant: tenantID, AccountID: p.AccountID,
			Kind: queue.KindWebhook, ReceivedAt: receivedAt.UTC(), Payload: p.AppendJSON(nil)}.Encode()
	}
	buf.Reset()
	b := buf.AvailableBuffer()
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, queue.EnvelopeVersion, 10)
	b = append(b, `,"tenant":"`...)
	b = append(b, tenantID...)
	b = append(b, '"')
	if p.AccountID != 0 {
		b = append(b, `,"account_id":`...)
		b = strconv.AppendInt(b, p.AccountID, 10)
	}
	b = append(b, `,"kind":"`+queue.KindWebhook+`","received_at":"`...)
	b = receivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","payload":`...)
	b = p.AppendJSON(b)
	b = append(b, '}')
	buf.Write(b)
	return buf.Bytes(), nil
}

// plainJSONText reports whether s needs no escaping in a JSON string (and
// no HTML escaping, which encoding/json applies): tenant ids are DNS names
// joined by a slash.
func plainJSONText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return s != ""
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

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
