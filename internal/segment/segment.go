// Package segment decides which contacts belong in a binding's list: the
// binding's spec.selector (tags, a custom field, the stage of the contact's
// leads) evaluated on a contact as read from Kommo. The sync commits a
// contact that does not match as holding no address of the list, so the
// one commit path (syncer.Commit) moves it out of the list, and back in
// when it matches again.
package segment

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// Segment is a compiled selector. The nil Segment selects every contact.
type Segment struct {
	tags      *v1alpha1.TagSelector
	field     *v1alpha1.FieldSelector
	pipelines []v1alpha1.ResolvedPipeline
	leads     bool
}

// New compiles a binding's selector with the pipelines the operator resolved
// (status.selector.pipelines). A selector on leads whose pipelines are not
// resolved yet is an error: evaluating it would drop every contact.
func New(sel *v1alpha1.Selector, resolved []v1alpha1.ResolvedPipeline) (*Segment, error) {
	if sel == nil || (sel.Tags == nil && sel.Field == nil && sel.Leads == nil) {
		return nil, nil
	}
	s := &Segment{tags: sel.Tags, field: sel.Field, leads: sel.Leads != nil}
	if sel.Leads != nil {
		if len(resolved) != len(sel.Leads.Pipelines) {
			return nil, fmt.Errorf("segment: the selector's %d pipelines are not resolved yet", len(sel.Leads.Pipelines))
		}
		s.pipelines = resolved
	}
	return s, nil
}

// UsesLeads reports whether the segment needs the contacts' leads: they are
// then read with them (Reader), and lead events concern it.
func (s *Segment) UsesLeads() bool { return s != nil && s.leads }

// Matches reports whether the contact belongs in the list. For a segment
// on leads, c.Leads must hold the contact's leads with their stage.
func (s *Segment) Matches(c *kommo.Contact) bool {
	if s == nil {
		return true
	}
	return s.tagsMatch(c.Tags) && s.fieldMatches(c) && s.leadsMatch(c.Leads)
}

func (s *Segment) tagsMatch(tags []string) bool {
	if s.tags == nil {
		return true
	}
	has := func(t string) bool { return slices.Contains(tags, t) }
	if len(s.tags.AnyOf) > 0 && !slices.ContainsFunc(s.tags.AnyOf, has) {
		return false
	}
	for _, t := range s.tags.AllOf {
		if !has(t) {
			return false
		}
	}
	return !slices.ContainsFunc(s.tags.NoneOf, has)
}

func (s *Segment) fieldMatches(c *kommo.Contact) bool {
	if s.field == nil {
		return true
	}
	for _, f := range c.CustomFields {
		if !sameField(s.field, f) {
			continue
		}
		for _, v := range f.Values {
			if s.valueQualifies(v) {
				return true
			}
		}
	}
	return false
}

func sameField(sel *v1alpha1.FieldSelector, f kommo.CustomField) bool {
	return (sel.KommoFieldID != 0 && f.ID == sel.KommoFieldID) ||
		(sel.KommoFieldCode != "" && strings.EqualFold(f.Code, sel.KommoFieldCode))
}

// valueQualifies: one of the wanted values (as text, enum id or enum code),
// or, with none listed, any value that is set (a ticked checkbox).
func (s *Segment) valueQualifies(v kommo.FieldValue) bool {
	text := strings.TrimSpace(v.Value)
	if len(s.field.Values) == 0 {
		return text != "" && text != "0" && !strings.EqualFold(text, "false")
	}
	for _, want := range s.field.Values {
		if strings.EqualFold(want, text) || strings.EqualFold(want, v.EnumCode) ||
			(v.EnumID != 0 && want == fmt.Sprint(v.EnumID)) {
			return true
		}
	}
	return false
}

func (s *Segment) leadsMatch(leads []kommo.Lead) bool {
	if !s.leads {
		return true
	}
	for _, l := range leads {
		for _, p := range s.pipelines {
			if l.PipelineID == p.ID && (len(p.StatusIDs) == 0 || slices.Contains(p.StatusIDs, l.StatusID)) {
				return true
			}
		}
	}
	return false
}
