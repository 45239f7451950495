package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// process settles every job of a batch. It runs on a grace context: a
// shutdown lets it finish for ShutdownGrace, then the remaining work fails
// and its jobs are released.
func (w *Worker) process(ctx context.Context, c *queue.Consumer, b *batch, log logr.Logger) {
	pctx, cancel := graceContext(ctx, w.cfg.ShutdownGrace)
	defer cancel()
	stopTouching := w.keepAlive(c, b.entries, log)
	defer stopTouching()
	w.cfg.Metrics.batch(b.weight)

	s := newSettler(w, c, log)
	poison, groups := b.split()
	for _, e := range poison {
		s.bury(e, e.poison.Error())
	}
	// Each tenant's group runs on its own, so that one tenant's slow Kommo
	// or Unisender (or its budget's wait) holds up no other tenant of the
	// batch while the worker has a slot free; the groups take the slots in
	// priority order.
	var wg sync.WaitGroup
	for _, g := range groups {
		if s.conn.lost.Load() {
			break // beanstalkd has put the rest of the batch back
		}
		if !w.takeGroupSlot(pctx) {
			w.processGroup(pctx, s, g) // past the shutdown grace: fails at once and releases the jobs
			continue
		}
		wg.Go(func() {
			defer w.releaseGroupSlot()
			w.processGroup(pctx, s, g)
		})
	}
	wg.Wait()
}

// processGroup applies one tenant's jobs under the tenant's lock.
func (w *Worker) processGroup(ctx context.Context, s *settler, g *group) {
	log := s.log.WithValues("tenant", g.tenant.String())
	s = s.withLog(log)
	t, err := w.cfg.Resolver.Resolve(ctx, g.tenant)
	switch {
	case errors.Is(err, ErrTenantGone):
		log.Info("tenant is gone; dropping its events", "jobs", len(g.entries), "reason", err.Error())
		s.drop(g.entries)
		return
	case errors.Is(err, ErrTenantSuspended):
		log.V(1).Info("binding suspended; dropping its events (lifting suspend resyncs)", "jobs", len(g.entries))
		s.drop(g.entries)
		return
	case errors.Is(err, ErrTenantNotReady):
		log.V(1).Info("tenant not ready; its events wait", "jobs", len(g.entries), "reason", err.Error(), "delay", w.cfg.NotReadyDelay)
		s.park(s.expire(g.entries, err.Error()), w.cfg.NotReadyDelay)
		return
	case err != nil:
		s.failed(ctx, g.entries, fmt.Errorf("resolving the tenant: %w", err))
		return
	}
	lock, ok, err := w.cfg.Store.LockTenant(ctx, g.tenant.String(), w.cfg.LockWait)
	if err != nil {
		s.failed(ctx, g.entries, err)
		return
	}
	if !ok {
		// Parked rather than released: waiting for another worker is not a
		// failed attempt.
		log.V(1).Info("tenant locked by another worker; its jobs wait", "jobs", len(g.entries), "delay", w.cfg.LockBusyDelay)
		s.park(g.entries, w.cfg.LockBusyDelay)
		return
	}
	defer func() {
		rctx, cancel := settleContext()
		defer cancel()
		if err := lock.Release(rctx); err != nil {
			log.Error(err, "releasing the tenant lock (the server frees it with the connection)")
		}
	}()
	w.apply(ctx, s, t, g.entries, true)
}

// apply syncs the contacts the entries name and settles the entries by the
// outcome. When Unisender or the store refuses a multi-job group as a bad
// request, the jobs are applied one by one, so only the bad one is buried.
func (w *Worker) apply(ctx context.Context, s *settler, t syncer.Tenant, entries []*entry, mayIsolate bool) {
	start := time.Now()
	out, err := w.sync(ctx, s.c, t, entries)
	w.cfg.Metrics.applied(time.Since(start), err)
	if err == nil {
		if out.Invitations > 0 {
			w.nudgeInvitations()
		}
		s.succeeded(t.Key, entries, out)
		return
	}
	if classify(ctx, err) == failPermanent && mayIsolate && len(entries) > 1 {
		s.log.Info("batch refused as a bad request; applying its jobs one by one", "jobs", len(entries), "error", err.Error())
		for _, e := range entries {
			w.apply(ctx, s, t, []*entry{e}, false)
		}
		return
	}
	if classify(ctx, err) == failTenant {
		if f, ok := w.cfg.Resolver.(KeyForgetter); ok {
			f.Forget(entries[0].tenant)
		}
	}
	s.failed(ctx, entries, err)
}

// sync reads the contacts the entries name from Kommo, as they are now, and
// commits what it read through syncer.Commit, the commit path of the import,
// the resync and the sweep too. The caller holds the tenant's lock, so no
// other process commits this tenant's contacts between the read and the
// commit. A recheck job's addresses are settled too: the contacts that
// hold them are read again, and those no live contact holds leave the list.
func (w *Worker) sync(ctx context.Context, c *queue.Consumer, t syncer.Tenant, entries []*entry) (syncer.Outcome, error) {
	if t.Kommo == nil {
		return syncer.Outcome{}, fmt.Errorf("tenant %s has no Kommo reader", t.Key)
	}
	if err := w.writeBack(ctx, t, entries); err != nil {
		return syncer.Outcome{}, err
	}
	if onlyKind(entries, queue.KindAddresses) {
		return syncer.Outcome{}, nil // nothing to read from Kommo
	}
	ids, verify, leads := named(entries)
	ofLeads, err := w.contactsOfLeads(ctx, t, leads)
	if err != nil {
		return syncer.Outcome{}, err
	}
	ids = append(ids, ofLeads...)
	for _, email := range verify {
		holders, err := w.cfg.Store.EmailHolders(ctx, t.Key, email)
		if err != nil {
			return syncer.Outcome{}, err
		}
		ids = append(ids, holders...)
	}
	live, err := w.cfg.Store.LiveAmong(ctx, t.Key, ids)
	if err != nil {
		return syncer.Outcome{}, err
	}
	listing, err := w.listingRunning(ctx, t.Key)
	if err != nil {
		return syncer.Outcome{}, err
	}
	confirm := func(id int64) bool { return live[id] || listing }
	current, err := syncer.ReadContacts(ctx, w.cfg.Store, t.Kommo, ids, confirm)
	if err != nil {
		return syncer.Outcome{}, &kommoReadError{err: err}
	}
	if onlyKind(entries, KindRecheck) {
		// A recheck that fails is retried itself; a recheck of its push
		// would only breed more of them while Unisender is down.
		return syncer.Commit(ctx, w.cfg.Store, t, current, verify)
	}
	rw := &recheckWriter{w: w, tenant: entries[0].tenant, next: t.Unisender}
	withRecheck := t
	withRecheck.Unisender = rw
	out, err := syncer.Commit(ctx, w.cfg.Store, withRecheck, current, verify)
	if err == nil {
		rw.committed(c)
	}
	return out, err
}

// contactsOfLeads are the contacts whose leads the entries name, for a
// tenant whose selector looks at leads: those Kommo links to the leads now,
// and those the store recorded as having them (a deleted lead, or one moved
// to another contact, is not listed with its former contacts). For other
// tenants a lead changes nothing.
func (w *Worker) contactsOfLeads(ctx context.Context, t syncer.Tenant, leads []int64) ([]int64, error) {
	if len(leads) == 0 || !t.Segment.UsesLeads() {
		return nil, nil
	}
	lister, ok := t.Kommo.(segment.Source)
	if !ok {
		return nil, fmt.Errorf("tenant %s: its Kommo reader cannot list leads", t.Key)
	}
	ids, err := w.cfg.Store.ContactsOfLeads(ctx, t.Key, leads)
	if err != nil {
		return nil, err
	}
	for chunk := range slices.Chunk(leads, kommo.MaxPageLimit) {
		err := lister.ListLeads(ctx, chunk, func(page []kommo.Lead) error {
			for _, l := range page {
				if slices.Contains(chunk, l.ID) { // never trust an answer naming other leads
					ids = append(ids, l.ContactIDs...)
				}
			}
			return nil
		})
		if err != nil {
			return nil, &kommoReadError{err: fmt.Errorf("kommo: reading %d leads: %w", len(chunk), err)}
		}
	}
	return ids, nil
}

func onlyKind(entries []*entry, kind string) bool {
	for _, e := range entries {
		if e.env.Kind != kind {
			return false
		}
	}
	return true
}

// listingRunning reports whether an import or resync of the tenant is under
// way. Its listing may have read a contact that Kommo has deleted since and
// commit it after us; so while it runs, a contact the store does not know
// yet and Kommo's answer leaves out is confirmed gone and recorded as a
// tombstone (read later than the listing's page, it wins over it), rather
// than skipped as it is otherwise.
func (w *Worker) listingRunning(ctx context.Context, tenant string) (bool, error) {
	cp, err := w.cfg.Store.GetCheckpoint(ctx, tenant)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return cp.Status == importer.CheckpointRunning, nil
}

// kommoReadError marks a failure to read the contacts from Kommo, which
// classify tells apart from Unisender's and the store's.
type kommoReadError struct{ err error }

func (e *kommoReadError) Error() string { return e.err.Error() }
func (e *kommoReadError) Unwrap() error { return e.err }

// failure is how a failed attempt is handled.
type failure int

const (
	failTransient failure = iota + 1 // retry with backoff
	failShutdown                     // the grace period ended: release at once
	failTenant                       // Unisender refused the tenant's key or account, or Kommo the integration: park
	failToken                        // Kommo refused the access token (being refreshed): park briefly
	failPermanent                    // the request itself is bad: bury
)

// classify decides how to handle err, returned by work done under ctx.
func classify(ctx context.Context, err error) failure {
	var read *kommoReadError
	switch {
	case ctx.Err() != nil:
		return failShutdown
	case errors.As(err, &read):
		return classifyKommo(err)
	case unisender.IsTransient(err), store.IsTransient(err), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, queue.ErrUnavailable):
		return failTransient
	case unisender.IsPermanentForTenant(err):
		return failTenant
	case errors.Is(err, context.Canceled):
		// A cancellation that is not ours (an HTTP client's, say): retry.
		return failTransient
	}
	return failPermanent
}

// classifyKommo decides how to handle a failed read of Kommo. Waiting for
// the operator (a token it refreshes, an integration a human must fix)
// parks the jobs without spending their attempts; what Kommo's client
// already retried (429, 5xx, the network) is retried with backoff.
func classifyKommo(err error) failure {
	switch {
	case errors.Is(err, kommo.ErrUnauthorized), errors.Is(err, tokens.ErrExpired), errors.Is(err, tokens.ErrNoToken):
		return failToken
	case errors.Is(err, kommo.ErrAccountBlocked), errors.Is(err, kommo.ErrTokenRevoked),
		errors.Is(err, kommo.ErrInvalidClient), errors.Is(err, kommo.ErrInvalidGrant):
		return failTenant
	case errors.Is(err, kommo.ErrBadRequest), errors.Is(err, kommo.ErrNotFound):
		return failPermanent
	}
	return failTransient
}

// keepAlive touches the batch's unsettled jobs every third of the shortest
// TTR until the returned function is called, so a slow Unisender call or a
// wait for a tenant lock does not let beanstalkd hand the jobs to another
// worker.
func (w *Worker) keepAlive(c *queue.Consumer, entries []*entry, log logr.Logger) (stop func()) {
	ttr := time.Duration(0)
	for _, e := range entries {
		if ttr == 0 || e.job.TTR < ttr {
			ttr = e.job.TTR
		}
	}
	interval := max(ttr/3, 200*time.Millisecond)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			for _, e := range entries {
				if e.settled.Load() {
					continue
				}
				ctx, cancel := settleContext()
				err := c.Touch(ctx, e.job.ID)
				cancel()
				if err != nil && !errors.Is(err, queue.ErrNotFound) {
					log.V(1).Info("touching a job failed", "job", e.job.ID, "error", err.Error())
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}
