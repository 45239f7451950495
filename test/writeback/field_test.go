package writeback

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

const statusField = "Email status"

// TestWriteBackSetsTheCustomField: with spec.writeBack.field set, the
// first outcome creates the missing Kommo field (a text field) and sets it
// to the outcome on the marked contact only; a later outcome, in another
// pass, finds the field instead of creating it again; a resubscribe clears
// the field along with the tag.
func TestWriteBackSetsTheCustomField(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	s := start(t, ctx, devenv.Options{SeedContacts: 10}, &v1alpha1.WriteBack{Field: statusField})
	seeded := s.seededContacts(t)
	first, second, other := seeded[0], seeded[1], seeded[2]

	s.setStatus(t, first.Emails[0], unisenderemu.StatusUnsubscribed)
	s.waitField(t, first.ID, "unsubscribed")
	s.setStatus(t, second.Emails[0], unisenderemu.StatusUnsubscribed)
	s.waitField(t, second.ID, "unsubscribed")
	if v, ok := fieldValue(s.contact(t, other.ID)); ok {
		t.Errorf("contact %d, not marked, has %q = %q; want no value", other.ID, statusField, v)
	}
	if n := countRoute(s.kommoLog(t), "POST /api/v4/contacts/custom_fields"); n != 1 {
		t.Errorf("%d field creations in Kommo; want 1 (the second outcome finds the field)", n)
	}

	s.setStatus(t, first.Emails[0], unisenderemu.StatusActive)
	s.waitMarked(t, first.ID, "", 2)
	s.waitField(t, first.ID, "")
	s.waitField(t, second.ID, "unsubscribed")
}

// waitField waits until the contact's write-back field holds value ("":
// no value).
func (s *system) waitField(t *testing.T, id int64, value string) {
	t.Helper()
	devtest.WaitUntil(t, fmt.Sprintf("contact %d with %q = %q", id, statusField, value), within, func() (bool, string) {
		c := s.contact(t, id)
		v, _ := fieldValue(c)
		return v == value, fmt.Sprintf("fields %+v", c.CustomFields)
	})
}

// fieldValue is the contact's value of the write-back field, as the
// emulator's admin view shows it by name.
func fieldValue(c kommoemu.AdminContact) (string, bool) {
	for _, f := range c.CustomFields {
		if f.Name == statusField && len(f.Values) > 0 {
			return f.Values[0].Value, true
		}
	}
	return "", false
}
