// Package syncer holds the sync rules: how a batch of Kommo contact events of
// one tenant becomes Unisender calls, with the tenant's contact state in MySQL
// deciding what changed.
//
// A batch is applied in one store transaction that commits only after
// Unisender accepted the calls. A failed call or a crash leaves the stored
// state as it was, so the retried batch computes the same calls again; a call
// repeated after a crash that struck between Unisender's answer and the
// commit is harmless, because an import of the same rows changes nothing.
package syncer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// Importer is the part of the Unisender client the sync uses.
type Importer interface {
	ImportContacts(ctx context.Context, req unisender.ImportRequest) (*unisender.ImportResult, error)
}

// Inviter is the part of the Unisender client that sends double opt-in
// invitations (used by the worker's drainer, package invitations).
type Inviter interface {
	GetContact(ctx context.Context, email string, opts unisender.GetContactOptions) (*unisender.Contact, error)
	Subscribe(ctx context.Context, req unisender.SubscribeRequest) (int64, error)
	// KeyID names the API key (never the key itself): tenants and worker
	// replicas using one key share its subscribe budget.
	KeyID() string
}

// Tenant is what the sync needs to know of one UnisenderBinding.
type Tenant struct {
	Key            string // "namespace/name"
	Mapper         *mapping.Mapper
	DeletionPolicy syncv1.DeletionPolicy
	Unisender      Importer
	// DoubleOptin is the binding's spec.doubleOptin. When it invites,
	// Apply queues an invitation for every address the batch brings into
	// the list, in the batch's transaction.
	DoubleOptin syncv1.DoubleOptin
	// Inviter sends the queued invitations; Apply does not use it. Nil
	// when the tenant's invitations cannot be sent.
	Inviter Inviter
}

// Event is one contact event with the time our webhook server received it.
type Event struct {
	Action     kommo.Action
	Contact    kommo.Contact
	ReceivedAt time.Time
}

// Outcome counts what a batch did.
type Outcome struct {
	Events    int // events in the batch
	Companies int // companies, which are not synced
	Stale     int // events older than, or equal to, the stored state
	Upserted  int // rows sent to add or update addresses
	Removed   int // addresses taken out of the list (excluded or deleted)
	// Invitations counts the invitations queued (addresses new to the list
	// of a tenant that invites, not queued before).
	Invitations int
	// Rejected are the rows Unisender refused one by one (invalid or role
	// addresses); they are reported, not retried: the same row would be
	// refused again.
	Rejected []unisender.ImportLogEntry
}

// Apply applies a batch of one tenant's events and pushes the result to
// Unisender. The returned error wraps the Unisender or store error so that
// callers can classify it (unisender.IsTransient, store.IsTransient).
func Apply(ctx context.Context, st *store.Store, t Tenant, events []Event) (Outcome, error) {
	out := Outcome{Events: len(events)}
	err := st.InTx(ctx, func(tx *store.Tx) error {
		plan, err := planBatch(ctx, tx, t, events, &out)
		if err != nil {
			return err
		}
		if err := push(ctx, t, plan, &out); err != nil {
			return err
		}
		return queueInvitations(ctx, tx, t, plan, &out)
	})
	return out, err
}

// plan is what one batch must send to Unisender.
type plan struct {
	upserts  map[int64]mapping.Profile // final profile of every changed live contact
	orphaned map[string]bool           // addresses no live contact holds any more
	added    []string                  // addresses the batch brings into the list
}

// planBatch applies the events to the stored state, last write wins per
// contact, and gathers the net changes. Events of one contact are first
// coalesced to the one that would win, so that the store applies the batch
// in a handful of statements (Tx.ApplyContacts) and decides orphaned
// addresses after the whole batch: an address one contact drops and another
// takes up in the same batch stays in the list.
func planBatch(ctx context.Context, tx *store.Tx, t Tenant, events []Event, out *Outcome) (*plan, error) {
	states, profiles := coalesce(t.Mapper, events, out)
	results, err := tx.ApplyContacts(ctx, t.Key, states)
	if err != nil {
		return nil, fmt.Errorf("apply %d contacts: %w", len(states), err)
	}
	p := &plan{upserts: map[int64]mapping.Profile{}, orphaned: map[string]bool{}}
	for i, res := range results {
		if !res.Applied {
			out.Stale++
			continue
		}
		for _, e := range res.OrphanedEmails {
			p.orphaned[e] = true
		}
		if !states[i].Deleted {
			p.upserts[states[i].ID] = profiles[states[i].ID]
			p.added = append(p.added, res.NewEmails...)
		}
	}
	return p, nil
}

// coalesce keeps, per contact, the event that applying them in order would
// leave standing: the newest updated_at, a delete on a tie, else the later
// one. Superseded events count as stale; companies are skipped.
func coalesce(m *mapping.Mapper, events []Event, out *Outcome) ([]store.ContactState, map[int64]mapping.Profile) {
	index := map[int64]int{}
	var states []store.ContactState
	profiles := map[int64]mapping.Profile{}
	for _, ev := range events {
		if ev.Contact.IsCompany() {
			out.Companies++
			continue
		}
		state, profile := contactState(m, ev)
		i, seen := index[state.ID]
		switch {
		case !seen:
			index[state.ID] = len(states)
			states = append(states, state)
		case supersedes(state, states[i]):
			states[i] = state
			out.Stale++
		default:
			out.Stale++
			continue
		}
		profiles[state.ID] = profile
	}
	return states, profiles
}

func supersedes(a, b store.ContactState) bool {
	if a.UpdatedAt != b.UpdatedAt {
		return a.UpdatedAt > b.UpdatedAt
	}
	return a.Deleted || !b.Deleted
}

// DeleteClockMargin is added to the time a delete was received to stamp it.
// A delete carries no updated_at, and an edit Kommo made just before it can
// carry an updated_at ahead of our clock (clock skew, or two edits in one
// second stamped a second apart); workers may also apply the two out of
// order. The margin keeps such an edit from bringing the contact back. The
// price: a contact restored in Kommo within the margin after its deletion
// comes back only with its next edit or resync.
const DeleteClockMargin = 10 * time.Second

// contactState turns an event into the stored form.
func contactState(m *mapping.Mapper, ev Event) (store.ContactState, mapping.Profile) {
	if ev.Action == kommo.ActionDelete {
		stamp := ev.ReceivedAt.Add(DeleteClockMargin).Unix()
		return store.ContactState{ID: ev.Contact.ID, Deleted: true, UpdatedAt: stamp}, mapping.Profile{}
	}
	p := m.Profile(&ev.Contact)
	updatedAt := ev.Contact.UpdatedAt
	if updatedAt == 0 {
		updatedAt = ev.ReceivedAt.Unix()
	}
	return store.ContactState{
		ID: ev.Contact.ID, UpdatedAt: updatedAt, Emails: p.Emails,
		Name: p.Name, Phone: p.Phone, Tags: p.Tags, Fields: p.Fields,
	}, p
}

// push sends the plan: one importContacts for the upserts (the client splits
// past 500 rows) and one for the removals.
func push(ctx context.Context, t Tenant, p *plan, out *Outcome) error {
	if batch := upsertBatch(t.Mapper, p.upserts); len(batch.Rows) > 0 {
		if err := send(ctx, t, batch, out); err != nil {
			return err
		}
		out.Upserted = len(batch.Rows)
	}
	if batch := t.Mapper.RemovalBatch(slices.Sorted(maps.Keys(p.orphaned)), t.DeletionPolicy); batch != nil {
		if err := send(ctx, t, *batch, out); err != nil {
			return err
		}
		out.Removed = len(batch.Rows)
	}
	return nil
}

// queueInvitations records, once the push succeeded and in the same
// transaction, an invitation for each address the batch brought into the
// list, when the tenant invites. The worker's drainer sends them.
func queueInvitations(ctx context.Context, tx *store.Tx, t Tenant, p *plan, out *Outcome) error {
	if !t.DoubleOptin.Invites() || len(p.added) == 0 {
		return nil
	}
	n, err := tx.QueueInvitations(ctx, t.Key, p.added)
	if err != nil {
		return fmt.Errorf("queue %d invitations: %w", len(p.added), err)
	}
	out.Invitations = n
	return nil
}

func upsertBatch(m *mapping.Mapper, profiles map[int64]mapping.Profile) mapping.Batch {
	ids := make([]int64, 0, len(profiles))
	for id := range profiles {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := mapping.Batch{FieldNames: m.UpsertColumns()}
	for _, id := range ids {
		b.Rows = append(b.Rows, m.UpsertRows(profiles[id])...)
	}
	return b
}

func send(ctx context.Context, t Tenant, b mapping.Batch, out *Outcome) error {
	res, err := t.Unisender.ImportContacts(ctx, unisender.ImportRequest{FieldNames: b.FieldNames, Rows: b.Rows})
	if err != nil {
		return fmt.Errorf("unisender importContacts (%d rows): %w", len(b.Rows), err)
	}
	out.Rejected = append(out.Rejected, res.Log...)
	return nil
}
