package importer_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
)

// Custom fields of the seeded account: a consent checkbox and a plan select.
const (
	consentFieldID = 7001
	planFieldID    = 7002
	planProEnumID  = 55
)

// seedSegments fills the account with contacts that tell the selectors
// apart: tags, the consent checkbox, the plan, and leads in two pipelines.
func seedSegments(t *testing.T, e *env) {
	t.Helper()
	partners, err := e.kommo.AddPipeline("acme", "Partners", []string{"Onboarding", "Active"})
	if err != nil {
		t.Fatal(err)
	}
	pipelines, err := e.kommo.Pipelines("acme")
	if err != nil {
		t.Fatal(err)
	}
	sales := pipelines[0]
	negotiation := sales.Statuses[2].ID
	consent := func(v string) kommo.CustomField {
		return kommo.CustomField{ID: consentFieldID, Name: "Newsletter consent", Values: []kommo.FieldValue{{Value: v}}}
	}
	plan := func(name string, enum int64) kommo.CustomField {
		return kommo.CustomField{ID: planFieldID, Name: "Plan", Values: []kommo.FieldValue{{Value: name, EnumID: enum}}}
	}
	people := []struct {
		name, email      string
		tags             []string
		fields           []kommo.CustomField
		pipeline, status int64
	}{
		{"Ann", "ann@example.com", []string{"newsletter", "vip"}, []kommo.CustomField{consent("true"), plan("Pro", planProEnumID)}, sales.ID, negotiation},
		{"Bob", "bob@example.com", []string{"newsletter"}, []kommo.CustomField{consent("false")}, sales.ID, kommoemu.StatusWon},
		{"Cat", "cat@example.com", []string{"vip"}, []kommo.CustomField{consent("true")}, sales.ID, kommoemu.StatusLost},
		{"Dan", "dan@example.com", nil, []kommo.CustomField{consent("1"), plan("Pro", planProEnumID)}, partners.ID, partners.Statuses[0].ID},
		{"Eve", "eve@example.com", []string{"newsletter", "do-not-mail"}, []kommo.CustomField{consent("true"), plan("Basic", 56)}, 0, 0},
		{"Fay", "fay@example.com", nil, nil, 0, 0},
	}
	for _, p := range people {
		c, err := e.kommo.CreateContact("acme", kommo.Contact{Name: p.name, Emails: []string{p.email}, Tags: p.tags, CustomFields: p.fields})
		if err != nil {
			t.Fatal(err)
		}
		if p.pipeline != 0 {
			if _, err := e.kommo.CreateLead("acme", kommoemu.Lead{Name: p.name + "'s deal", PipelineID: p.pipeline, StatusID: p.status, ContactIDs: []int64{c.ID}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.clock.Advance(time.Second)
}

func TestSegmentSelectorsImportExactlyTheirContacts(t *testing.T) {
	pipelines := func(ps ...v1alpha1.PipelineSelector) *v1alpha1.LeadSelector {
		return &v1alpha1.LeadSelector{Pipelines: ps}
	}
	cases := []struct {
		name     string
		selector *v1alpha1.Selector
		want     []string // the names of the people in the list
	}{
		{"no selector: everyone", nil, []string{"ann", "bob", "cat", "dan", "eve", "fay"}},
		{"tags anyOf", &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"newsletter"}}}, []string{"ann", "bob", "eve"}},
		{"tags allOf", &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AllOf: []string{"newsletter", "vip"}}}, []string{"ann"}},
		{"tags noneOf", &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{NoneOf: []string{"newsletter"}}}, []string{"cat", "dan", "fay"}},
		{"tags anyOf and noneOf", &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"newsletter"}, NoneOf: []string{"do-not-mail"}}}, []string{"ann", "bob"}},
		{"consent checkbox ticked", &v1alpha1.Selector{Field: &v1alpha1.FieldSelector{KommoFieldID: consentFieldID}}, []string{"ann", "cat", "dan", "eve"}},
		{"enum by value", &v1alpha1.Selector{Field: &v1alpha1.FieldSelector{KommoFieldID: planFieldID, Values: []string{"pro"}}}, []string{"ann", "dan"}},
		{"enum by id", &v1alpha1.Selector{Field: &v1alpha1.FieldSelector{KommoFieldID: planFieldID, Values: []string{"56"}}}, []string{"eve"}},
		{"pipeline by name", &v1alpha1.Selector{Leads: pipelines(v1alpha1.PipelineSelector{Name: "Sales"})}, []string{"ann", "bob", "cat"}},
		{"pipeline and status by name", &v1alpha1.Selector{Leads: pipelines(v1alpha1.PipelineSelector{Name: "sales", Statuses: []v1alpha1.StatusSelector{{Name: "Negotiation"}}})}, []string{"ann"}},
		{"won", &v1alpha1.Selector{Leads: pipelines(v1alpha1.PipelineSelector{Name: "Sales", Statuses: []v1alpha1.StatusSelector{{ID: v1alpha1.StatusWon}}})}, []string{"bob"}},
		{"lost", &v1alpha1.Selector{Leads: pipelines(v1alpha1.PipelineSelector{Name: "Sales", Statuses: []v1alpha1.StatusSelector{{ID: v1alpha1.StatusLost}}})}, []string{"cat"}},
		{"two pipelines", &v1alpha1.Selector{Leads: pipelines(
			v1alpha1.PipelineSelector{Name: "Partners"},
			v1alpha1.PipelineSelector{Name: "Sales", Statuses: []v1alpha1.StatusSelector{{ID: v1alpha1.StatusWon}}})}, []string{"bob", "dan"}},
		{"tags and consent", &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"newsletter"}},
			Field: &v1alpha1.FieldSelector{KommoFieldID: consentFieldID}}, []string{"ann", "eve"}},
		{"pipeline and tag", &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"vip"}},
			Leads: pipelines(v1alpha1.PipelineSelector{Name: "Sales"})}, []string{"ann", "cat"}},
		{"everything", &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"newsletter"}},
			Field: &v1alpha1.FieldSelector{KommoFieldID: consentFieldID},
			Leads: pipelines(v1alpha1.PipelineSelector{Name: "Sales", Statuses: []v1alpha1.StatusSelector{{Name: "Negotiation"}, {ID: v1alpha1.StatusWon}}})}, []string{"ann"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			seedSegments(t, e)
			job := e.job("initial", 0)
			job.Segment = e.compile(tc.selector)
			job.Kommo = segment.ReaderFor(job.Segment, e.source)
			if _, err := e.importer().Run(t.Context(), job, nil); err != nil {
				t.Fatal(err)
			}
			want := make([]string, len(tc.want))
			for i, n := range tc.want {
				want[i] = n + "@example.com"
			}
			if got := slices.Sorted(maps.Keys(e.activeMembers())); !slices.Equal(got, want) {
				t.Fatalf("list after the import = %v, want %v", got, want)
			}
			counts, err := e.store.CountSegment(t.Context(), e.tenant.String())
			if err != nil || counts.Matching != int64(len(want)) || counts.InList != int64(len(want)) {
				t.Fatalf("CountSegment = %+v, %v; want %d matching and in the list", counts, err, len(want))
			}
		})
	}
}

// compile resolves a selector's pipelines with the account's, as the
// binding's reconciler does, and compiles it.
func (e *env) compile(sel *v1alpha1.Selector) *segment.Segment {
	e.t.Helper()
	var resolved []v1alpha1.ResolvedPipeline
	if sel.UsesLeads() {
		pipelines, err := e.source.Pipelines(e.t.Context())
		if err != nil {
			e.t.Fatal(err)
		}
		if resolved, err = segment.Resolve(sel.Leads, pipelines); err != nil {
			e.t.Fatal(err)
		}
	}
	seg, err := segment.New(sel, resolved)
	if err != nil {
		e.t.Fatal(err)
	}
	return seg
}

// TestSegmentResyncEvaluatesEverySyncedContactAgain: a deal moved to won
// whose webhook never arrived (its contact's updated_at does not move), and
// a changed selector, are both caught by the next resync: its sweep
// evaluates every synced contact again through the commit path.
func TestSegmentResyncEvaluatesEverySyncedContactAgain(t *testing.T) {
	e := newEnv(t)
	seedSegments(t, e)
	won := &v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{
		{Name: "Sales", Statuses: []v1alpha1.StatusSelector{{ID: v1alpha1.StatusWon}}}}}}
	job := e.job("initial", 0)
	job.Segment = e.compile(won)
	job.Kommo = segment.ReaderFor(job.Segment, e.source)
	p, err := e.importer().Run(t.Context(), job, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(e.activeMembers())); !slices.Equal(got, []string{"bob@example.com"}) {
		t.Fatalf("after the import: %v, want bob", got)
	}

	// Ann's deal is won; no webhook is registered, so none arrives.
	leads, err := e.kommo.Leads("acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leads {
		if l.Name == "Ann's deal" {
			if _, err := e.kommo.MoveLead("acme", l.ID, 0, kommoemu.StatusWon); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The resync lists from after the seeded contacts' updated_at: none is
	// listed (a stage change does not move a contact's updated_at), only
	// the sweep reads them.
	e.clock.Advance(time.Second)
	resync := e.resyncJob("resync-1", p.Cursor+1)
	resync.Segment, resync.Kommo, resync.Reevaluate = job.Segment, job.Kommo, true
	if _, err := e.importer().Run(t.Context(), resync, nil); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(e.activeMembers())); !slices.Equal(got, []string{"ann@example.com", "bob@example.com"}) {
		t.Fatalf("after a resync: %v, want ann (her deal was won) and bob", got)
	}

	// The selector changes to the vip tag: the next resync moves the list
	// to it (bob leaves, cat comes in), though no contact changed.
	resync = e.resyncJob("resync-2", p.Cursor+1)
	resync.Segment = e.compile(&v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"vip"}}})
	resync.Kommo, resync.Reevaluate = segment.ReaderFor(resync.Segment, e.source), true
	if _, err := e.importer().Run(t.Context(), resync, nil); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(e.activeMembers())); !slices.Equal(got, []string{"ann@example.com", "cat@example.com"}) {
		t.Fatalf("after the selector changed: %v, want the vip contacts ann and cat", got)
	}
}
