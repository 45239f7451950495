package importer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// ErrNotStarted is returned by Launch before the manager started the Runner.
var ErrNotStarted = errors.New("importer: the runner has not started yet")

// Snapshot is what the Runner knows of a tenant's run.
type Snapshot struct {
	RunID      string
	Kind       Kind
	Sweep      bool // the run sweeps (Job.Sweep)
	Running    bool
	Progress   Progress
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	Err        error     // why the run stopped, if it failed
	// Failures counts the tenant's consecutive failed runs (for backoff).
	Failures int
}

// Runner runs at most one import per tenant, each in its own goroutine, so
// that a long import never holds up a reconcile, nor another tenant. It is a
// manager.Runnable: runs live within the manager's context and end with it
// (their checkpoints stay, and the next leader resumes them).
//
// The reconciler asks for a Snapshot on every pass, publishes its progress,
// and Collects a finished run once it has taken the result into the status.
type Runner struct {
	Importer *Importer
	// OnFinish, if set, is called from the run's goroutine when a run ends
	// by itself (not by Stop), to have the binding reconciled at once.
	OnFinish func(tenant.Key)
	// Now is the clock for the snapshot times; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	base     context.Context
	runs     map[tenant.Key]*activeRun
	failures map[tenant.Key]int
	wg       sync.WaitGroup
}

type activeRun struct {
	snap   Snapshot
	cancel context.CancelFunc
	done   chan struct{}
}

// Start makes the Runner accept runs until ctx ends, then cancels them and
// waits for their goroutines.
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	r.base = ctx
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	for _, a := range r.runs {
		a.cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// NeedLeaderElection: only the leader imports, as only it reconciles.
func (r *Runner) NeedLeaderElection() bool { return true }

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Launch starts job in the background unless the tenant already has a run
// (running, or finished and not yet collected); either way it returns the
// snapshot of the tenant's run.
func (r *Runner) Launch(job Job) (Snapshot, error) {
	if err := job.validate(); err != nil {
		return Snapshot{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.base == nil || r.base.Err() != nil {
		return Snapshot{}, ErrNotStarted
	}
	if a, ok := r.runs[job.Tenant]; ok {
		return a.snap, nil
	}
	if r.runs == nil {
		r.runs = map[tenant.Key]*activeRun{}
		r.failures = map[tenant.Key]int{}
	}
	ctx, cancel := context.WithCancel(r.base)
	a := &activeRun{
		snap: Snapshot{
			RunID: job.RunID, Kind: job.Kind, Sweep: job.Sweep, Running: true, StartedAt: r.now(),
			Progress: Progress{RunID: job.RunID, Kind: job.Kind, Cursor: job.From},
			Failures: r.failures[job.Tenant],
		},
		cancel: cancel,
		done:   make(chan struct{}),
	}
	r.runs[job.Tenant] = a
	r.wg.Add(1)
	go r.execute(ctx, job, a)
	return a.snap, nil
}

func (r *Runner) execute(ctx context.Context, job Job, a *activeRun) {
	defer r.wg.Done()
	defer close(a.done)
	m := r.Importer.Metrics
	p, err := r.Importer.Run(ctx, job, func(p Progress) {
		r.mu.Lock()
		a.snap.Progress = p
		r.mu.Unlock()
		m.observeProgress(job.Tenant, p, true)
	})
	m.observeProgress(job.Tenant, p, false)
	stopped := ctx.Err() != nil
	r.mu.Lock()
	a.snap.Running, a.snap.Progress, a.snap.Err, a.snap.FinishedAt = false, p, err, r.now()
	if err != nil {
		r.failures[job.Tenant]++
	} else {
		r.failures[job.Tenant] = 0
	}
	a.snap.Failures = r.failures[job.Tenant]
	r.mu.Unlock()
	if !stopped && r.OnFinish != nil {
		r.OnFinish(job.Tenant)
	}
}

// Snapshot returns the tenant's run, if there is one.
func (r *Runner) Snapshot(t tenant.Key) (Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.runs[t]
	if !ok {
		return Snapshot{}, false
	}
	return a.snap, true
}

// Collect forgets the tenant's finished run runID, so that the next Launch
// starts a new one. A running run, or another run, is left alone.
func (r *Runner) Collect(t tenant.Key, runID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.runs[t]; ok && !a.snap.Running && a.snap.RunID == runID {
		delete(r.runs, t)
	}
}

// Stop cancels the tenant's run, waits until its goroutine has returned (so
// it writes nothing afterwards) or ctx ends, and forgets it. The checkpoint
// stays: a later Launch of the same RunID resumes.
func (r *Runner) Stop(ctx context.Context, t tenant.Key) error {
	r.mu.Lock()
	a, ok := r.runs[t]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	a.cancel()
	select {
	case <-a.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.mu.Lock()
	if r.runs[t] == a {
		delete(r.runs, t)
	}
	delete(r.failures, t)
	r.mu.Unlock()
	return nil
}
