package syncer_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// TestSegmentTagsRemovedInKommoLeaveUnisender: a tag removed in Kommo
// leaves the address in Unisender; a tag someone else set there stays.
func TestSegmentTagsRemovedInKommoLeaveUnisender(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	h.tenant.Tags = h.client
	const ann = "ann@example.com"
	h.commit([]syncer.Current{tagged(1, 10, ann, "newsletter", "vip")})
	// A campaign tool tags Ann in Unisender.
	_, err := h.client.ImportContacts(t.Context(), unisender.ImportRequest{
		FieldNames: []string{"email", "tags"}, Rows: [][]string{{ann, "campaign-x"}}})
	if err != nil {
		t.Fatal(err)
	}
	h.commit([]syncer.Current{tagged(1, 20, ann, "newsletter")})
	if got := h.tags(ann); !reflect.DeepEqual(got, []string{"campaign-x", "newsletter"}) {
		t.Fatalf("Unisender tags after vip was removed in Kommo = %v, want [campaign-x newsletter]", got)
	}
	h.commit([]syncer.Current{tagged(1, 30, ann, "newsletter", "spring")})
	if got := h.tags(ann); !reflect.DeepEqual(got, []string{"campaign-x", "newsletter", "spring"}) {
		t.Fatalf("Unisender tags after spring was added = %v", got)
	}
}

// TestSegmentClearedFieldIsClearedInUnisender: a custom field cleared in
// Kommo is cleared in Unisender.
func TestSegmentClearedFieldIsClearedInUnisender(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	if _, err := h.client.CreateField(t.Context(), "City", "string"); err != nil {
		t.Fatal(err)
	}
	spec := v1alpha1.UnisenderBindingSpec{FieldMapping: v1alpha1.FieldMapping{
		CustomFields: []v1alpha1.CustomFieldMapping{{KommoFieldID: 9, UnisenderField: "City"}}}}
	h.tenant.Mapper = mapping.New(spec, h.listID)
	withCity := func(readAt int64, city ...string) syncer.Current {
		c := person(1, readAt, "Ann", "ann@example.com")
		if len(city) > 0 {
			c.Contact.CustomFields = []kommo.CustomField{{ID: 9, Name: "City", Values: []kommo.FieldValue{{Value: city[0]}}}}
		}
		return c
	}
	h.commit([]syncer.Current{withCity(10, "Paris")})
	if got := h.member("ann@example.com").Fields["City"]; got != "Paris" {
		t.Fatalf("City = %q, want Paris", got)
	}
	h.commit([]syncer.Current{withCity(20)})
	if got := h.member("ann@example.com").Fields["City"]; got != "" {
		t.Fatalf("City after it was cleared in Kommo = %q, want it cleared", got)
	}
}

func (h *harness) tags(email string) []string {
	h.t.Helper()
	c, ok := h.emu.Contact(apiKey, email)
	if !ok {
		h.t.Fatalf("%s is not in Unisender", email)
	}
	out := slices.Clone(c.Tags)
	slices.Sort(out)
	return out
}
