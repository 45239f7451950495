package segment_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
)

var pipelines = []kommo.Pipeline{
	{ID: 10, Name: "Sales", Statuses: []kommo.PipelineStatus{{ID: 11, Name: "New"}, {ID: 12, Name: "Negotiation"}, {ID: 142, Name: "Won"}, {ID: 143, Name: "Lost"}}},
	{ID: 20, Name: "Partners", Statuses: []kommo.PipelineStatus{{ID: 21, Name: "Onboarding"}, {ID: 142, Name: "Won"}, {ID: 143, Name: "Lost"}}},
}

func TestSegmentResolveNamesToIDs(t *testing.T) {
	got, err := segment.Resolve(&v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{
		{Name: "sales", Statuses: []v1alpha1.StatusSelector{{Name: "NEGOTIATION"}, {ID: v1alpha1.StatusWon}}},
		{ID: 20},
	}}, pipelines)
	want := []v1alpha1.ResolvedPipeline{{ID: 10, Name: "sales", StatusIDs: []int64{12, 142}}, {ID: 20}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Resolve = %+v, %v; want %+v", got, err, want)
	}
}

func TestSegmentResolveNamesWhatTheAccountHas(t *testing.T) {
	cases := []struct {
		sel  v1alpha1.PipelineSelector
		want []string
	}{
		{v1alpha1.PipelineSelector{Name: "Wholesale"}, []string{`no pipeline named "Wholesale"`, `"Sales" (10)`, `"Partners" (20)`}},
		{v1alpha1.PipelineSelector{ID: 99}, []string{"no pipeline with id 99", `"Sales" (10)`}},
		{v1alpha1.PipelineSelector{Name: "Partners", Statuses: []v1alpha1.StatusSelector{{Name: "Negotiation"}}},
			[]string{`pipeline "Partners" (20) has no status named "Negotiation"`, `"Onboarding" (21)`}},
	}
	for _, tc := range cases {
		_, err := segment.Resolve(&v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{tc.sel}}, pipelines)
		var unresolved *segment.UnresolvedError
		if !errors.As(err, &unresolved) {
			t.Fatalf("%+v: error %v, want an UnresolvedError", tc.sel, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %q does not say %q", tc.sel, err, w)
			}
		}
	}
}

func TestSegmentFieldValues(t *testing.T) {
	field := func(values ...kommo.FieldValue) *kommo.Contact {
		return &kommo.Contact{CustomFields: []kommo.CustomField{{ID: 5, Code: "CONSENT", Values: values}}}
	}
	ticked := mustNew(t, &v1alpha1.Selector{Field: &v1alpha1.FieldSelector{KommoFieldCode: "consent"}})
	for _, tc := range []struct {
		c    *kommo.Contact
		want bool
	}{
		{field(kommo.FieldValue{Value: "true"}), true},
		{field(kommo.FieldValue{Value: "1"}), true},
		{field(kommo.FieldValue{Value: "false"}), false},
		{field(kommo.FieldValue{Value: "0"}), false},
		{field(kommo.FieldValue{Value: " "}), false},
		{field(), false},
		{&kommo.Contact{}, false},
	} {
		if got := ticked.Matches(tc.c); got != tc.want {
			t.Errorf("checkbox %+v: Matches = %v, want %v", tc.c.CustomFields, got, tc.want)
		}
	}
	enum := mustNew(t, &v1alpha1.Selector{Field: &v1alpha1.FieldSelector{KommoFieldID: 5, Values: []string{"gold", "77", "SILVER_CODE"}}})
	for _, tc := range []struct {
		v    kommo.FieldValue
		want bool
	}{
		{kommo.FieldValue{Value: "Gold"}, true},
		{kommo.FieldValue{Value: "Bronze", EnumID: 77}, true},
		{kommo.FieldValue{Value: "Silver", EnumCode: "silver_code"}, true},
		{kommo.FieldValue{Value: "Bronze", EnumID: 78}, false},
	} {
		if got := enum.Matches(field(tc.v)); got != tc.want {
			t.Errorf("enum value %+v: Matches = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestSegmentUnresolvedLeadsSelectorIsNotCompiled(t *testing.T) {
	_, err := segment.New(&v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{{Name: "Sales"}}}}, nil)
	if err == nil {
		t.Fatal("compiled a leads selector without resolved pipelines; it would drop every contact")
	}
	if seg, err := segment.New(nil, nil); seg != nil || err != nil || !seg.Matches(&kommo.Contact{}) {
		t.Fatalf("no selector: %v, %v; want nil, selecting every contact", seg, err)
	}
}

func mustNew(t *testing.T, sel *v1alpha1.Selector) *segment.Segment {
	t.Helper()
	s, err := segment.New(sel, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
