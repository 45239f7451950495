// Package syncer holds the sync rules: how the current state of a tenant's
// Kommo contacts, read from Kommo's API, becomes Unisender calls, with the
// tenant's contact state in MySQL deciding what changed.
//
// Kommo is the source of truth. A webhook only names contacts; the worker
// reads them (ReadContacts) and commits what it read (Commit). The initial
// import and the resync commit the contacts they list, and the sweep the
// contacts Kommo no longer has, through the same Commit: there is one path
// by which contact state reaches the store and Unisender.
//
// A commit is one store transaction that commits only after Unisender
// accepted the calls. A failed call or a crash leaves the stored state as it
// was, so the retried commit computes the same calls again; a call repeated
// after a crash that struck between Unisender's answer and the commit is
// harmless, because an import of the same rows changes nothing.
package syncer

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
	"github.com/kommo-unisender/kommo-unisender/internal/writeback"
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
	Key    string // "namespace/name"
	Mapper *mapping.Mapper
	// Segment is the binding's selector; nil selects every contact. A
	// contact outside it is committed as holding no address of the list,
	// so its addresses leave the list (unless another matching contact
	// holds them) and come back when it matches again.
	Segment        *segment.Segment
	DeletionPolicy v1alpha1.DeletionPolicy
	Unisender      Importer
	// Kommo reads the tenant's contacts, within the account's shared
	// request budget. The worker reads through it; nil where the caller
	// reads by other means (the importer has its own).
	Kommo ContactReader
	// DoubleOptin is the binding's spec.doubleOptin. When it invites,
	// Commit queues an invitation for every address it brings into the
	// list, in its transaction.
	DoubleOptin v1alpha1.DoubleOptin
	// Inviter sends the queued invitations; Commit does not use it. Nil
	// when the tenant's invitations cannot be sent.
	Inviter Inviter
	// ListSharers are the other tenants syncing into the same Unisender
	// list (bindings that all set spec.list.shared): an address this
	// tenant drops stays in the list while one of them holds it.
	ListSharers []string
	// Tags reads addresses' tags in Unisender, so that tags dropped in
	// Kommo leave Unisender while tags set by others stay (see tags.go).
	// Nil: dropped tags stay in Unisender.
	Tags TagReader
	// WriteBack shows Unisender's opt-outs and bounces in Kommo
	// (spec.writeBack); nil when the binding has none. Commit does not use
	// it: the worker applies the addresses jobs through it.
	WriteBack *writeback.Target
}

// Current is one contact as Kommo holds it, read at ReadAt (microseconds on
// the database's clock, store.Store.Now, taken before the read was sent).
// Contact nil means Kommo answered that there is no such contact: it is
// gone.
type Current struct {
	ID      int64
	Contact *kommo.Contact
	ReadAt  int64
}

// Gone reports whether Kommo said the contact does not exist.
func (c Current) Gone() bool { return c.Contact == nil }

// Outcome counts what a commit did.
type Outcome struct {
	Contacts  int // contacts committed
	Companies int // companies, which are not synced
	Stale     int // contacts whose stored version was read later, or is the same
	Deleted   int // tombstones applied
	Upserted  int // rows sent to add or update addresses
	Removed   int // addresses taken out of the list (excluded or deleted)
	Calls     int // importContacts calls made
	// Invitations counts the invitations queued (addresses new to the list
	// of a tenant that invites, not queued before).
	Invitations int
	// Applied says, per contact in the order given, whether its version
	// was applied (false: stale or the same as stored).
	Applied []bool
	// Rejected are the rows Unisender refused one by one (invalid or role
	// addresses); they are reported, not retried: the same row would be
	// refused again.
	Rejected []unisender.ImportLogEntry
}

// Commit applies the current state of some of a tenant's contacts to the
// store and Unisender, in one transaction that commits only after Unisender
// accepted the calls: the changed contacts' rows are upserted, addresses no
// live contact holds any more (of the tenant, nor of a tenant sharing its
// list: Tenant.ListSharers) leave the list as the deletion policy says,
// and, when the tenant invites, addresses new to the list get an invitation.
//
// verify names addresses Unisender may hold without the store knowing (a
// push whose commit was lost): each that no live contact holds once the
// contacts are applied leaves the list too. The caller holds the tenant's
// lock. The returned error wraps the Unisender or store error so that
// callers can classify it (unisender.IsTransient, store.IsTransient).
func Commit(ctx context.Context, st *store.Store, t Tenant, contacts []Current, verify []string) (Outcome, error) {
	var out Outcome
	// A shared list's sharers are other tenants, whose lock the caller does
	// not hold: their rows need REPEATABLE READ's gap locks.
	inTx := st.InTenantTx
	if len(t.ListSharers) > 0 {
		inTx = st.InTx
	}
	err := inTx(ctx, func(tx *store.Tx) error {
		out = Outcome{Contacts: len(contacts)}
		p, err := planCommit(ctx, tx, t, contacts, &out)
		if err != nil {
			return err
		}
		if err := p.addUnheld(ctx, tx, t.Key, verify); err != nil {
			return err
		}
		if err := p.keepShared(ctx, tx, t.ListSharers); err != nil {
			return err
		}
		if err := recordLeads(ctx, tx, t, contacts); err != nil {
			return err
		}
		if err := p.dropRefused(ctx, tx, t.Key); err != nil {
			return err
		}
		if err := push(ctx, t, p, &out); err != nil {
			return err
		}
		if err := tx.ReplaceRefusals(ctx, t.Key, p.applied, p.refusals); err != nil {
			return err
		}
		return queueInvitations(ctx, tx, t, p, &out)
	})
	return out, err
}

// plan is what one commit must send to Unisender.
type plan struct {
	upserts  map[int64]mapping.Profile // profile of every changed live contact
	orphaned map[string]bool           // addresses no live contact holds any more
	added    []string                  // addresses the commit brings into the list
	dropped  map[int64][]string        // tags a changed contact no longer has (tags.go)
	// applied are the contacts (and companies) whose recorded refusals
	// this commit replaces with refusals: the rows Unisender refused and
	// the contacts skipped.
	applied  []int64
	refusals []store.Refusal
}

// planCommit applies the contacts to the stored state and gathers the net
// changes. The store applies them in a handful of statements
// (Tx.ApplyContacts) and decides orphaned addresses after all of them: an
// address one contact drops and another takes up stays in the list.
func planCommit(ctx context.Context, tx *store.Tx, t Tenant, contacts []Current, out *Outcome) (*plan, error) {
	states, profiles, index := storedForms(t, contacts, out)
	results, err := tx.ApplyContacts(ctx, t.Key, states)
	if err != nil {
		return nil, fmt.Errorf("apply %d contacts: %w", len(states), err)
	}
	out.Applied = make([]bool, len(contacts))
	p := &plan{upserts: map[int64]mapping.Profile{}, orphaned: map[string]bool{}, dropped: map[int64][]string{}}
	for i, res := range results {
		if !res.Applied {
			out.Stale++
			continue
		}
		out.Applied[index[i]] = true
		p.applied = append(p.applied, states[i].ID)
		for _, e := range res.OrphanedEmails {
			p.orphaned[e] = true
		}
		if states[i].Deleted {
			out.Deleted++
			continue
		}
		if len(states[i].Emails) == 0 {
			p.skip(states[i].ID, store.ReasonNoEmail, "the contact has no e-mail address")
		}
		p.upserts[states[i].ID] = profiles[i]
		p.added = append(p.added, res.NewEmails...)
		if t.Tags != nil {
			p.noteDroppedTags(t.Mapper, res.Previous, states[i])
		}
	}
	for _, c := range contacts {
		if c.Contact != nil && c.Contact.IsCompany() {
			p.applied = append(p.applied, c.ID)
			p.skip(c.ID, store.ReasonCompany, "companies are not synced")
		}
	}
	return p, nil
}

// skip records that a contact was left out of the list, and why.
func (p *plan) skip(id int64, reason, message string) {
	p.refusals = append(p.refusals, store.Refusal{ContactID: id, Source: store.RefusalSkipped, Reason: reason, Message: message})
}

// dropRefused keeps addresses Unisender refused out of the removals: they
// never were in the list, so excluding or deleting them is a call for
// nothing (and a refused row each time).
func (p *plan) dropRefused(ctx context.Context, tx *store.Tx, tenant string) error {
	refused, err := tx.RefusedAmong(ctx, tenant, slices.Collect(maps.Keys(p.orphaned)))
	if err != nil {
		return err
	}
	for e := range refused {
		delete(p.orphaned, e)
	}
	return nil
}

// refuse records the upsert rows Unisender refused (owners maps a row to
// its contact and address), and takes their addresses out of those the
// commit brings into the list: nobody is invited to a list they are not in.
func (p *plan) refuse(log []unisender.ImportLogEntry, owners []rowOwner) {
	refused := map[string]bool{}
	for _, e := range log {
		if e.Index < 0 || e.Index >= len(owners) {
			continue // a log entry naming no row we sent: nothing to record
		}
		o := owners[e.Index]
		refused[o.email] = true
		p.refusals = append(p.refusals, store.Refusal{ContactID: o.contact, Email: o.email,
			Source: store.RefusalUnisender, Reason: e.Code, Message: e.Message})
	}
	p.added = slices.DeleteFunc(p.added, func(e string) bool { return refused[e] })
}

// storedForms turns the contacts into the store's form, skipping companies
// and keeping the latest read of a contact named twice; index maps each
// state back to its contact's position.
func storedForms(t Tenant, contacts []Current, out *Outcome) ([]store.ContactState, []mapping.Profile, []int) {
	states := make([]store.ContactState, 0, len(contacts))
	profiles := make([]mapping.Profile, 0, len(contacts))
	index := make([]int, 0, len(contacts))
	seen := make(map[int64]int, len(contacts))
	for i, c := range contacts {
		if c.Contact != nil && c.Contact.IsCompany() {
			out.Companies++
			continue
		}
		state, profile := storedForm(t, c)
		if j, ok := seen[c.ID]; ok {
			out.Stale++
			if state.ReadAt < states[j].ReadAt {
				continue
			}
			states[j], profiles[j], index[j] = state, profile, i
			continue
		}
		seen[c.ID] = len(states)
		states = append(states, state)
		profiles = append(profiles, profile)
		index = append(index, i)
	}
	return states, profiles, index
}

// storedForm is the contact as the store keeps it and the profile pushed
// for it. A contact outside the segment keeps its data but holds no
// address: the store then takes its addresses out of the e-mail map.
func storedForm(t Tenant, c Current) (store.ContactState, mapping.Profile) {
	if c.Gone() {
		return store.ContactState{ID: c.ID, Deleted: true, ReadAt: c.ReadAt}, mapping.Profile{}
	}
	p := t.Mapper.Profile(c.Contact)
	outside := !t.Segment.Matches(c.Contact)
	if outside {
		p.Emails = nil
	}
	return store.ContactState{
		ID: c.ID, UpdatedAt: c.Contact.UpdatedAt, ReadAt: c.ReadAt, Emails: p.Emails, OutsideSegment: outside,
		Name: p.Name, Phone: p.Phone, Tags: p.Tags, Fields: p.Fields,
	}, p
}

// recordLeads keeps, for a segment on leads, which leads each contact read
// has: a lead event names leads, and a deleted lead's contacts are known
// only from here.
func recordLeads(ctx context.Context, tx *store.Tx, t Tenant, contacts []Current) error {
	if !t.Segment.UsesLeads() {
		return nil
	}
	links := make(map[int64][]int64, len(contacts))
	for _, c := range contacts {
		links[c.ID] = nil
		if !c.Gone() {
			links[c.ID] = c.Contact.LeadIDs
		}
	}
	return tx.SetContactLeads(ctx, t.Key, links)
}

// addUnheld adds to the removals each address of verify that no live
// contact of the tenant holds.
func (p *plan) addUnheld(ctx context.Context, tx *store.Tx, tenant string, verify []string) error {
	for _, email := range verify {
		email = emailaddr.Normalize(email)
		if email == "" || p.orphaned[email] {
			continue
		}
		held, err := tx.EmailHeld(ctx, tenant, email)
		if err != nil {
			return err
		}
		if !held {
			p.orphaned[email] = true
		}
	}
	return nil
}

// keepShared drops from the removals the addresses another tenant sharing
// the list still holds, locking their entries until the commit, so that a
// sharer cannot drop one meanwhile (its own commit then removes it).
func (p *plan) keepShared(ctx context.Context, tx *store.Tx, sharers []string) error {
	if len(sharers) == 0 || len(p.orphaned) == 0 {
		return nil
	}
	held, err := tx.HeldByAny(ctx, sharers, slices.Collect(maps.Keys(p.orphaned)))
	if err != nil {
		return err
	}
	for e := range held {
		delete(p.orphaned, e)
	}
	return nil
}

// push sends the plan: one importContacts for the upserts (the client splits
// past 500 rows) and one for the removals.
func push(ctx context.Context, t Tenant, p *plan, out *Outcome) error {
	if batch, owners := upsertBatch(t.Mapper, p.upserts, p.dropped); len(batch.Rows) > 0 {
		log, err := send(ctx, t, batch, false, out)
		if err != nil {
			return err
		}
		p.refuse(log, owners)
		out.Upserted = len(batch.Rows)
	}
	if len(p.dropped) > 0 {
		batch, owners, err := retagBatch(ctx, t, p)
		if err != nil {
			return err
		}
		if len(batch.Rows) > 0 {
			log, err := send(ctx, t, batch, true, out)
			if err != nil {
				return err
			}
			p.refuse(log, owners)
			out.Upserted += len(batch.Rows)
		}
	}
	if batch := t.Mapper.RemovalBatch(slices.Sorted(maps.Keys(p.orphaned)), t.DeletionPolicy); batch != nil {
		if _, err := send(ctx, t, *batch, false, out); err != nil {
			return err
		}
		out.Removed = len(batch.Rows)
	}
	return nil
}

// queueInvitations records, once the push succeeded and in the same
// transaction, an invitation for each address the commit brought into the
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

// rowOwner is the contact and address of one upsert row.
type rowOwner struct {
	contact int64
	email   string
}

// upsertBatch is the rows of the changed contacts, by ascending id, but
// those that dropped tags (retagBatch sends them), and whose each row is
// (UpsertRows gives one row per address, in order).
func upsertBatch(m *mapping.Mapper, profiles map[int64]mapping.Profile, dropped map[int64][]string) (mapping.Batch, []rowOwner) {
	b := mapping.Batch{FieldNames: m.UpsertColumns()}
	var owners []rowOwner
	for _, id := range slices.Sorted(maps.Keys(profiles)) {
		if _, retag := dropped[id]; retag {
			continue
		}
		b.Rows = append(b.Rows, m.UpsertRows(profiles[id])...)
		for _, e := range profiles[id].Emails {
			owners = append(owners, rowOwner{contact: id, email: e})
		}
	}
	return b, owners
}

// send makes the import and returns Unisender's per-row log of it.
func send(ctx context.Context, t Tenant, b mapping.Batch, overwriteTags bool, out *Outcome) ([]unisender.ImportLogEntry, error) {
	out.Calls += (len(b.Rows) + unisender.MaxImportRows - 1) / unisender.MaxImportRows
	res, err := t.Unisender.ImportContacts(ctx, unisender.ImportRequest{FieldNames: b.FieldNames, Rows: b.Rows, OverwriteTags: overwriteTags})
	if err != nil {
		return nil, fmt.Errorf("unisender importContacts (%d rows): %w", len(b.Rows), err)
	}
	out.Rejected = append(out.Rejected, res.Log...)
	return res.Log, nil
}
