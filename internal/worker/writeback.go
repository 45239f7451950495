package worker

import (
	"context"
	"errors"
	"slices"

	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/writeback"
)

// writeBack applies the addresses jobs among entries (Unisender's hook
// named them): each address is read from Unisender and what it says is
// written to the Kommo contacts holding it (internal/writeback). A tenant
// whose binding has no spec.writeBack (any more) writes nothing. The
// caller holds the tenant's lock.
func (w *Worker) writeBack(ctx context.Context, t syncer.Tenant, entries []*entry) error {
	var emails []string
	for _, e := range entries {
		emails = append(emails, e.addresses...)
	}
	if len(emails) == 0 || t.WriteBack == nil {
		return nil
	}
	slices.Sort(emails)
	states, err := writeback.ReadStates(ctx, *t.WriteBack, slices.Compact(emails))
	if err != nil {
		return err
	}
	res, err := writeback.Apply(ctx, w.cfg.Store, *t.WriteBack, states)
	if ke := (*writeback.KommoError)(nil); errors.As(err, &ke) {
		return &kommoReadError{err: err}
	}
	if err == nil && res.Marked+res.Cleared > 0 {
		w.cfg.Log.V(1).Info("wrote Unisender's outcomes back to Kommo", "tenant", t.Key,
			"marked", res.Marked, "cleared", res.Cleared, "contacts", res.Contacts)
	}
	return err
}
