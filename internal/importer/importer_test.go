package importer_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

func TestImportSendsFullBatchesAndRecordsEveryContact(t *testing.T) {
	e := newEnv(t)
	contacts := e.addContacts(1200, 7)
	ctx := context.Background()

	var reports int
	p, err := e.importer().Run(ctx, e.job("initial", 0), func(importer.Progress) { reports++ })
	if err != nil {
		t.Fatal(err)
	}
	if !p.Done || p.Imported != 1200 || p.Seen != 1200 || p.Rejected != 0 {
		t.Fatalf("progress = %+v, want done with 1200 imported and seen", p)
	}
	calls, rows := e.importCalls()
	if calls != 3 || rows != 1200 {
		t.Fatalf("importContacts: %d calls with %d rows, want 3 calls (500+500+200) with 1200", calls, rows)
	}
	members := e.activeMembers()
	if len(members) != 1200 {
		t.Fatalf("list holds %d active members, want 1200", len(members))
	}
	if m := members[emailOf(contacts[42])]; m.Fields["Name"] != contacts[42].Name {
		t.Fatalf("member %s has fields %v, want Name %q", emailOf(contacts[42]), m.Fields, contacts[42].Name)
	}
	got, err := e.store.GetContact(ctx, e.tenant.String(), contacts[42].ID)
	if err != nil || got.UpdatedAt != contacts[42].UpdatedAt || len(got.Emails) != 1 {
		t.Fatalf("stored contact = %+v, %v; want the Kommo version with its address", got, err)
	}
	cp, err := e.store.GetCheckpoint(ctx, e.tenant.String())
	if err != nil || cp.Status != importer.CheckpointDone || cp.Imported != 1200 || cp.UpdatedFrom != contacts[1199].UpdatedAt {
		t.Fatalf("checkpoint = %+v, %v; want Done, 1200, cursor at the last contact", cp, err)
	}
	if reports < 5 {
		t.Fatalf("progress reported %d times, want at least once per page (5 pages)", reports)
	}
	// Asked again, a finished run answers from its checkpoint.
	e.uni.ResetStats()
	again, err := e.importer().Run(ctx, e.job("initial", 0), nil)
	if err != nil || !again.Done || again.Imported != 1200 {
		t.Fatalf("rerun = %+v, %v", again, err)
	}
	if calls, _ := e.importCalls(); calls != 0 {
		t.Fatalf("a finished run made %d more calls", calls)
	}
}

func TestImportResumesFromItsCheckpointWithoutResending(t *testing.T) {
	e := newEnv(t)
	e.addContacts(2500, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	_, err := e.importer().Run(ctx, e.job("initial", 0), func(p importer.Progress) {
		if p.Pages >= 4 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run returned %v, want context.Canceled", err)
	}
	cp, err := e.store.GetCheckpoint(context.Background(), e.tenant.String())
	if err != nil || cp.Status != importer.CheckpointRunning || cp.LastPage < 4 || cp.UpdatedFrom == 0 {
		t.Fatalf("checkpoint after the interruption = %+v, %v", cp, err)
	}
	_, firstRows := e.importCalls()
	e.kommo.ResetStats()

	p, err := e.importer().Run(context.Background(), e.job("initial", 0), nil)
	if err != nil || !p.Done || p.Imported != 2500 {
		t.Fatalf("resumed run = %+v, %v; want 2500 imported", p, err)
	}
	listings := e.contactListings()
	if from := listings[0].Get("filter[updated_at][from]"); from != strconv.FormatInt(cp.UpdatedFrom, 10) {
		t.Fatalf("resumed listing starts from %q, want the checkpoint's %d", from, cp.UpdatedFrom)
	}
	if len(listings) > 8 {
		t.Fatalf("resumed run fetched %d pages; the 6 left and the overlap need at most 8", len(listings))
	}
	_, rows := e.importCalls()
	if rows > 2500+500 || rows-firstRows > 2500-int(cp.Imported) {
		t.Fatalf("rows sent: %d before the interruption, %d in all; a resumed run must not re-send committed contacts (checkpoint had %d)", firstRows, rows, cp.Imported)
	}
	if n := len(e.activeMembers()); n != 2500 {
		t.Fatalf("list holds %d active members, want 2500", n)
	}
}

func TestImportOfContactsChangedInOneSecondFollowsPages(t *testing.T) {
	e := newEnv(t)
	e.addContacts(620, 0) // more than two pages in one second
	p, err := e.importer().Run(context.Background(), e.job("initial", 0), nil)
	if err != nil || p.Imported != 620 {
		t.Fatalf("run = %+v, %v; want 620 imported", p, err)
	}
	if calls, rows := e.importCalls(); calls != 2 || rows != 620 {
		t.Fatalf("importContacts: %d calls with %d rows, want 2 with 620 (nobody twice)", calls, rows)
	}
	if n := len(e.activeMembers()); n != 620 {
		t.Fatalf("list holds %d members, want 620", n)
	}
}

// Offset paging would skip a contact every time one listed earlier changes;
// keyset paging by updated_at must not.
func TestContactsUpdatedDuringTheImportAreNotSkipped(t *testing.T) {
	e := newEnv(t)
	contacts := e.addContacts(1000, 1)
	updated := false
	p, err := e.importer().Run(context.Background(), e.job("initial", 0), func(p importer.Progress) {
		if p.Seen < 500 || updated {
			return
		}
		updated = true
		for i := range 5 { // change five contacts already listed, one second apart
			e.clock.Advance(time.Second)
			c := contacts[i*10]
			c.Name = "Renamed " + c.Name
			if _, err := e.kommo.UpdateContact("acme", c); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Imported != 1005 {
		t.Fatalf("imported %d, want the 1000 contacts plus the 5 new versions", p.Imported)
	}
	members := e.activeMembers()
	if len(members) != 1000 {
		t.Fatalf("list holds %d members, want 1000 (none skipped)", len(members))
	}
	if m := members[emailOf(contacts[0])]; m.Fields["Name"] != "Renamed "+contacts[0].Name {
		t.Fatalf("updated contact has Name %q in Unisender, want the new name", m.Fields["Name"])
	}
}

func TestResyncSendsOnlyWhatChanged(t *testing.T) {
	e := newEnv(t)
	contacts := e.addContacts(600, 10)
	ctx := context.Background()
	first, err := e.importer().Run(ctx, e.job("initial", 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{3, 300, 599} {
		c := contacts[i]
		c.Emails = []string{fmt.Sprintf("new%d@example.com", i)}
		if _, err := e.kommo.UpdateContact("acme", c); err != nil {
			t.Fatal(err)
		}
	}
	e.uni.ResetStats()
	job := e.job("resync-1", first.Cursor)
	job.Kind = importer.KindResync
	p, err := e.importer().Run(ctx, job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Imported != 3 {
		t.Fatalf("resync imported %d contacts, want the 3 changed ones (those at the bound are already stored)", p.Imported)
	}
	calls, rows := e.importCalls()
	if calls != 2 || rows != 6 {
		t.Fatalf("resync made %d calls with %d rows; want one upsert call (3 rows) and one exclusion call (3 old addresses)", calls, rows)
	}
	members := e.activeMembers()
	if _, ok := members["new300@example.com"]; !ok {
		t.Fatal("the new address is not in the list")
	}
	if _, ok := members[emailOf(contacts[300])]; ok {
		t.Fatal("the address the contact dropped is still active in the list (deletion policy Exclude)")
	}
	if len(members) != 600 {
		t.Fatalf("list holds %d active members, want 600", len(members))
	}
}

func TestRejectedRowsAreCountedAndDoNotStopTheRun(t *testing.T) {
	e := newEnv(t)
	e.addContacts(10, 1)
	for _, local := range []string{"info", "no-reply"} {
		if _, err := e.kommo.CreateContact("acme", kommo.Contact{Name: local, Emails: []string{local + "@example.com"}}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := e.importer().Run(context.Background(), e.job("initial", 0), nil)
	if err != nil || !p.Done || p.Imported != 12 {
		t.Fatalf("run = %+v, %v; want done with 12 contacts", p, err)
	}
	if p.Rejected != 2 {
		t.Fatalf("rejected = %d, want the 2 role addresses", p.Rejected)
	}
	if n := len(e.activeMembers()); n != 10 {
		t.Fatalf("list holds %d members, want 10", n)
	}
}

func TestImportStopsOnAnInvalidKeyAndKeepsItsCheckpoint(t *testing.T) {
	e := newEnv(t)
	e.addContacts(600, 10)
	e.uni.RemoveAPIKey(apiKey)
	_, err := e.importer().Run(context.Background(), e.job("initial", 0), nil)
	if err == nil {
		t.Fatal("run succeeded with a revoked key")
	}
	cp, cerr := e.store.GetCheckpoint(context.Background(), e.tenant.String())
	if cerr != nil || cp.Status != importer.CheckpointRunning || cp.Imported != 0 {
		t.Fatalf("checkpoint = %+v, %v; want a running one with nothing imported", cp, cerr)
	}
	if live, lerr := e.store.LiveContacts(context.Background(), e.tenant.String()); lerr != nil || len(live) != 0 {
		t.Fatalf("%d contacts recorded although their batch failed (%v)", len(live), lerr)
	}
}
