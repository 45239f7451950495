package syncer_test

import (
	"reflect"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
)

// tagged is a contact with tags, read at readAt.
func tagged(id, readAt int64, email string, tags ...string) syncer.Current {
	c := person(id, readAt, "P"+email, email)
	c.Contact.Tags = tags
	return c
}

func newsletterSegment(t *testing.T) *segment.Segment {
	t.Helper()
	seg, err := segment.New(&v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"newsletter"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

func TestSegmentContactLeavesAndComesBack(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	h.tenant.Segment = newsletterSegment(t)

	h.commit([]syncer.Current{tagged(1, 10, "ann@example.com", "newsletter"), tagged(2, 10, "bob@example.com", "vip")})
	if got := h.members(); !reflect.DeepEqual(got, []string{"ann@example.com"}) {
		t.Fatalf("members after the first commit = %v, want only ann (bob is not tagged newsletter)", got)
	}
	counts, err := h.st.CountSegment(t.Context(), h.tenant.Key)
	if err != nil || counts.Matching != 1 || counts.InList != 1 {
		t.Fatalf("CountSegment = %+v, %v; want 1 matching, 1 in the list", counts, err)
	}

	out := h.commit([]syncer.Current{tagged(1, 20, "ann@example.com")})
	if out.Removed != 1 {
		t.Fatalf("removing the tag removed %d addresses, want 1", out.Removed)
	}
	if m := h.member("ann@example.com"); m.ListStatus != unisenderemu.ListExcluded || m.Status == unisenderemu.StatusUnsubscribed {
		t.Fatalf("ann after leaving the segment: %+v; want excluded from the list, not unsubscribed", m)
	}

	h.commit([]syncer.Current{tagged(1, 30, "ann@example.com", "newsletter")})
	if got := h.members(); !reflect.DeepEqual(got, []string{"ann@example.com"}) {
		t.Fatalf("members after the tag came back = %v, want ann again", got)
	}

	// Ann unsubscribes in Unisender: leaving and matching again never
	// brings her back.
	if err := h.emu.SetListStatus(apiKey, "ann@example.com", h.listID, unisenderemu.ListUnsubscribed); err != nil {
		t.Fatal(err)
	}
	h.commit([]syncer.Current{tagged(1, 40, "ann@example.com")})
	h.commit([]syncer.Current{tagged(1, 50, "ann@example.com", "newsletter")})
	if m := h.member("ann@example.com"); m.ListStatus == unisenderemu.ListActive {
		t.Fatalf("ann unsubscribed and came back into the segment: %+v; want her to stay out", m)
	}
}

func TestSegmentSharedAddressStaysWhileAnotherContactQualifies(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	h.tenant.Segment = newsletterSegment(t)
	const shared = "family@example.com"

	h.commit([]syncer.Current{tagged(1, 10, shared, "newsletter"), tagged(2, 10, shared, "newsletter")})
	out := h.commit([]syncer.Current{tagged(1, 20, shared)})
	if out.Removed != 0 || !reflect.DeepEqual(h.members(), []string{shared}) {
		t.Fatalf("one holder left the segment: removed %d, members %v; want the address kept (contact 2 still qualifies)", out.Removed, h.members())
	}
	out = h.commit([]syncer.Current{tagged(2, 30, shared, "vip")})
	if out.Removed != 1 || len(h.members()) != 0 {
		t.Fatalf("the last holder left the segment: removed %d, members %v; want the address excluded", out.Removed, h.members())
	}
}

func TestSegmentOnLeadsRecordsLinksForLeadEvents(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	seg, err := segment.New(&v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{{ID: 7}}}},
		[]v1alpha1.ResolvedPipeline{{ID: 7, StatusIDs: []int64{v1alpha1.StatusWon}}})
	if err != nil {
		t.Fatal(err)
	}
	h.tenant.Segment = seg
	won := person(1, 10, "Won", "won@example.com")
	won.Contact.LeadIDs = []int64{100}
	won.Contact.Leads = []kommo.Lead{{ID: 100, PipelineID: 7, StatusID: v1alpha1.StatusWon}}
	open := person(2, 10, "Open", "open@example.com")
	open.Contact.LeadIDs = []int64{200}
	open.Contact.Leads = []kommo.Lead{{ID: 200, PipelineID: 7, StatusID: 55}}
	h.commit([]syncer.Current{won, open})
	if got := h.members(); !reflect.DeepEqual(got, []string{"won@example.com"}) {
		t.Fatalf("members = %v, want only the contact with a won lead", got)
	}
	ids, err := h.st.ContactsOfLeads(t.Context(), h.tenant.Key, []int64{200, 100, 999})
	if err != nil || !reflect.DeepEqual(ids, []int64{1, 2}) {
		t.Fatalf("ContactsOfLeads = %v, %v; want [1 2]", ids, err)
	}
}
