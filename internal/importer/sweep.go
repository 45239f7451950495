package importer

import (
	"context"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
)

// # The deletion sweep
//
// Kommo tells of a deleted contact only by its delete_contact webhook, and
// no listing shows what is gone. A delete whose webhook never reached us
// (the webhook server was down for longer than Kommo retries, the webhook
// was unregistered, the binding was suspended) would leave the contact's
// addresses in the list for good. So a resync ends by asking Kommo for
// every contact the store holds as live, by id, a page of ids per request,
// and removes those Kommo no longer has just as a delete webhook would: a
// tombstone in the store, and the addresses no other live contact holds
// excluded or deleted per the binding's policy.
//
// Nothing is removed on a doubtful answer:
//   - an id missing from the filtered listing is read once more on its own;
//     only Kommo's "no such contact" (204 or 404) counts as gone. So a
//     listing that ignored or capped filter[id] (its limit is not
//     documented) costs requests, never a contact;
//   - any other error stops the sweep before it removed anything; the run
//     fails and its retry sweeps again;
//   - when more than Job.SweepHoldPercent (half, by default) of the live
//     contacts are gone, none is removed and the run reports them as
//     SweepHeld: a token for another Kommo account, or an account emptied
//     by mistake, is likelier than that many lost webhooks, and a list is
//     much harder to rebuild than to clean later. The share alone decides,
//     however few the contacts: a small tenant's list is no less worth
//     keeping. At 100 nothing is held;
//   - a token for another account is refused before the run starts (see
//     account.go), so raising the share to 100 cannot empty the list
//     through it.
//
// The cost is one Kommo request per sweepChunk live contacts per resync,
// plus one per gone contact.
//
// A binding with a selector, or whose selector changed, also commits the
// live contacts the sweep read (Job.Reevaluate): whether a contact matches can change without its
// updated_at moving (a deal's stage, a lost webhook, a changed selector),
// so every resync evaluates every synced contact again through the one
// commit path. A contact whose membership did not change costs a store
// update of its read time, no Unisender call.

const sweepChunk = kommo.MaxPageLimit

// sweep removes the live contacts Kommo no longer has.
func (r *run) sweep(ctx context.Context) error {
	tenantKey := r.job.Tenant.String()
	live, err := r.im.Store.CountLiveContacts(ctx, tenantKey)
	if err != nil {
		return err
	}
	percent := r.job.SweepHoldPercent
	if percent <= 0 {
		percent = v1alpha1.DefaultSweepMaxRemovalPercent
	}
	holdAbove := live * int64(percent) / 100
	var gone []syncer.Current
	for after := int64(0); ; {
		ids, err := r.im.Store.LiveContactIDs(ctx, tenantKey, after, sweepChunk)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			break
		}
		after = ids[len(ids)-1]
		missing, err := r.missingFromKommo(ctx, ids)
		if err != nil {
			return err
		}
		gone = append(gone, missing...)
		if int64(len(gone)) > holdAbove {
			// Stop asking: this many is held whatever the rest holds.
			r.p.SweepHeld = int64(len(gone))
			r.im.Metrics.observeSweep(r.job.Tenant, "held", len(gone))
			return nil
		}
	}
	before := r.p.Deleted
	err = r.removeGone(ctx, gone)
	r.im.Metrics.observeSweep(r.job.Tenant, "deleted", int(r.p.Deleted-before))
	return err
}

// missingFromKommo reads ids (contacts the store holds as live) from Kommo
// and returns those it says are gone (syncer.ReadContacts confirms each
// one the listing leaves out with a read of it alone); with a selector, it
// commits the others, evaluated again.
func (r *run) missingFromKommo(ctx context.Context, ids []int64) ([]syncer.Current, error) {
	read, err := syncer.ReadContacts(ctx, r.im.Store, r.job.Kommo, ids, func(int64) bool { return true })
	if err != nil {
		return nil, err
	}
	var gone []syncer.Current
	var live []pendingContact
	for _, c := range read {
		if c.Gone() {
			gone = append(gone, c)
		} else if r.job.Reevaluate {
			live = append(live, pendingContact{current: c, reevaluated: true})
		}
	}
	if len(live) > 0 {
		if err := r.commit(ctx, live); err != nil {
			return nil, err
		}
	}
	return gone, nil
}

// removeGone commits the gone contacts' tombstones, a batch at a time,
// through the same commit as the listing's contacts. Each is stamped with
// the time Kommo was asked: a version of the contact read later (Kommo
// restored it) wins over it.
func (r *run) removeGone(ctx context.Context, gone []syncer.Current) error {
	for len(gone) > 0 {
		n := min(len(gone), r.im.batchRows())
		batch := make([]pendingContact, n)
		for i, c := range gone[:n] {
			batch[i] = pendingContact{current: c}
		}
		if err := r.commit(ctx, batch); err != nil {
			return err
		}
		gone = gone[n:]
	}
	return nil
}
