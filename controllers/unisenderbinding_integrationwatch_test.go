package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// A token refresh rewrites the integration's token bookkeeping in its
// status; the binding must not re-read its Unisender list and fields for
// it. A change the binding does read (Ready) still reaches it.
func TestBindingIgnoresTokenRefreshes(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.startManager(bindingManagerOptions{})
	e.create(e.binding("main", nil))
	e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, 60*time.Second)
	before := e.waitListReadsSettle()

	for i := range 3 {
		e.recordTokenRefresh(time.Now().Add(time.Duration(60+i) * time.Second))
	}
	time.Sleep(3 * time.Second) // a reconcile in this process takes milliseconds
	if after := e.listReads(); after != before {
		t.Fatalf("getLists+getFields calls went from %d to %d over three token refreshes: want none", before, after)
	}

	e.setIntegrationReady(false, "refresh failed")
	e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonIntegrationNotReady, 30*time.Second)
}

// listReads counts the Unisender calls that read a list and its fields.
func (e *bindingEnv) listReads() int {
	calls := e.uni.Stats().Calls
	return calls["getLists"] + calls["getFields"]
}

// waitListReadsSettle waits until the binding's own follow-up reconciles
// (after the initial import ends) are over, and returns the count.
func (e *bindingEnv) waitListReadsSettle() int {
	e.t.Helper()
	last := -1
	eventually(e.t, 30*time.Second, func() (bool, string) {
		n := e.listReads()
		settled := n == last
		last = n
		time.Sleep(time.Second)
		return settled, fmt.Sprintf("list reads still moving: %d", n)
	})
	return last
}

// recordTokenRefresh writes what the KommoIntegration reconciler writes
// after a refresh: the new expiry, the refresh time and the Authorized
// message that names the expiry.
func (e *bindingEnv) recordTokenRefresh(expires time.Time) {
	e.t.Helper()
	ki := &v1alpha1.KommoIntegration{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: e.ns, Name: ubIntegrationName}, ki); err != nil {
		e.t.Fatal(err)
	}
	ki.Status.TokenExpiresAt = &metav1.Time{Time: expires}
	ki.Status.LastRefreshTime = &metav1.Time{Time: time.Now()}
	status.MarkTrue(ki, v1alpha1.ConditionAuthorized, v1alpha1.ReasonSucceeded, "token valid until %s", expires.UTC().Format(time.RFC3339))
	if err := e.c.Status().Update(context.Background(), ki); err != nil {
		e.t.Fatal(err)
	}
}
