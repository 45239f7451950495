package v1alpha1_test

import (
	"context"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
)

func writeBackWith(wb *v1alpha1.WriteBack, sel *v1alpha1.Selector) func(*v1alpha1.UnisenderBindingSpec) {
	return func(s *v1alpha1.UnisenderBindingSpec) { s.WriteBack, s.Selector = wb, sel }
}

// TestWriteBackValidation: the API server refuses a selector on the
// write-back's own tags (our write would move contacts in or out of the
// list), unknown outcomes and event formats, an empty tag prefix and a
// field name empty or over 100 characters, naming the field; a full
// write-back is accepted.
func TestWriteBackValidation(t *testing.T) {
	c, ns := newClient(t)
	ours := &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{NoneOf: []string{"unisender-unsubscribed"}}}
	cases := []invalidCase{
		{"selector on the default prefix", bindingWith(writeBackWith(&v1alpha1.WriteBack{}, ours)),
			"spec.selector.tags", "must not name a tag of spec.writeBack"},
		{"selector on a custom prefix", bindingWith(writeBackWith(&v1alpha1.WriteBack{TagPrefix: "mail:"},
			&v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"vip", "mail:blocked"}}})),
			"spec.selector.tags", "must not name a tag of spec.writeBack"},
		{"unknown outcome", bindingWith(writeBackWith(&v1alpha1.WriteBack{Outcomes: []v1alpha1.WriteBackOutcome{"opened"}}, nil)),
			"spec.writeBack.outcomes[0]", "Unsupported value"},
		{"unknown event format", bindingWith(writeBackWith(&v1alpha1.WriteBack{Push: v1alpha1.WriteBackPush{EventFormat: "xml"}}, nil)),
			"spec.writeBack.push.eventFormat", "Unsupported value"},
		{"empty tag prefix", unstructuredWith(bindingWith(writeBackWith(&v1alpha1.WriteBack{}, nil)), "", "spec", "writeBack", "tagPrefix"),
			"spec.writeBack.tagPrefix", "at least 1 chars"},
		{"empty field name", unstructuredWith(bindingWith(writeBackWith(&v1alpha1.WriteBack{}, nil)), "", "spec", "writeBack", "field"),
			"spec.writeBack.field", "at least 1 chars"},
		{"field name over 100 chars", bindingWith(writeBackWith(&v1alpha1.WriteBack{Field: strings.Repeat("f", 101)}, nil)),
			"spec.writeBack.field", "Too long"},
	}
	assertRefused(t, c, ns, "wb", cases)
	ok := bindingWith(writeBackWith(&v1alpha1.WriteBack{
		Outcomes: []v1alpha1.WriteBackOutcome{v1alpha1.OutcomeUnsubscribed, v1alpha1.OutcomeSpamRejected}, TagPrefix: "mail:",
		Notes: new(false), Field: "Email status", Push: v1alpha1.WriteBackPush{EventFormat: "http_get", Events: []string{"unsubscribe"}},
	}, &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{AnyOf: []string{"newsletter"}}}))
	ok.SetNamespace(ns)
	ok.SetName("wb-ok")
	if err := c.Create(context.Background(), ok, strict); err != nil {
		t.Fatalf("a full write-back was refused: %v", err)
	}
}
