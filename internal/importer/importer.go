// Package importer copies a tenant's Kommo contacts into its Unisender list:
// the initial import of every contact and the periodic incremental resync
// (contacts updated since a point in time). Both are the same run with a
// different lower bound on Kommo's updated_at.
//
// # How a run walks Kommo
//
// Kommo pages are offset-based (page=N), so following _links.next through
// a live account skips a contact whenever one listed earlier is updated or
// deleted meanwhile (everything after it shifts one place left). A run
// therefore lists by updated_at ascending and, after each page, starts a
// fresh listing at the highest updated_at seen (keyset paging): updates move
// a contact past the cursor, where it is listed again, and deletes shift
// nothing that is still to come. Only when a whole page shares the cursor's
// second (more than a page of contacts changed in one second, as a bulk
// import into Kommo does) does the run follow the next link, within that
// second. Contacts listed again at the cursor are recognised by id and
// skipped.
//
// # Batches, the store and checkpoints
//
// Contacts are buffered until their rows fill an importContacts call
// (500 rows, so two full Kommo pages per call when every contact has one
// address); a contact's rows never straddle two calls. Each call runs in a
// store transaction that first records the contacts' state
// (store.Tx.ApplyContact, last write wins by updated_at) and commits only
// after Unisender accepted the rows: a contact the store already holds in
// this version, or in a newer one written by the webhook worker, sends no
// row. So whatever a crash interrupts, a restarted run never sends a
// finished contact again, and never overwrites newer data with older.
//
// After each page the run saves a checkpoint (store.SaveCheckpoint) whose
// UpdatedFrom is the updated_at of the last committed contact: every contact
// before it is done, so a restarted run resumes its listing there instead of
// starting over. Contacts at that very second that were already committed
// are recognised by the store and neither sent nor counted again.
//
// # Totals
//
// Kommo has no count endpoint, so Progress.Seen (reported as the import's
// total) is the running count of contacts listed so far; it equals the final
// figure once the run has completed.
package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
	"github.com/kommo-unisender/kommo-unisender/internal/writeback"
)

// ContactSource lists and reads Kommo contacts; *kommo.Client is one.
type ContactSource interface {
	ListContacts(ctx context.Context, opts kommo.ListContactsOptions, fn func(page []kommo.Contact) error) error
	// GetContact gives an error matching kommo.ErrNotFound for a contact
	// Kommo does not have.
	GetContact(ctx context.Context, id int64) (*kommo.Contact, error)
	// Account reads the account the token belongs to (see Job.AccountID).
	Account(ctx context.Context) (*kommo.Account, error)
}

// ContactSink takes importContacts calls; *unisender.Client is one.
type ContactSink interface {
	ImportContacts(ctx context.Context, req unisender.ImportRequest) (*unisender.ImportResult, error)
}

// Kind tells the initial import from a resync.
type Kind string

// The kinds of runs.
const (
	KindInitial Kind = "Initial"
	KindResync  Kind = "Resync"
)

// Checkpoint statuses this package writes.
const (
	CheckpointRunning = "Running"
	CheckpointDone    = "Done"
)

// MaxRunIDLen is the longest run id the checkpoint table holds.
const MaxRunIDLen = 64

// Defaults: Kommo's largest page and Unisender's largest import call.
const (
	DefaultPageSize  = kommo.MaxPageLimit
	DefaultBatchRows = unisender.MaxImportRows
)

// Job is one run for one tenant.
type Job struct {
	Tenant tenant.Key
	// RunID names the run (at most MaxRunIDLen bytes). A checkpoint with
	// the same RunID is resumed (or, if done, its result returned); any
	// other checkpoint is replaced.
	RunID string
	Kind  Kind
	// From is the lower bound on Kommo's updated_at (Unix seconds,
	// inclusive); 0 lists every contact.
	From   int64
	Mapper *mapping.Mapper
	// Segment is the binding's selector (nil: every contact); a segment on
	// leads needs Kommo to read the leads too (segment.ReaderFor).
	Segment *segment.Segment
	// Reevaluate: the sweep also commits the live contacts it reads, so
	// that each is evaluated against Segment again (see sweep.go).
	Reevaluate     bool
	DeletionPolicy v1alpha1.DeletionPolicy
	// DoubleOptin is the binding's spec.doubleOptin: when it invites, each
	// batch queues an invitation for every address it brings into the
	// list, in the batch's transaction (the worker sends them).
	DoubleOptin v1alpha1.DoubleOptin
	// Sweep: after the listing, remove the contacts the store holds that
	// Kommo no longer has (see sweep.go). Resyncs sweep; the initial
	// import has nothing to sweep.
	Sweep bool
	// SweepHoldPercent is the binding's spec.sweepMaxRemovalPercent: past
	// this share of the live contacts gone at once, the sweep removes none
	// (0 means the default, 50).
	SweepHoldPercent int
	// AccountID is the Kommo account on record for the tenant (the
	// KommoIntegration's status.accountID). When set, the run first checks
	// that Kommo's token reads this account and otherwise fails with
	// ErrAccountMismatch, having changed nothing (see account.go).
	AccountID int64
	// ListSharers are the other tenants sharing the Unisender list (see
	// syncer.Tenant.ListSharers): the sweep keeps what they still hold.
	ListSharers []string
	Kommo       ContactSource
	Unisender   ContactSink
	// Tags reads tags in Unisender so that tags dropped in Kommo leave it
	// (syncer.Tenant.Tags); nil leaves them.
	Tags syncer.TagReader
	// WriteBack, when set, pulls Unisender's opt-outs and bounces back
	// into Kommo once a resync has listed and swept (spec.writeBack), so
	// that Kommo catches up on whatever the hook did not deliver.
	WriteBack *writeback.Target
}

func (j *Job) validate() error {
	if len(j.RunID) > MaxRunIDLen {
		return fmt.Errorf("importer: run id %q is longer than %d bytes", j.RunID, MaxRunIDLen)
	}
	if j.Tenant.Namespace == "" || j.Tenant.Name == "" || j.RunID == "" || j.Mapper == nil || j.Kommo == nil || j.Unisender == nil {
		return fmt.Errorf("importer: job %q for %q lacks a tenant, a run id, a mapper, a Kommo source or a Unisender sink", j.RunID, j.Tenant)
	}
	return nil
}

// Progress is where a run stands; the final Progress is its result.
type Progress struct {
	RunID string
	Kind  Kind
	// Pages is the number of Kommo pages whose contacts are all committed.
	Pages int
	// Imported counts the contacts this run has committed (recorded in the
	// store, their rows accepted by Unisender; contacts without an e-mail
	// count too: there was nothing to send).
	Imported int64
	// Seen counts the contacts listed so far: Imported plus those waiting
	// for their batch. Kommo has no count, so this is the running total.
	Seen int64
	// Cursor is the updated_at of the last committed contact: a resumed run
	// lists from there.
	Cursor int64
	// Calls, Rows and Rejected count this process's importContacts calls,
	// the rows they carried and the rows Unisender refused (per-row log:
	// invalid or role addresses); rejections are not fatal.
	Calls    int
	Rows     int64
	Rejected int64
	// Invitations counts the invitations this process queued.
	Invitations int64
	// Deleted counts the contacts the sweep found gone from Kommo and
	// removed; SweepHeld those it found gone but kept, because removing
	// them would have emptied most of the list (see sweep.go).
	Deleted   int64
	SweepHeld int64
	Done      bool
}

// Importer runs jobs against the store. The zero value is not usable: set
// Store.
type Importer struct {
	Store     *store.Store
	PageSize  int // 0 = DefaultPageSize
	BatchRows int // 0 = DefaultBatchRows
	// Metrics, if set, receives call and row counts.
	Metrics *Metrics
}

// errNextListing stops a listing so that the run starts a fresh one from
// the new cursor (see the package doc).
var errNextListing = errors.New("importer: start the next listing")

// Run imports job's contacts, reporting progress after every page (report
// may be nil), and returns the final progress. It resumes the checkpoint of
// the same RunID; a run whose checkpoint is done returns at once. The error
// is ctx's when cancelled, otherwise the Kommo, Unisender or store failure
// that stopped the run; the checkpoint stays, so running the job again
// resumes it.
func (im *Importer) Run(ctx context.Context, job Job, report func(Progress)) (Progress, error) {
	r, err := im.start(ctx, job, report)
	if err != nil {
		return Progress{RunID: job.RunID, Kind: job.Kind, Cursor: job.From}, err
	}
	if r.p.Done {
		return r.p, nil
	}
	if err := r.checkAccount(ctx); err != nil {
		return r.p, err
	}
	if err := r.walk(ctx); err != nil {
		return r.p, err
	}
	if err := r.flush(ctx, true); err != nil {
		return r.p, err
	}
	if job.Sweep {
		if err := r.sweep(ctx); err != nil {
			return r.p, err
		}
	}
	if err := r.pullWriteBack(ctx); err != nil {
		return r.p, err
	}
	r.p.Done = true
	r.p.Seen = r.p.Imported
	if err := r.save(ctx); err != nil {
		return r.p, err
	}
	r.publish()
	return r.p, nil
}

// start loads or creates the run's checkpoint.
func (im *Importer) start(ctx context.Context, job Job, report func(Progress)) (*run, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	r := &run{
		im: im, job: job, report: report,
		p:           Progress{RunID: job.RunID, Kind: job.Kind, Cursor: job.From},
		listedAtTop: map[int64]bool{},
	}
	cp, err := im.Store.GetCheckpoint(ctx, job.Tenant.String())
	switch {
	case err == nil && cp.RunID == job.RunID:
		r.p.Pages, r.p.Imported, r.p.Seen, r.p.Cursor = cp.LastPage, cp.Imported, cp.Imported, cp.UpdatedFrom
		r.p.Done = cp.Status == CheckpointDone
	case err == nil || errors.Is(err, store.ErrNotFound):
		if err := r.save(ctx); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	r.top = r.p.Cursor
	return r, nil
}

func (im *Importer) pageSize() int {
	if im.PageSize > 0 && im.PageSize <= kommo.MaxPageLimit {
		return im.PageSize
	}
	return DefaultPageSize
}

func (im *Importer) batchRows() int {
	if im.BatchRows > 0 && im.BatchRows <= unisender.MaxImportRows {
		return im.BatchRows
	}
	return DefaultBatchRows
}
