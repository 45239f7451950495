package webhookserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/writeback"
)

// HookKeys gives the Unisender API key of a tenant, which signs its hook
// deliveries (a *Kube). An error means the key cannot be read now.
type HookKeys interface {
	UnisenderKey(ctx context.Context, key tenant.Key) (string, error)
}

// handleUnisenderHook accepts a delivery of Unisender's event hook: the
// path secret, then the body's auth digest with the tenant's API key, are
// checked before anything else happens; the addresses the body names are
// put to beanstalkd and only then is 200 answered (Unisender waits 3 s).
// The worker reads each address from Unisender: what the body says
// happened is not used.
func (s *Server) handleUnisenderHook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	deadline := start.Add(s.cfg.AnswerWithin)
	_ = http.NewResponseController(w).SetReadDeadline(deadline)
	info, ok := s.authenticate(r.PathValue("tenant"), r.PathValue("secret"))
	if !ok || !info.WriteBack || s.hookKeys == nil {
		s.refuseWebhook(w, start, "", http.StatusNotFound, "not found", "")
		return
	}
	admitted, refused := s.admit.admit(info.ID, s.now())
	if refused != nil {
		s.refuseAdmission(w, start, info.ID, refused)
		return
	}
	defer admitted.release()
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	emails, status, reason := s.readHook(ctx, w, r, info)
	if status != 0 {
		s.refuseWebhook(w, start, info.ID, status, reason, reason)
		return
	}
	if len(emails) > 0 && !info.Suspended {
		if err := s.enqueueAddresses(ctx, info, admitted.priority, emails); err != nil {
			s.log.Error(err, "enqueue failed; answered 503", "tenant", info.ID)
			s.metrics.queueErrors.Inc()
			s.refuseWebhook(w, start, info.ID, http.StatusServiceUnavailable, "queue unavailable, retry later", "")
			return
		}
	}
	s.metrics.observeWebhook(info.ID, http.StatusOK, len(emails), start)
	_, _ = io.WriteString(w, "ok\n")
}

// readHook reads the body, verifies its digest and returns the addresses
// it names; a non-zero status says why it was refused.
func (s *Server) readHook(ctx context.Context, w http.ResponseWriter, r *http.Request, info TenantInfo) (emails []string, status int, reason string) {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer recycle(&bodyBuffers, buf)
	buf.Reset()
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge, "body too large"
	case err != nil:
		return nil, http.StatusBadRequest, "could not read the body"
	}
	apiKey, err := s.hookKeys.UnisenderKey(ctx, info.Key)
	if err != nil {
		s.log.V(1).Info("the tenant's Unisender key cannot be read; hook delivery answered 503", "tenant", info.ID, "error", err.Error())
		return nil, http.StatusServiceUnavailable, "cannot verify the delivery now, retry later"
	}
	if err := writeback.Verify(buf.Bytes(), apiKey); err != nil {
		return nil, http.StatusForbidden, "the body's auth digest does not verify"
	}
	emails, err = writeback.Addresses(buf.Bytes())
	if err != nil {
		return nil, http.StatusBadRequest, err.Error()
	}
	return emails, 0, ""
}

// enqueueAddresses puts one job per queue.MaxAddressesPerJob addresses and
// returns once beanstalkd inserted every one.
func (s *Server) enqueueAddresses(ctx context.Context, info TenantInfo, pri uint32, emails []string) error {
	receivedAt := s.now()
	s.admit.charge(info.ID, (len(emails)+queue.MaxAddressesPerJob-1)/queue.MaxAddressesPerJob, receivedAt)
	for chunk := range slices.Chunk(emails, queue.MaxAddressesPerJob) {
		body, err := queue.EncodeAddressesJob(info.ID, receivedAt, chunk)
		if err != nil {
			return err
		}
		if _, err := s.queue.Put(ctx, s.cfg.Tube, body, pri, 0, s.cfg.JobTTR); err != nil {
			return err
		}
	}
	return nil
}
