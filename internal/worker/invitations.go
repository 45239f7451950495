package worker

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"

	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// Where invitations are sent: one goroutine per worker process (the
// drainer loop below) looks for tenants with due invitations in the store
// every InvitationSweep, and at once when a batch of this worker queued
// some. For each such tenant it resolves the binding as the sync does,
// takes the tenant's MySQL lock without waiting (a tenant busy with a
// batch, or drained by another replica, is simply left for the next pass)
// and runs one invitations.Drainer step of at most InvitationSlice. The
// reserving goroutines never wait for the subscribe budget, so a long
// import's invitations never hold up webhook batches; a batch of a tenant
// being drained waits for the lock at most InvitationSlice. Holding the
// lock also keeps a sync from removing an address between the drainer's
// check that it is still held and its subscribe call.

// maxInvitationTenants bounds the tenants one pass visits.
const maxInvitationTenants = 100

// nudgeInvitations wakes the drainer loop (without blocking).
func (w *Worker) nudgeInvitations() {
	select {
	case w.nudge <- struct{}{}:
	default:
	}
}

// drainInvitations runs passes until ctx ends.
func (w *Worker) drainInvitations(ctx context.Context) {
	log := w.cfg.Log.WithName("invitations")
	failures := 0
	for ctx.Err() == nil {
		more, err := w.invitationPass(ctx, log)
		if err != nil {
			failures++
			if failures == 1 || failures%30 == 0 {
				log.Error(err, "cannot look for due invitations; retrying", "consecutiveFailures", failures)
			}
		} else {
			failures = 0
		}
		if more {
			continue
		}
		t := time.NewTimer(w.cfg.InvitationSweep)
		select {
		case <-ctx.Done():
		case <-w.nudge:
		case <-t.C:
		}
		t.Stop()
	}
}

// invitationPass gives each tenant with due invitations one step; more
// reports that some could send more at once.
func (w *Worker) invitationPass(ctx context.Context, log logr.Logger) (bool, error) {
	tenants, err := w.cfg.Store.InvitationTenants(ctx, time.Now(), maxInvitationTenants)
	if err != nil {
		return false, err
	}
	more := false
	for _, key := range tenants { // at shutdown the steps fail fast
		if w.invitationStep(ctx, key, log.WithValues("tenant", key)) {
			more = true
		}
	}
	return more, nil
}

// invitationStep drains one tenant for at most InvitationSlice.
func (w *Worker) invitationStep(ctx context.Context, key string, log logr.Logger) (more bool) {
	k, err := tenant.Parse(key)
	if err != nil {
		log.Error(err, "invitations of an unreadable tenant key are left alone")
		return false
	}
	t, err := w.cfg.Resolver.Resolve(ctx, k)
	switch {
	case errors.Is(err, ErrTenantGone):
		t = syncer.Tenant{Key: key} // invites nothing: its pending invitations are dropped
	case err != nil:
		log.V(1).Info("tenant not ready; its invitations wait", "reason", err.Error(), "delay", w.cfg.NotReadyDelay)
		if derr := w.cfg.Store.DeferInvitations(ctx, key, time.Now().Add(w.cfg.NotReadyDelay)); derr != nil {
			log.Error(derr, "deferring invitations")
		}
		return false
	}
	lock, ok, err := w.cfg.Store.LockTenant(ctx, key, 0)
	if err != nil || !ok {
		return false // busy, or MySQL is down: the next pass tries again
	}
	defer func() {
		rctx, cancel := settleContext()
		defer cancel()
		if err := lock.Release(rctx); err != nil {
			log.Error(err, "releasing the tenant lock (the server frees it with the connection)")
		}
	}()
	sctx, cancel := graceContext(ctx, w.cfg.ShutdownGrace)
	defer cancel()
	res, err := w.drainer.Step(sctx, t, w.cfg.InvitationSlice)
	if err != nil && ctx.Err() == nil {
		log.Error(err, "sending invitations stopped; they are retried later")
	}
	if n := res.Counts; len(n) > 0 {
		log.V(1).Info("invitations", "outcomes", n)
	}
	return res.More
}
