package controllers

import (
	"context"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

// A worker that dropped expired jobs leaves a resync request in MySQL; the
// manager's poller turns it into a reconcile request on the binding (which
// resyncs at once) and removes it. A request for a binding that is gone, or
// for a malformed tenant, is removed without effect.
func TestWorkersResyncRequestsBecomeReconcileRequests(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	ctx := context.Background()
	e.create(e.binding("main", nil))
	for _, tenant := range []string{e.tenant("main").String(), e.ns + "/gone", "no-slash"} {
		if err := e.store.RequestResync(ctx, tenant, 3); err != nil {
			t.Fatal(err)
		}
	}
	r := &UnisenderBindingReconciler{Client: e.c, Store: e.store, Clock: e.clock.Now}
	resyncRequests{r: r}.takeAll(ctx)

	obj := e.get("main")
	if v, ok := v1alpha1.ReconcileRequestedAt(obj); !ok || v == "" {
		t.Fatalf("binding annotations %v: want a reconcile request", obj.Annotations)
	}
	left, err := e.store.ResyncRequests(ctx)
	if err != nil || len(left) != 0 {
		t.Fatalf("resync requests left: %+v, %v; want none", left, err)
	}
}
