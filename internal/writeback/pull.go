package writeback

import (
	"context"
	"fmt"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// Pull reads every address of the list with its status from Unisender
// (one call per 1,000 addresses) and applies what differs from what was
// written, under the tenant's lock (waiting up to lockWait for it). Run on
// the resync interval, it alone brings Kommo to what Unisender holds,
// whatever the push delivered.
func Pull(ctx context.Context, st *store.Store, tg Target, lockWait time.Duration) (Result, error) {
	var states []State
	err := tg.Unisender.ExportList(ctx, tg.ListID, func(page []unisender.ExportedContact) error {
		for _, c := range page {
			states = append(states, State{Email: c.Email, Outcome: OutcomeOf(tg.Spec, c.Status, c.Availability)})
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("exporting Unisender list %d: %w", tg.ListID, err)
	}
	lock, ok, err := st.LockTenant(ctx, tg.Tenant, lockWait)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, fmt.Errorf("the tenant stayed locked by a worker for %s; the next resync pulls again", lockWait)
	}
	defer func() { _ = lock.Release(context.WithoutCancel(ctx)) }()
	return Apply(ctx, st, tg, states)
}
