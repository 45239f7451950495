package v1alpha1_test

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
)

func writeBackWith(wb *syncv1.WriteBack, sel *syncv1.Selector) func(*syncv1.UnisenderBindingSpec) {
	return func(s *syncv1.UnisenderBindingSpec) { s.WriteBack, s.Selector = wb, sel }
}

// TestWriteBackValidation: the API server refuses a selector on the
// write-back's own tags (our write would move contacts in or out of the
// list), unknown outcomes and event formats and an empty tag prefix,
// naming the field; a full write-back is accepted.
func TestWriteBackValidation(t *testing.T) {
	c, ns := newClient(t)
	ours := &syncv1.Selector{Tags: &syncv1.TagSelector{NoneOf: []string{"unisender-unsubscribed"}}}
	cases := []invalidCase{
		{"selector on the default prefix", bindingWith(writeBackWith(&syncv1.WriteBack{}, ours)),
			"spec.selector.tags", "must not name a tag of spec.writeBack"},
		{"selector on a custom prefix", bindingWith(writeBackWith(&syncv1.WriteBack{TagPrefix: "mail:"},
			&syncv1.Selector{Tags: &syncv1.TagSelector{AnyOf: []string{"vip", "mail:blocked"}}})),
			"spec.selector.tags", "must not name a tag of spec.writeBack"},
		{"unknown outcome", bindingWith(writeBackWith(&syncv1.WriteBack{Outcomes: []syncv1.WriteBackOutcome{"opened"}}, nil)),
			"spec.writeBack.outcomes[0]", "Unsupported value"},
		{"unknown event format", bindingWith(writeBackWith(&syncv1.WriteBack{Push: syncv1.WriteBackPush{EventFormat: "xml"}}, nil)),
			"spec.writeBack.push.eventFormat", "Unsupported value"},
		{"empty tag prefix", unstructuredWith(bindingWith(writeBackWith(&syncv1.WriteBack{}, nil)), "", "spec", "writeBack", "tagPrefix"),
			"spec.writeBack.tagPrefix", "at least 1 chars"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj
			obj.SetNamespace(ns)
			obj.SetName("wb-" + strings.ToLower(hex.EncodeToString([]byte{byte(i)})))
			err := c.Create(context.Background(), obj, strict)
			if err == nil {
				t.Fatalf("accepted; want refused naming %s", tc.field)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			assertNamesField(t, err, tc.field, tc.text)
			assertNotStored(t, c, obj)
		})
	}
	ok := bindingWith(writeBackWith(&syncv1.WriteBack{
		Outcomes: []syncv1.WriteBackOutcome{syncv1.OutcomeUnsubscribed, syncv1.OutcomeSpamRejected}, TagPrefix: "mail:",
		Notes: new(false), Push: syncv1.WriteBackPush{EventFormat: "http_get", Events: []string{"unsubscribe"}},
	}, &syncv1.Selector{Tags: &syncv1.TagSelector{AnyOf: []string{"newsletter"}}}))
	ok.SetNamespace(ns)
	ok.SetName("wb-ok")
	if err := c.Create(context.Background(), ok, strict); err != nil {
		t.Fatalf("a full write-back was refused: %v", err)
	}
}
