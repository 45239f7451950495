// Package worker drains the webhook jobs from beanstalkd into Unisender.
//
// Each of Config.Concurrency goroutines owns one beanstalkd connection and
// loops: gather a batch (one job, then whatever else is ready, up to
// MaxEvents contact events or BatchWindow of waiting), group it by tenant,
// and for each tenant resolve its configuration, take the tenant's MySQL
// lock (one worker at a time per tenant, across replicas) and apply the
// events with syncer.Apply, which commits the stored state only after
// Unisender accepted the calls. Then every job is settled:
//
//   - applied (or the tenant is gone, or its binding suspended): deleted;
//   - transient failure (Unisender, MySQL, timeouts): released with an
//     exponential backoff on the job's release count, buried with a dead
//     letter after MaxReleases;
//   - Unisender refused the tenant's key or account (invalid key, no
//     money): parked for TenantFailureDelay — never buried: the events are
//     good and apply as soon as the user fixes the key;
//   - tenant not ready yet (or its integration suspended): parked for
//     NotReadyDelay;
//   - tenant locked by another worker for longer than LockWait: parked for
//     LockBusyDelay (order does not matter: the store is last write wins by
//     Kommo's updated_at);
//   - poison (undecodable job, unknown version or kind) or a request
//     Unisender refuses as such: buried and recorded as a dead letter with
//     the reason. A multi-job batch refused that way is retried job by job
//     first, so only the culprit is buried.
//
// Parking re-puts a copy of the job with a delay and deletes the original,
// rather than releasing it, so that waiting (for a user, for another
// worker) does not count as a failed attempt toward MaxReleases.
//
// Every push to Unisender is preceded by a delayed recheck job naming its
// addresses, deleted once the batch committed; if the commit is lost (a
// crash, an answer lost after Unisender applied), the recheck later sets
// those addresses in Unisender as the committed store says. See recheck.go
// for why retrying the events alone is not enough.
//
// While a batch is being applied its jobs are touched so their TTR does not
// run out. On shutdown (ctx cancelled) the goroutines stop reserving, finish
// their batch within ShutdownGrace, and release whatever they could not
// finish.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kommo-unisender/kommo-unisender/internal/invitations"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sleep"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// DefaultTube is the tube the webhook server puts jobs into.
const DefaultTube = "kommo-events"

// MaxConcurrency bounds Config.Concurrency: each goroutine may hold two
// MySQL connections at once (its tenant lock and its transaction), and the
// store's pool has 16.
const MaxConcurrency = 8

// Config configures a Worker. Store, Resolver and BeanstalkdAddr are
// required; zero values elsewhere take the defaults documented per field.
type Config struct {
	BeanstalkdAddr string
	Tube           string // default DefaultTube
	Store          *store.Store
	Resolver       TenantResolver
	// Producer re-puts parked jobs; nil makes one for BeanstalkdAddr.
	Producer *queue.Producer

	Concurrency int // reserving goroutines, default 4, at most MaxConcurrency
	// MaxEvents bounds the contacts a batch names, default 1000: a batch
	// spread over a few tenants still gives each a read of up to 250 ids
	// (one Kommo request), which is what bounds a tenant's throughput.
	MaxEvents   int
	BatchWindow time.Duration // how long a batch waits for more jobs, default 50ms

	LockWait      time.Duration // wait for a tenant locked elsewhere, default 2s
	LockBusyDelay time.Duration // park delay when it stays locked, default 1s

	BackoffBase time.Duration // first transient retry delay, default 1s (doubles per release)
	BackoffMax  time.Duration // cap of the retry delay, default 5m
	MaxReleases int           // releases after which a failing job is buried, default 20

	NotReadyDelay      time.Duration // park delay for a not-ready tenant, default 30s
	TenantFailureDelay time.Duration // park delay after Unisender refused the tenant's key, default 10m

	ShutdownGrace time.Duration // time to finish the in-flight batch on shutdown, default 25s

	// MaxJobAge bounds how long a job may wait unapplied (a suspended or
	// broken tenant, a failing Kommo) counted from when the webhook server
	// received it, default 24h. An older job that fails again is dropped
	// and a resync of its tenant is requested instead (see expire).
	MaxJobAge time.Duration

	// MaxJobBytes is beanstalkd's max-job-size: recheck jobs are split to
	// stay within it. Zero means read it from beanstalkd when Run starts.
	MaxJobBytes int

	// RecheckDelay is when the recheck job put before each push runs if the
	// batch's commit does not delete it first (see recheck.go), default 1m.
	RecheckDelay time.Duration

	// SubscribePerMinute is each API key's budget of subscribe calls for
	// double opt-in invitations, default 300 (Unisender's limit). The
	// budget is kept in MySQL: every replica draws from the same one, so
	// all replicas must be given the same figure.
	SubscribePerMinute int
	// InvitationSweep is how often the invitation drainer looks for due
	// invitations, default 2s; a batch that queued some wakes it at once.
	InvitationSweep time.Duration
	// InvitationSlice bounds how long the drainer holds one tenant's lock
	// per step, default 1s.
	InvitationSlice time.Duration

	Consumer queue.ConsumerOptions
	Metrics  *Metrics // nil records nothing
	Log      logr.Logger
}

func (c Config) withDefaults() Config {
	setDefault(&c.Tube, DefaultTube)
	setDefault(&c.Concurrency, 4)
	setDefault(&c.MaxEvents, 1000)
	setDefault(&c.BatchWindow, 50*time.Millisecond)
	setDefault(&c.LockWait, 2*time.Second)
	setDefault(&c.LockBusyDelay, time.Second)
	setDefault(&c.BackoffBase, time.Second)
	setDefault(&c.BackoffMax, 5*time.Minute)
	setDefault(&c.MaxReleases, 20)
	setDefault(&c.NotReadyDelay, 30*time.Second)
	setDefault(&c.TenantFailureDelay, 10*time.Minute)
	setDefault(&c.ShutdownGrace, 25*time.Second)
	setDefault(&c.MaxJobAge, 24*time.Hour)
	setDefault(&c.RecheckDelay, time.Minute)
	setDefault(&c.SubscribePerMinute, invitations.DefaultSubscribePerMinute)
	setDefault(&c.InvitationSweep, 2*time.Second)
	setDefault(&c.InvitationSlice, time.Second)
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Worker runs the reserving goroutines. Create it with New.
type Worker struct {
	cfg         Config
	ownProducer bool
	drainer     *invitations.Drainer
	nudge       chan struct{} // wakes the invitation drainer
	// groupSlots bounds the tenant groups being applied at once, over all
	// the reserving goroutines' batches, to Concurrency (at least two, so
	// that even a single reserver's batch lets a tenant overtake a slow
	// one): with two MySQL connections each (the tenant's lock and its
	// transaction) they stay within the store's pool, as MaxConcurrency
	// says.
	groupSlots chan struct{}
}

// New checks cfg and returns a Worker.
func New(cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	switch {
	case cfg.BeanstalkdAddr == "":
		return nil, errors.New("worker: no beanstalkd address")
	case cfg.Store == nil:
		return nil, errors.New("worker: no store")
	case cfg.Resolver == nil:
		return nil, errors.New("worker: no tenant resolver")
	case cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency:
		return nil, fmt.Errorf("worker: concurrency %d: want 1 to %d", cfg.Concurrency, MaxConcurrency)
	case cfg.MaxEvents < 1:
		return nil, fmt.Errorf("worker: max events %d: want at least 1", cfg.MaxEvents)
	}
	if err := queue.CheckTube(cfg.Tube); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	drainer, err := invitations.New(invitations.Config{
		Store: cfg.Store, Budgets: invitations.NewBudgets(cfg.Store, cfg.SubscribePerMinute),
		TenantFailureDelay: cfg.TenantFailureDelay, Observe: cfg.Metrics.invitation,
	})
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &Worker{cfg: cfg, drainer: drainer, nudge: make(chan struct{}, 1), groupSlots: make(chan struct{}, max(cfg.Concurrency, 2))}
	if w.cfg.Producer == nil {
		w.cfg.Producer = queue.NewProducer(cfg.BeanstalkdAddr, queue.ProducerOptions{Conns: 2})
		w.ownProducer = true
	}
	return w, nil
}

// Run processes jobs until ctx ends, then finishes or releases the batches
// in flight and returns nil.
func (w *Worker) Run(ctx context.Context) error {
	consumers := make([]*queue.Consumer, w.cfg.Concurrency)
	for i := range consumers {
		c, err := queue.NewConsumer(w.cfg.BeanstalkdAddr, []string{w.cfg.Tube}, w.cfg.Consumer)
		if err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		consumers[i] = c
	}
	if w.ownProducer {
		defer w.cfg.Producer.Close()
	}
	if err := w.readMaxJobBytes(ctx); err != nil {
		return err
	}
	w.cfg.Log.Info("worker started", "tube", w.cfg.Tube, "concurrency", w.cfg.Concurrency,
		"maxEvents", w.cfg.MaxEvents, "batchWindow", w.cfg.BatchWindow)
	var wg sync.WaitGroup
	wg.Go(func() { w.drainInvitations(ctx) })
	for i, c := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			w.loop(ctx, c, w.cfg.Log.WithValues("reserver", i))
		}()
	}
	wg.Wait()
	w.cfg.Log.Info("worker stopped")
	return nil
}

// readMaxJobBytes reads beanstalkd's max-job-size unless it was
// configured, and checks that a recheck job of one address fits.
func (w *Worker) readMaxJobBytes(ctx context.Context) error {
	if w.cfg.MaxJobBytes == 0 {
		n, err := queue.WaitMaxJobSize(ctx, w.cfg.Producer, w.cfg.Log)
		if err != nil {
			return fmt.Errorf("worker: reading beanstalkd's max-job-size: %w", err)
		}
		w.cfg.MaxJobBytes = n
	}
	if w.cfg.MaxJobBytes < smallestRecheckJobBound {
		return fmt.Errorf("worker: beanstalkd's max-job-size %d is below %d bytes, the largest recheck job of one address: start beanstalkd with -z %d or more",
			w.cfg.MaxJobBytes, smallestRecheckJobBound, queue.DefaultMaxJobSize)
	}
	return nil
}

// loop gathers and processes batches until ctx ends.
func (w *Worker) loop(ctx context.Context, c *queue.Consumer, log logr.Logger) {
	failures := 0
	for ctx.Err() == nil {
		b, err := w.gather(ctx, c)
		if errors.Is(err, errIdle) {
			continue
		}
		if err != nil {
			failures++
			if failures == 1 || failures%30 == 0 {
				log.Error(err, "cannot reserve jobs; retrying", "consecutiveFailures", failures)
			}
			// The consumer backs its dials off by itself; this pause only
			// keeps other failures (a refused command) from spinning.
			_ = sleep.For(ctx, min(time.Duration(failures)*100*time.Millisecond, 2*time.Second))
			continue
		}
		if failures > 0 {
			log.Info("reserving jobs again", "afterFailures", failures)
			failures = 0
		}
		w.process(ctx, c, b, log)
	}
}

// takeGroupSlot waits for a slot to apply a tenant group in; false when
// ctx ended first.
func (w *Worker) takeGroupSlot(ctx context.Context) bool {
	select {
	case w.groupSlots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (w *Worker) releaseGroupSlot() { <-w.groupSlots }

// graceContext is a context for finishing work: it outlives parent by
// grace, so a batch in flight at shutdown can complete, and is cancelled
// after that, so the batch's jobs get released before the process is
// killed.
func graceContext(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-ctx.Done():
		}
	})
	return ctx, func() { stop(); cancel() }
}
