package importer

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// Commit retries and the tenant lock: the webhook workers hold a tenant's
// lock for one batch at a time, so waiting up to tenantLockWait is plenty.
const (
	maxCommitAttempts = 3
	commitRetryDelay  = time.Second
	tenantLockWait    = 30 * time.Second
)

// errTenantBusy: the tenant's lock stayed taken.
var errTenantBusy = errors.New("importer: the tenant stayed locked by another process")

// maxPendingContacts bounds the buffer when contacts carry few rows (no
// e-mail): past it the buffer is committed even if its call is not full.
const maxPendingContacts = 2 * DefaultBatchRows

// run is the state of one Run call.
type run struct {
	im     *Importer
	job    Job
	report func(Progress)
	p      Progress

	// startBound is the updated_at the run (re)started listing from: a
	// contact at that second which the store already holds was committed
	// before a restart and is not counted again.
	startBound int64
	// top is the highest updated_at listed; listedAtTop the ids listed at
	// that second, so that a new listing starting there skips them.
	top         int64
	listedAtTop map[int64]bool
	fetched     int // pages fetched, counting those of earlier processes

	pending     []pendingContact
	pendingRows int
	saved       Progress // what the last checkpoint holds
}

// pendingContact is a listed contact waiting for its batch.
type pendingContact struct {
	state store.ContactState
	rows  [][]string
	page  int
}

// walk lists the contacts, one keyset listing after another, feeding pages
// to take and committing full batches as they fill.
func (r *run) walk(ctx context.Context) error {
	r.startBound = r.p.Cursor
	r.fetched = r.p.Pages
	for {
		from := r.top
		err := r.job.Kommo.ListContacts(ctx, r.listOptions(from), func(page []kommo.Contact) error {
			r.fetched++
			r.take(page)
			if err := r.flush(ctx, false); err != nil {
				return err
			}
			if err := r.checkpoint(ctx); err != nil {
				return err
			}
			r.publish()
			if page[len(page)-1].UpdatedAt > from {
				return errNextListing
			}
			return nil // the whole page is in the cursor's second: follow next
		})
		if !errors.Is(err, errNextListing) {
			return err
		}
	}
}

func (r *run) listOptions(from int64) kommo.ListContactsOptions {
	return kommo.ListContactsOptions{UpdatedFrom: from, Order: kommo.OrderUpdatedAsc, Limit: r.im.pageSize()}
}

// take buffers a page's people, skipping companies and contacts already
// listed at the cursor's second.
func (r *run) take(page []kommo.Contact) {
	for i := range page {
		c := &page[i]
		if c.IsCompany() || c.ID <= 0 {
			continue
		}
		switch {
		case c.UpdatedAt > r.top:
			r.top = c.UpdatedAt
			clear(r.listedAtTop)
		case c.UpdatedAt == r.top && r.listedAtTop[c.ID]:
			continue
		}
		if c.UpdatedAt == r.top {
			r.listedAtTop[c.ID] = true
		}
		profile := r.job.Mapper.Profile(c)
		rows := r.job.Mapper.UpsertRows(profile)
		r.pending = append(r.pending, pendingContact{
			state: store.ContactState{
				ID: c.ID, UpdatedAt: c.UpdatedAt, Emails: profile.Emails, Name: profile.Name,
				Phone: profile.Phone, Tags: profile.Tags, Fields: profile.Fields,
			},
			rows: rows,
			page: r.fetched,
		})
		r.pendingRows += len(rows)
		r.p.Seen++
	}
}

// flush commits full batches, or everything buffered when all is set.
func (r *run) flush(ctx context.Context, all bool) error {
	limit := r.im.batchRows()
	for len(r.pending) > 0 && (all || r.pendingRows >= limit || len(r.pending) >= maxPendingContacts) {
		n, rows := 0, 0
		for n < len(r.pending) && (n == 0 || rows+len(r.pending[n].rows) <= limit) {
			rows += len(r.pending[n].rows)
			n++
		}
		if err := r.commit(ctx, r.pending[:n]); err != nil {
			return err
		}
		r.pending = r.pending[n:]
		r.pendingRows -= rows
	}
	r.p.Pages = r.fetched
	if len(r.pending) > 0 {
		r.p.Pages = r.pending[0].page - 1
	}
	return nil
}

// commit records a batch of contacts in the store and sends the rows of
// those that changed, in one transaction that commits only after Unisender
// accepted them. The tenant's lock (the one the webhook workers take)
// keeps a worker from interleaving its own changes to these contacts. A
// deadlock or a lost connection is retried a few times; Unisender's
// transient failures were already retried by its client.
func (r *run) commit(ctx context.Context, batch []pendingContact) error {
	var err error
	for attempt := 1; attempt <= maxCommitAttempts; attempt++ {
		err = r.commitOnce(ctx, batch)
		retryable := store.IsTransient(err) || errors.Is(err, errTenantBusy)
		if err == nil || ctx.Err() != nil || !retryable {
			return err
		}
		if serr := sleep(ctx, time.Duration(attempt)*commitRetryDelay); serr != nil {
			return err
		}
	}
	return err
}

func (r *run) commitOnce(ctx context.Context, batch []pendingContact) error {
	tenantKey := r.job.Tenant.String()
	lock, ok, err := r.im.Store.LockTenant(ctx, tenantKey, tenantLockWait)
	if err != nil {
		return err
	}
	if !ok {
		return errTenantBusy
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = lock.Release(rctx) // a failed release closes the session, which frees the lock
	}()
	var counted, deleted int64
	var sent sendStats
	err = r.im.Store.InTx(ctx, func(tx *store.Tx) error {
		counted, deleted, sent = 0, 0, sendStats{}
		states := make([]store.ContactState, len(batch))
		for i := range batch {
			states[i] = batch[i].state
		}
		results, err := tx.ApplyContacts(ctx, tenantKey, states)
		if err != nil {
			return err
		}
		var rows [][]string
		var added []string
		orphans := map[string]bool{}
		for i, res := range results {
			if res.Applied {
				rows = append(rows, batch[i].rows...)
				added = append(added, res.NewEmails...)
				for _, e := range res.OrphanedEmails {
					orphans[e] = true
				}
			}
			switch {
			case batch[i].state.Deleted:
				if res.Applied {
					deleted++
				}
			case res.Applied || batch[i].state.UpdatedAt != r.startBound:
				counted++
			}
		}
		if err := r.send(ctx, r.job.Mapper.UpsertColumns(), rows, &sent); err != nil {
			return err
		}
		if b := r.job.Mapper.RemovalBatch(slices.Sorted(maps.Keys(orphans)), r.job.DeletionPolicy); b != nil {
			if err := r.send(ctx, b.FieldNames, b.Rows, &sent); err != nil {
				return err
			}
		}
		return r.queueInvitations(ctx, tx, added, &sent)
	})
	r.p.Calls += sent.calls
	r.p.Rows += sent.rows
	r.p.Rejected += sent.rejected
	if err != nil {
		return err
	}
	r.p.Invitations += sent.invitations
	r.p.Imported += counted
	r.p.Deleted += deleted
	for _, c := range batch {
		if !c.state.Deleted { // a sweep's tombstone is stamped with our clock, not Kommo's
			r.p.Cursor = max(r.p.Cursor, c.state.UpdatedAt)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sendStats counts what one commit sent.
type sendStats struct {
	calls       int
	rows        int64
	rejected    int64
	invitations int64
}

// queueInvitations records, after the batch's rows were accepted and in
// its transaction, an invitation for each address the batch brought into
// the list, when the binding invites.
func (r *run) queueInvitations(ctx context.Context, tx *store.Tx, added []string, st *sendStats) error {
	if !r.job.DoubleOptin.Invites() || len(added) == 0 {
		return nil
	}
	n, err := tx.QueueInvitations(ctx, r.job.Tenant.String(), added)
	st.invitations = int64(n)
	return err
}

// send makes the importContacts call(s) for rows; the client splits more
// than 500 rows into several calls.
func (r *run) send(ctx context.Context, fields []string, rows [][]string, st *sendStats) error {
	if len(rows) == 0 {
		return nil
	}
	calls := (len(rows) + unisender.MaxImportRows - 1) / unisender.MaxImportRows
	res, err := r.job.Unisender.ImportContacts(ctx, unisender.ImportRequest{FieldNames: fields, Rows: rows})
	var rejected int64
	if res != nil {
		rejected = int64(len(res.Log))
	}
	st.calls += calls
	st.rows += int64(len(rows))
	st.rejected += rejected
	r.im.Metrics.observeImport(r.job.Tenant, calls, len(rows), rejected, err)
	return err
}

// checkpoint saves progress when the committed part moved.
func (r *run) checkpoint(ctx context.Context) error {
	if r.p.Pages == r.saved.Pages && r.p.Imported == r.saved.Imported && r.p.Cursor == r.saved.Cursor {
		return nil
	}
	return r.save(ctx)
}

// save writes the checkpoint. NextURL records the listing a resumed run
// starts with, for people reading the table; the run itself resumes from
// UpdatedFrom.
func (r *run) save(ctx context.Context) error {
	status := CheckpointRunning
	if r.p.Done {
		status = CheckpointDone
	}
	next := ""
	if !r.p.Done {
		q := url.Values{}
		q.Set("limit", strconv.Itoa(r.im.pageSize()))
		q.Set("order[updated_at]", "asc")
		if r.p.Cursor > 0 {
			q.Set("filter[updated_at][from]", strconv.FormatInt(r.p.Cursor, 10))
		}
		next = "/api/v4/contacts?" + q.Encode()
	}
	err := r.im.Store.SaveCheckpoint(ctx, store.Checkpoint{
		Tenant: r.job.Tenant.String(), RunID: r.job.RunID, LastPage: r.p.Pages, NextURL: next,
		Imported: r.p.Imported, Total: r.p.Seen, UpdatedFrom: r.p.Cursor, Status: status,
	})
	if err == nil {
		r.saved = r.p
	}
	return err
}

func (r *run) publish() {
	if r.report != nil {
		r.report(r.p)
	}
}
