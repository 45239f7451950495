package importer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
)

// workerCommit does what the webhook worker does for contacts a webhook
// named: under the tenant's lock, read them from Kommo as they are now and
// commit that through syncer.Commit. As the worker does, a contact Kommo's
// answer leaves out is confirmed gone when the store holds it live, or when
// an import or resync of the tenant is running.
func (e *env) workerCommit(ids ...int64) syncer.Outcome {
	e.t.Helper()
	ctx := context.Background()
	key := e.tenant.String()
	lock, ok, err := e.store.LockTenant(ctx, key, 10*time.Second)
	if err != nil || !ok {
		e.t.Fatalf("tenant lock: %v, %v", ok, err)
	}
	defer func() { _ = lock.Release(ctx) }()
	live, err := e.store.LiveAmong(ctx, key, ids)
	if err != nil {
		e.t.Fatal(err)
	}
	cp, err := e.store.GetCheckpoint(ctx, key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		e.t.Fatal(err)
	}
	listing := err == nil && cp.Status == importer.CheckpointRunning
	current, err := syncer.ReadContacts(ctx, e.store, e.source, ids, func(id int64) bool { return live[id] || listing })
	if err != nil {
		e.t.Fatal(err)
	}
	j := e.job("worker", 0)
	out, err := syncer.Commit(ctx, e.store, syncer.Tenant{
		Key: key, Mapper: j.Mapper, DeletionPolicy: j.DeletionPolicy, Unisender: e.sink,
	}, current, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// onPage lists through the client and calls before on each page, after
// Kommo answered it and before the importer sees it.
type onPage struct {
	*kommo.Client
	before func(page []kommo.Contact)
}

func (s onPage) ListContacts(ctx context.Context, opts kommo.ListContactsOptions, fn func([]kommo.Contact) error) error {
	return s.Client.ListContacts(ctx, opts, func(page []kommo.Contact) error {
		s.before(page)
		return fn(page)
	})
}

// A page the import listed before a contact was deleted, committed after
// the worker committed the deletion it read later, does not bring the
// contact back: the version read later wins, whichever commits last. This
// holds whether the store held the contact before (its add webhook was
// processed) or not (its webhooks come during the import).
func TestAPageListedBeforeADeleteDoesNotResurrectTheContact(t *testing.T) {
	for _, knownBefore := range []bool{true, false} {
		t.Run(fmt.Sprintf("known before the import: %v", knownBefore), func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			contacts := e.addContacts(10, 0)
			victim := contacts[4]
			if knownBefore {
				if out := e.workerCommit(victim.ID); out.Upserted != 1 {
					t.Fatalf("worker commit of the new contact = %+v", out)
				}
			}

			deleted := false
			source := onPage{Client: e.source, before: func(page []kommo.Contact) {
				if deleted || !slices.ContainsFunc(page, func(c kommo.Contact) bool { return c.ID == victim.ID }) {
					return
				}
				// Deleted in Kommo after the page was read, and the worker
				// commits its delete webhook before the import commits the page.
				deleted = true
				if err := e.kommo.DeleteContact("acme", victim.ID); err != nil {
					t.Error(err)
					return
				}
				wantRemoved := 0
				if knownBefore {
					wantRemoved = 1
				}
				if out := e.workerCommit(victim.ID); out.Deleted != 1 || out.Removed != wantRemoved {
					t.Errorf("worker commit of the deletion = %+v; want a tombstone and %d address removed", out, wantRemoved)
				}
			}}
			job := e.job("initial", 0)
			job.Kommo = source
			p, err := e.importer().Run(ctx, job, nil)
			if err != nil || !p.Done {
				t.Fatalf("import = %+v, %v", p, err)
			}
			if !deleted {
				t.Fatal("the import never listed the contact")
			}

			got, err := e.store.GetContact(ctx, e.tenant.String(), victim.ID)
			if err != nil || !got.Deleted {
				t.Fatalf("contact %d in the store = %+v, %v; want the tombstone kept", victim.ID, got, err)
			}
			neighbour, err := e.store.GetContact(ctx, e.tenant.String(), contacts[5].ID)
			if err != nil || neighbour.Deleted || neighbour.ReadAt >= got.ReadAt {
				t.Fatalf("a contact of the same page = %+v, %v; want it live, read before the tombstone (read at %d)", neighbour, err, got.ReadAt)
			}
			members := e.activeMembers()
			if _, ok := members[emailOf(victim)]; ok {
				t.Fatalf("%s is active: the page listed before the delete resurrected it", emailOf(victim))
			}
			if len(members) != 9 {
				t.Fatalf("the list holds %d active members, want 9", len(members))
			}
		})
	}
}
