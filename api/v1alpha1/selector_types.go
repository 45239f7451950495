package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// Kommo's closing statuses, the same ids in every pipeline.
const (
	StatusWon  int64 = 142
	StatusLost int64 = 143
)

// Selector picks which of the account's contacts belong in the binding's
// list. Every part set must match (they are ANDed); an empty selector, or
// none, selects every contact. A contact that stops matching leaves the list
// as spec.deletionPolicy says (excluded by default, so it can come back).
//
// +kubebuilder:validation:XValidation:rule="has(self.tags) || has(self.field) || has(self.leads)",message="a selector needs at least one of tags, field or leads; omit it to sync every contact"
type Selector struct {
	// tags: conditions on the contact's Kommo tag names (case as Kommo keeps them).
	// +optional
	Tags *TagSelector `json:"tags,omitempty"`

	// field: a contact custom field whose value qualifies the contact (the
	// consent checkbox, an enum value).
	// +optional
	Field *FieldSelector `json:"field,omitempty"`

	// leads: contacts with at least one lead (deal) in the given pipelines
	// and, optionally, statuses.
	// +optional
	Leads *LeadSelector `json:"leads,omitempty"`
}

// TagSelector matches a contact's tags. Each list set must hold at least one
// name; the ones set are ANDed.
//
// +kubebuilder:validation:XValidation:rule="has(self.anyOf) || has(self.allOf) || has(self.noneOf)",message="a tags selector needs at least one of anyOf, allOf or noneOf"
type TagSelector struct {
	// anyOf: the contact has at least one of these tags.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	AnyOf []string `json:"anyOf,omitempty"`

	// allOf: the contact has every one of these tags.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	AllOf []string `json:"allOf,omitempty"`

	// noneOf: the contact has none of these tags.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	NoneOf []string `json:"noneOf,omitempty"`
}

// FieldSelector matches a contact custom field, chosen by id or by code.
//
// +kubebuilder:validation:XValidation:rule="has(self.kommoFieldID) != has(self.kommoFieldCode)",message="exactly one of kommoFieldID or kommoFieldCode must be set"
type FieldSelector struct {
	// kommoFieldID: the Kommo custom field's id.
	// +optional
	// +kubebuilder:validation:Minimum=1
	KommoFieldID int64 `json:"kommoFieldID,omitempty"`

	// kommoFieldCode: the Kommo custom field's code.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_]*$`
	KommoFieldCode string `json:"kommoFieldCode,omitempty"`

	// values that qualify, compared case-insensitively with each of the
	// field's values, enum ids and enum codes (e.g. "Yes", "1234", "WORK").
	// Omitted: any value that is set, which for a checkbox means ticked
	// (empty, "false" and "0" are not set).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	Values []string `json:"values,omitempty"`
}

// LeadSelector matches contacts by the stage of their leads: a contact
// matches when at least one of its leads is in one of the pipelines (and,
// when the pipeline lists statuses, in one of them).
type LeadSelector struct {
	// pipelines that qualify.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	Pipelines []PipelineSelector `json:"pipelines"`
}

// PipelineSelector names a Kommo pipeline by id or by name (resolved through
// GET /api/v4/leads/pipelines; the ids are shown in status.selector).
//
// +kubebuilder:validation:XValidation:rule="has(self.id) != has(self.name)",message="exactly one of id or name must be set"
type PipelineSelector struct {
	// id of the pipeline.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ID int64 `json:"id,omitempty"`

	// name of the pipeline, as Kommo shows it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name,omitempty"`

	// statuses of the pipeline that qualify; omitted: any. Won (142) and
	// lost (143) are statuses of every pipeline.
	// +optional
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	Statuses []StatusSelector `json:"statuses,omitempty"`
}

// StatusSelector names a lead status by id (142 won, 143 lost) or by name.
//
// +kubebuilder:validation:XValidation:rule="has(self.id) != has(self.name)",message="exactly one of id or name must be set"
type StatusSelector struct {
	// id of the status.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ID int64 `json:"id,omitempty"`

	// name of the status, as Kommo shows it in the pipeline.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Name string `json:"name,omitempty"`
}

// SelectorStatus is what the operator resolved of spec.selector and how
// many contacts it selects.
type SelectorStatus struct {
	// pipelines: spec.selector.leads with names resolved to ids, in spec order.
	// +optional
	// +listType=atomic
	Pipelines []ResolvedPipeline `json:"pipelines,omitempty"`

	// matching: live contacts of the account that match the selector (all
	// of them when there is none), as of the last sync.
	// +optional
	Matching int64 `json:"matching,omitempty"`

	// inList: distinct addresses of matching contacts, which the binding
	// keeps in its list.
	// +optional
	InList int64 `json:"inList,omitempty"`

	// evaluated: a digest of the spec.selector the synced contacts were
	// last evaluated with; a change starts a resync that evaluates every
	// synced contact again.
	// +optional
	Evaluated string `json:"evaluated,omitempty"`
}

// ResolvedPipeline is one pipeline of spec.selector.leads with its ids.
type ResolvedPipeline struct {
	// id of the pipeline.
	ID int64 `json:"id"`

	// name of the pipeline, when given by name.
	// +optional
	Name string `json:"name,omitempty"`

	// statusIDs that qualify; empty: any status of the pipeline.
	// +optional
	// +listType=atomic
	StatusIDs []int64 `json:"statusIDs,omitempty"`
}

// Digest names the selector's content: "" for none.
func (s *Selector) Digest() string {
	if s == nil {
		return ""
	}
	b, err := json.Marshal(s)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// UsesLeads reports whether the selector looks at contacts' leads.
func (s *Selector) UsesLeads() bool { return s != nil && s.Leads != nil }
