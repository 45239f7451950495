package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// settleTimeout bounds one beanstalkd or MySQL command that settles a job.
// Settling runs on its own context: even at shutdown, a job must be
// deleted, released or buried rather than left reserved.
const settleTimeout = 10 * time.Second

func settleContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), settleTimeout)
}

// settler deletes, releases, parks and buries jobs on the connection that
// reserved them, counting what it did.
type settler struct {
	w    *Worker
	c    *queue.Consumer
	log  logr.Logger
	conn *connState
}

// connState is shared by the settlers of one batch.
type connState struct {
	// lost is set when the connection that reserved the batch broke:
	// beanstalkd has put every job of the batch back, so the rest of it is
	// neither settled nor processed (commands on a new connection would
	// only wait for it and fail).
	lost atomic.Bool
}

func newSettler(w *Worker, c *queue.Consumer, log logr.Logger) *settler {
	return &settler{w: w, c: c, log: log, conn: &connState{}}
}

func (s *settler) withLog(log logr.Logger) *settler {
	cp := *s
	cp.log = log
	return &cp
}

// errConnectionLost is returned for settle commands skipped after the
// connection broke.
var errConnectionLost = errors.New("the beanstalkd connection that reserved the job broke; beanstalkd has put the job back")

// command runs one settle command on the reserving connection, on its own
// context: even at shutdown a job must be settled rather than left
// reserved.
func (s *settler) command(e *entry, cmd func(ctx context.Context) error) error {
	e.settled.Store(true)
	if s.conn.lost.Load() {
		return errConnectionLost
	}
	ctx, cancel := settleContext()
	defer cancel()
	err := cmd(ctx)
	if errors.Is(err, queue.ErrUnavailable) && !s.conn.lost.Swap(true) {
		s.log.Error(err, "lost the beanstalkd connection; beanstalkd puts the batch's jobs back for another attempt")
	}
	return err
}

// succeeded deletes the jobs of an applied group and records the outcome.
func (s *settler) succeeded(tenantKey string, entries []*entry, out syncer.Outcome) {
	s.w.cfg.Metrics.outcome(entries[0].tenant, out)
	if len(out.Rejected) > 0 {
		// Unisender refused these rows one by one (invalid or role
		// addresses): the same rows would be refused again, so they are
		// reported and not retried. The log carries Unisender's reason, not
		// the address.
		for _, r := range out.Rejected[:min(len(out.Rejected), 5)] {
			s.log.Info("Unisender rejected a row", "code", r.Code, "message", r.Message)
		}
		s.log.Info("rows rejected by Unisender", "rejected", len(out.Rejected))
	}
	s.log.V(1).Info("batch applied", "jobs", len(entries), "contacts", out.Contacts, "stale", out.Stale,
		"companies", out.Companies, "upserted", out.Upserted, "removed", out.Removed)
	s.recordLatencies(tenantKey, entries)
	s.delete(entries, "applied")
}

// recordLatencies observes each job's webhook → applied latency in the
// metrics and in MySQL, where the binding's status figures read it. A
// failed write costs only a sample: the jobs are applied.
func (s *settler) recordLatencies(tenantKey string, entries []*entry) {
	now := time.Now()
	latencies := make([]time.Duration, 0, len(entries))
	for _, e := range entries {
		d := now.Sub(e.env.ReceivedAt)
		s.w.cfg.Metrics.latency(d)
		latencies = append(latencies, d)
	}
	ctx, cancel := settleContext()
	defer cancel()
	if err := s.w.cfg.Store.RecordSyncLatencies(ctx, tenantKey, latencies); err != nil {
		s.log.Error(err, "recording sync latencies for the binding's status")
	}
}

// drop deletes the jobs of a tenant that no longer exists.
func (s *settler) drop(entries []*entry) { s.delete(entries, "dropped") }

func (s *settler) delete(entries []*entry, outcome string) {
	for _, e := range entries {
		err := s.command(e, func(ctx context.Context) error { return s.c.Delete(ctx, e.job.ID) })
		if err != nil {
			// The job comes back (TTR, or the broken connection already
			// returned it) and is applied again, which changes nothing.
			s.logFailure(err, "deleting a processed job failed; it will be processed again", e)
			continue
		}
		s.w.cfg.Metrics.job(outcome)
	}
}

// logFailure logs a failed settle command, once per batch for a broken
// connection.
func (s *settler) logFailure(err error, msg string, e *entry) {
	if errors.Is(err, errConnectionLost) || errors.Is(err, queue.ErrUnavailable) {
		return // logged once by command
	}
	s.log.Error(err, msg, "job", e.job.ID)
}

// failed settles jobs whose processing failed with err.
func (s *settler) failed(ctx context.Context, entries []*entry, err error) {
	failure := classify(ctx, err)
	if failure != failShutdown {
		if entries = s.expire(entries, err.Error()); len(entries) == 0 {
			return
		}
	}
	switch failure {
	case failShutdown:
		s.log.Info("shutting down: releasing unfinished jobs", "jobs", len(entries))
		s.release(entries, 0, "shutdown")
	case failTenant:
		s.log.Error(err, "Unisender refused the tenant's API key or account, or Kommo the integration; its events wait until it is fixed",
			"jobs", len(entries), "retryIn", s.w.cfg.TenantFailureDelay)
		s.park(entries, s.w.cfg.TenantFailureDelay)
	case failToken:
		s.log.Info("Kommo refused the access token; its events wait for the operator's refresh",
			"jobs", len(entries), "retryIn", s.w.cfg.NotReadyDelay)
		s.park(entries, s.w.cfg.NotReadyDelay)
	case failPermanent:
		for _, e := range entries {
			s.bury(e, err.Error())
		}
	default:
		s.retry(entries, err)
	}
}

// retry releases jobs after a transient failure with a backoff that grows
// with each job's releases, and buries those that failed too often.
func (s *settler) retry(entries []*entry, err error) {
	s.log.Info("transient failure; retrying later", "jobs", len(entries), "error", err.Error())
	for _, e := range entries {
		if int(e.job.Releases) >= s.w.cfg.MaxReleases {
			s.bury(e, fmt.Sprintf("gave up after %d attempts: %v", e.job.Reserves, err))
			continue
		}
		s.release([]*entry{e}, s.backoff(e.job.Releases), "retry")
	}
}

// backoff is BackoffBase doubled per earlier release, capped at
// BackoffMax, plus up to a quarter of jitter so retries of many jobs do not
// come back in step.
func (s *settler) backoff(releases uint32) time.Duration {
	d := s.w.cfg.BackoffBase << min(releases, 30)
	if d <= 0 || d > s.w.cfg.BackoffMax {
		d = s.w.cfg.BackoffMax
	}
	return d + rand.N(d/4+1)
}

func (s *settler) release(entries []*entry, delay time.Duration, reason string) {
	for _, e := range entries {
		err := s.command(e, func(ctx context.Context) error { return s.c.Release(ctx, e.job.ID, e.job.Pri, delay) })
		if err != nil {
			// Only a broken connection or a lost reservation fails a
			// release, and in both cases beanstalkd has the job back.
			s.logFailure(err, "releasing a job failed; beanstalkd returns it when its TTR ends", e)
			continue
		}
		s.w.cfg.Metrics.released(reason)
	}
}

// expire drops the jobs older than MaxJobAge and returns the others. A job
// that could not be applied for that long is not retried for ever: its
// tenant's resync is requested instead (in MySQL, which the manager reads;
// workers do not write to Kubernetes), which reads everything that changed
// in Kommo, deletes included. If the request cannot be recorded, nothing
// is dropped.
func (s *settler) expire(entries []*entry, reason string) (young []*entry) {
	var old []*entry
	now := time.Now()
	for _, e := range entries {
		if e.tenant.Name != "" && !e.env.ReceivedAt.IsZero() && now.Sub(e.env.ReceivedAt) > s.w.cfg.MaxJobAge {
			old = append(old, e)
		} else {
			young = append(young, e)
		}
	}
	if len(old) == 0 {
		return young
	}
	ctx, cancel := settleContext()
	defer cancel()
	if err := s.w.cfg.Store.RequestResync(ctx, old[0].tenant.String(), len(old)); err != nil {
		s.log.Error(err, "requesting a resync for expired jobs failed; keeping them", "jobs", len(old))
		return entries
	}
	s.log.Info("dropped jobs that could not be applied within the bound; requested a resync of the tenant",
		"jobs", len(old), "maxAge", s.w.cfg.MaxJobAge, "lastError", reason)
	s.delete(old, "expired")
	return young
}

// park sets jobs aside for delay without counting a failed attempt: it
// puts a copy back with the delay and deletes the original. A crash between
// the two leaves both, and applying an event twice changes nothing. If the
// copy cannot be put, the job is released instead.
func (s *settler) park(entries []*entry, delay time.Duration) {
	for _, e := range entries {
		if s.conn.lost.Load() {
			return // the jobs are back in beanstalkd already
		}
		ctx, cancel := settleContext()
		_, err := s.w.cfg.Producer.Put(ctx, e.job.Tube, e.job.Body, e.job.Pri, delay, e.job.TTR)
		cancel()
		if err != nil {
			s.log.Error(err, "parking a job failed; releasing it instead", "job", e.job.ID)
			s.release([]*entry{e}, delay, "park")
			continue
		}
		s.w.cfg.Metrics.job("parked")
		if err := s.command(e, func(ctx context.Context) error { return s.c.Delete(ctx, e.job.ID) }); err != nil {
			s.logFailure(err, "deleting a parked job's original failed; both copies will be processed", e)
		}
	}
}

// bury records a dead letter for the job and then buries it. If the dead
// letter cannot be recorded (MySQL is down) the job is released to try
// again later: a buried job nobody knows about would be lost.
func (s *settler) bury(e *entry, reason string) {
	if s.conn.lost.Load() {
		return // the job is back in beanstalkd; it fails again and is buried then
	}
	ctx, cancel := settleContext()
	defer cancel()
	tenantKey := "" // unknown when the envelope could not be read
	if e.tenant.Name != "" {
		tenantKey = e.tenant.String()
	}
	id, err := s.w.cfg.Store.RecordDeadLetter(ctx, store.DeadLetter{
		Tenant: tenantKey, Tube: e.job.Tube, JobID: e.job.ID, Body: e.job.Body,
		Reason: reason, Attempts: int(e.job.Reserves),
	})
	if err != nil {
		s.log.Error(err, "recording a dead letter failed; releasing the job instead of burying it", "job", e.job.ID)
		s.release([]*entry{e}, s.backoff(e.job.Releases), "dead_letter_unrecorded")
		return
	}
	if err := s.command(e, func(ctx context.Context) error { return s.c.Bury(ctx, e.job.ID, e.job.Pri) }); err != nil {
		// The reservation was lost (connection broken, TTR over): the job
		// comes back and its dead letter is recorded again, in the same row.
		s.logFailure(err, "burying a job failed; it comes back and is recorded again", e)
		return
	}
	s.w.cfg.Metrics.job("buried")
	s.log.Info("job buried as a dead letter", "job", e.job.ID, "deadLetter", id, "reason", truncate.Text(reason, 300))
}
