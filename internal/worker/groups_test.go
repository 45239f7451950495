package worker_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// A tenant whose Unisender hangs holds up no other tenant of its batch:
// the tenants' groups are applied side by side, so the other tenant's
// contact reaches its list while the first tenant's import still hangs.
func TestSlowTenantHoldsUpNoOtherTenantOfItsBatch(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	slow, quick := h.addTenant(acme), h.addTenant(tenant.Key{Namespace: "shop", Name: "quick"})
	s, q := h.kommoAdd(slow, "slow@example.com"), h.kommoAdd(quick, "quick@example.com")
	unblock := make(chan struct{})
	defer close(unblock)
	hook := func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/importContacts") || r.ParseForm() != nil || r.PostForm.Get("api_key") != slow.APIKey {
			return false
		}
		select { // the slow tenant's Unisender hangs until the test ends
		case <-unblock:
		case <-r.Context().Done():
		}
		http.Error(w, "hung", http.StatusServiceUnavailable)
		return true
	}
	h.intercept.Store(&hook)
	cfg := h.config()
	cfg.Concurrency, cfg.BatchWindow = 1, 2*time.Second
	h.start(cfg)
	// Same priority: the slow tenant's job, reserved first, comes first in
	// the batch.
	if _, err := h.producer.Put(context.Background(), h.tube, contactsJob(t, slow, time.Now(), ref(s.ID, kommo.ActionUpdate)), 1024, 0, jobTTR); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() (bool, string) {
		st := h.tubeStats()
		return st.Reserved == 1, fmt.Sprintf("tube %+v: want the slow tenant's job reserved, its batch window open", st)
	})
	if _, err := h.producer.Put(context.Background(), h.tube, contactsJob(t, quick, time.Now(), ref(q.ID, kommo.ActionUpdate)), 1024, 0, jobTTR); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() (bool, string) {
		got := h.members(quick)
		return slices.Contains(got, "quick@example.com"), fmt.Sprintf("quick tenant's list %v while the slow tenant's import hangs", got)
	})
}
