package importer

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sleep"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
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

// pendingContact is a listed contact waiting for its batch; rows is how
// many Unisender rows it makes (batches are sized by rows).
type pendingContact struct {
	current syncer.Current
	rows    int
	page    int
	// reevaluated: read by the sweep to evaluate the selector again, not
	// listed; it counts toward no progress figure.
	reevaluated bool
}

// walk lists the contacts, one keyset listing after another, feeding pages
// to take and committing full batches as they fill.
func (r *run) walk(ctx context.Context) error {
	r.startBound = r.p.Cursor
	r.fetched = r.p.Pages
	for {
		from := r.top
		// Each page is stamped with the database's clock taken before its
		// request went out: before the listing for the first page, after the
		// previous page for the others (the client reads them in turn).
		readAt, err := r.im.Store.Now(ctx)
		if err != nil {
			return err
		}
		err = r.job.Kommo.ListContacts(ctx, r.listOptions(from), func(page []kommo.Contact) error {
			r.fetched++
			r.take(page, readAt)
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
			var err error
			readAt, err = r.im.Store.Now(ctx)
			return err // nil: the whole page is in the cursor's second, follow next
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
func (r *run) take(page []kommo.Contact, readAt int64) {
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
		rows := len(r.job.Mapper.UpsertRows(r.job.Mapper.Profile(c)))
		r.pending = append(r.pending, pendingContact{
			current: syncer.Current{ID: c.ID, Contact: c, ReadAt: readAt},
			rows:    rows,
			page:    r.fetched,
		})
		r.pendingRows += rows
		r.p.Seen++
	}
}

// flush commits full batches, or everything buffered when all is set.
func (r *run) flush(ctx context.Context, all bool) error {
	limit := r.im.batchRows()
	for len(r.pending) > 0 && (all || r.pendingRows >= limit || len(r.pending) >= maxPendingContacts) {
		n, rows := 0, 0
		for n < len(r.pending) && (n == 0 || rows+r.pending[n].rows <= limit) {
			rows += r.pending[n].rows
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

// commit applies a batch of contacts through syncer.Commit, the one commit
// path the webhook worker uses too, under the tenant's lock (the one the
// workers take), so a worker's commit of these contacts and ours never
// interleave. A deadlock or a lost connection is retried a few times;
// Unisender's transient failures were already retried by its client.
func (r *run) commit(ctx context.Context, batch []pendingContact) error {
	var err error
	for attempt := 1; attempt <= maxCommitAttempts; attempt++ {
		err = r.commitOnce(ctx, batch)
		retryable := store.IsTransient(err) || errors.Is(err, errTenantBusy)
		if err == nil || ctx.Err() != nil || !retryable {
			return err
		}
		if serr := sleep.For(ctx, time.Duration(attempt)*commitRetryDelay); serr != nil {
			return err
		}
	}
	return err
}

func (r *run) commitOnce(ctx context.Context, batch []pendingContact) error {
	lock, ok, err := r.im.Store.LockTenant(ctx, r.job.Tenant.String(), tenantLockWait)
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
	contacts := make([]syncer.Current, len(batch))
	for i := range batch {
		contacts[i] = batch[i].current
	}
	out, err := syncer.Commit(ctx, r.im.Store, r.syncTenant(), contacts, nil)
	rows := out.Upserted + out.Removed
	r.p.Calls += out.Calls
	r.p.Rows += int64(rows)
	r.p.Rejected += int64(len(out.Rejected))
	r.im.Metrics.observeImport(r.job.Tenant, out.Calls, rows, int64(len(out.Rejected)), err)
	if err != nil {
		return err
	}
	r.p.Invitations += int64(out.Invitations)
	r.count(batch, out.Applied)
	return nil
}

// count adds a committed batch to the progress: contacts imported (one
// the store already held at the restart's second was counted before the
// restart), tombstones, and the cursor (Kommo's updated_at of the listed
// contacts; a sweep's tombstones have none).
func (r *run) count(batch []pendingContact, applied []bool) {
	for i, c := range batch {
		if c.reevaluated {
			continue
		}
		if c.current.Gone() {
			if applied[i] {
				r.p.Deleted++
			}
			continue
		}
		if applied[i] || c.current.Contact.UpdatedAt != r.startBound {
			r.p.Imported++
		}
		r.p.Cursor = max(r.p.Cursor, c.current.Contact.UpdatedAt)
	}
}

// syncTenant is the job's tenant as syncer.Commit needs it.
func (r *run) syncTenant() syncer.Tenant {
	return syncer.Tenant{
		Key: r.job.Tenant.String(), Mapper: r.job.Mapper, Segment: r.job.Segment, DeletionPolicy: r.job.DeletionPolicy,
		Unisender: r.job.Unisender, DoubleOptin: r.job.DoubleOptin, ListSharers: r.job.ListSharers, Tags: r.job.Tags,
	}
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
