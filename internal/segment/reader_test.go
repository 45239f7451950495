package segment_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
)

// TestSegmentReaderReadsContactsWithTheirLeadsStages: through Kommo's API
// (the sandbox), the reader lists contacts with=leads and reads the leads'
// stages; a single read does the same, and a missing contact is still
// Kommo's "no such contact".
func TestSegmentReaderReadsContactsWithTheirLeadsStages(t *testing.T) {
	emu, srv := sandboxtest.Kommo(t, kommoemu.Options{RateLimit: -1})
	if _, err := emu.AddAccount("acme"); err != nil {
		t.Fatal(err)
	}
	token, err := emu.IssueLongLivedToken("acme", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client := kommo.NewClient(srv.URL+"/_acct/acme", kommo.WithTokenSource(kommo.StaticToken(token)), kommo.WithRateLimit(0, 1))
	ann, err := emu.CreateContact("acme", kommo.Contact{Name: "Ann", Emails: []string{"ann@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := emu.CreateContact("acme", kommo.Contact{Name: "Bob", Emails: []string{"bob@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	won, err := emu.CreateLead("acme", kommoemu.Lead{Name: "Won", StatusID: kommoemu.StatusWon, ContactIDs: []int64{ann.ID, bob.ID}})
	if err != nil {
		t.Fatal(err)
	}
	open, err := emu.CreateLead("acme", kommoemu.Lead{Name: "Open", ContactIDs: []int64{ann.ID}})
	if err != nil {
		t.Fatal(err)
	}

	seg, err := segment.New(&v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{{ID: won.PipelineID}}}},
		[]v1alpha1.ResolvedPipeline{{ID: won.PipelineID, StatusIDs: []int64{v1alpha1.StatusWon}}})
	if err != nil {
		t.Fatal(err)
	}
	r := segment.ReaderFor(seg, client)
	var listed []kommo.Contact
	err = r.ListContacts(t.Context(), kommo.ListContactsOptions{IDs: []int64{ann.ID, bob.ID}}, func(page []kommo.Contact) error {
		listed = append(listed, page...)
		return nil
	})
	if err != nil || len(listed) != 2 {
		t.Fatalf("listed %d contacts, %v", len(listed), err)
	}
	wantAnn := []kommo.Lead{
		{ID: won.ID, PipelineID: won.PipelineID, StatusID: kommoemu.StatusWon, ContactIDs: []int64{ann.ID, bob.ID}},
		{ID: open.ID, PipelineID: open.PipelineID, StatusID: open.StatusID, ContactIDs: []int64{ann.ID}},
	}
	if !reflect.DeepEqual(listed[0].Leads, wantAnn) {
		t.Fatalf("ann's leads = %+v, want %+v", listed[0].Leads, wantAnn)
	}
	if !seg.Matches(&listed[1]) || len(listed[1].Leads) != 1 {
		t.Fatalf("bob (%+v) does not match the won segment", listed[1].Leads)
	}

	one, err := r.GetContact(t.Context(), ann.ID)
	if err != nil || !reflect.DeepEqual(one.Leads, wantAnn) {
		t.Fatalf("GetContact = %+v, %v; want ann with her leads", one, err)
	}
	if _, err := r.GetContact(t.Context(), 999_999); !errors.Is(err, kommo.ErrNotFound) {
		t.Fatalf("GetContact of a missing contact: %v, want ErrNotFound", err)
	}
	if plain := segment.ReaderFor(nil, client); plain != segment.Source(client) {
		t.Fatal("a segment without leads should read through the client itself")
	}
}
