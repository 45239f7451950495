package v1alpha1_test

import (
	"context"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
)

func selectorWith(sel *v1alpha1.Selector) func(*v1alpha1.UnisenderBindingSpec) {
	return func(s *v1alpha1.UnisenderBindingSpec) { s.Selector = sel }
}

func invalidSelectors() []invalidCase {
	sales := func(st ...v1alpha1.StatusSelector) *v1alpha1.Selector {
		return &v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{{Name: "Sales", Statuses: st}}}}
	}
	withTags := bindingWith(selectorWith(&v1alpha1.Selector{Tags: &v1alpha1.TagSelector{NoneOf: []string{"x"}}}))
	return []invalidCase{
		{"empty selector", bindingWith(selectorWith(&v1alpha1.Selector{})),
			"spec.selector", "a selector needs at least one of tags, field or leads"},
		{"empty tags selector", bindingWith(selectorWith(&v1alpha1.Selector{Tags: &v1alpha1.TagSelector{}})),
			"spec.selector.tags", "at least one of anyOf, allOf or noneOf"},
		{"empty anyOf", unstructuredWith(withTags, []any{}, "spec", "selector", "tags", "anyOf"),
			"spec.selector.tags.anyOf", "should have at least 1 items"},
		{"empty tag name", bindingWith(selectorWith(&v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AllOf: []string{""}}})),
			"spec.selector.tags.allOf[0]", "at least 1 chars"},
		{"duplicate tag", bindingWith(selectorWith(&v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"vip", "vip"}}})),
			"spec.selector.tags.anyOf[1]", "Duplicate value"},
		{"field by id and code", bindingWith(selectorWith(&v1alpha1.Selector{Field: &v1alpha1.FieldSelector{KommoFieldID: 1, KommoFieldCode: "CONSENT"}})),
			"spec.selector.field", "exactly one of kommoFieldID or kommoFieldCode"},
		{"field by neither", bindingWith(selectorWith(&v1alpha1.Selector{Field: &v1alpha1.FieldSelector{Values: []string{"yes"}}})),
			"spec.selector.field", "exactly one of kommoFieldID or kommoFieldCode"},
		{"no pipelines", bindingWith(selectorWith(&v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{}})),
			"spec.selector.leads.pipelines", "Required value"},
		{"pipeline by id and name", bindingWith(selectorWith(&v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{
			Pipelines: []v1alpha1.PipelineSelector{{ID: 7, Name: "Sales"}}}})),
			"spec.selector.leads.pipelines[0]", "exactly one of id or name"},
		{"status by neither", bindingWith(selectorWith(sales(v1alpha1.StatusSelector{}))),
			"spec.selector.leads.pipelines[0].statuses[0]", "exactly one of id or name"},
		{"negative status id", bindingWith(selectorWith(sales(v1alpha1.StatusSelector{ID: -1}))),
			"spec.selector.leads.pipelines[0].statuses[0].id", "greater than or equal to 1"},
	}
}

// TestSegmentSelectorValidation: the API server refuses what the schema
// can tell is wrong in a selector, naming the field; a full selector is
// accepted.
func TestSegmentSelectorValidation(t *testing.T) {
	c, ns := newClient(t)
	assertRefused(t, c, ns, "sel", invalidSelectors())
	ok := bindingWith(selectorWith(&v1alpha1.Selector{
		Tags:  &v1alpha1.TagSelector{AnyOf: []string{"newsletter"}, AllOf: []string{"vip"}, NoneOf: []string{"do-not-mail"}},
		Field: &v1alpha1.FieldSelector{KommoFieldCode: "CONSENT", Values: []string{"Yes"}},
		Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{
			{Name: "Sales", Statuses: []v1alpha1.StatusSelector{{ID: v1alpha1.StatusWon}, {Name: "Negotiation"}}}, {ID: 7}}},
	}))
	ok.SetNamespace(ns)
	ok.SetName("sel-ok")
	if err := c.Create(context.Background(), ok, strict); err != nil {
		t.Fatalf("a full selector was refused: %v", err)
	}
}
