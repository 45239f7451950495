package syncer_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
)

// Two tenants share one list (spec.list.shared on both bindings): an
// address one of them drops, by a delete, an e-mail change or the sweep's
// tombstone, stays while the other's contacts still hold it, and leaves
// once neither does. Without the sharers, the same commit removes it.
func TestCommitOnASharedListKeepsWhatASharerHolds(t *testing.T) {
	h := newHarness(t, v1alpha1.DeletionPolicyExclude)
	shop := h.tenant
	shop.Key = "shop/main"
	h.tenant.ListSharers = []string{shop.Key}
	shop.ListSharers = []string{h.tenant.Key}
	commitAs := func(tn syncer.Tenant, contacts ...syncer.Current) syncer.Outcome {
		t.Helper()
		out, err := syncer.Commit(context.Background(), h.st, tn, contacts, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	commitAs(h.tenant, person(1, 100, "Ann", "ann@example.com", "both@example.com"), person(2, 100, "Bob", "moved@example.com"))
	commitAs(shop, person(7, 100, "Ann at the shop", "both@example.com", "moved@example.com"))

	// A delete and an e-mail change in acme: both@ and moved@ stay, the
	// shop's contact 7 holds them; ann@ leaves.
	out := commitAs(h.tenant, gone(1, 200), person(2, 200, "Bob", "bob@example.com"))
	if got, want := h.members(), []string{"bob@example.com", "both@example.com", "moved@example.com"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("members = %v, want %v: a sharer's addresses must stay", got, want)
	}
	if out.Removed != 1 {
		t.Fatalf("outcome = %+v, want only ann@ removed", out)
	}

	// The shop's contact goes: nobody holds both@ and moved@ any more.
	commitAs(shop, gone(7, 300))
	if got, want := h.members(), []string{"bob@example.com"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("members = %v, want %v once no sharer holds them", got, want)
	}

	// The control: a tenant that does not share removes what the other holds.
	commitAs(shop, person(8, 400, "Bob at the shop", "bob@example.com"))
	h.tenant.ListSharers = nil
	commitAs(h.tenant, gone(2, 500))
	if got := h.members(); len(got) != 0 {
		t.Fatalf("members = %v: without sharers the removal goes through", got)
	}
}
