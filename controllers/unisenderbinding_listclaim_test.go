package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// A second binding on the list of an older one (same API key, same list)
// is refused with ListInUse naming the older binding: it shows no list,
// registers no webhook and imports nothing. Opting into sharing on one side
// is not enough; once both share, the younger one takes the list too (the
// change of the older binding alone brings it back), and each records the
// list's identity for the worker.
func TestListInUseRefusesTheYoungerBindingUnlessBothShare(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.addContacts(3)
	e.startManager(bindingManagerOptions{})
	ctx := context.Background()
	onList := func(s *v1alpha1.UnisenderBindingSpec) { s.List = v1alpha1.ListSelector{Title: "Kommo shared"} }

	e.create(e.binding("first", onList))
	first := e.waitBinding("first", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, 60*time.Second)
	time.Sleep(1100 * time.Millisecond) // creation timestamps have one-second resolution
	e.create(e.binding("second", onList))
	second := e.waitBinding("second", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonListInUse, 30*time.Second)
	msg := status.Get(second, v1alpha1.ConditionStalled).Message
	if !strings.Contains(msg, e.ns+"/first") || !strings.Contains(msg, "spec.list.shared") {
		t.Errorf("ListInUse message %q does not name the older binding and the way out", msg)
	}
	if status.IsTrue(second, v1alpha1.ConditionReady) || second.Status.ListID != 0 || second.Status.ListKeyID != "" {
		t.Errorf("refused binding: %s, list %d/%q; want not Ready and no list", conditionsOf(second), second.Status.ListID, second.Status.ListKeyID)
	}
	if n := len(e.webhooks()); n != 1 {
		t.Errorf("Kommo holds %d webhooks, want only the first binding's", n)
	}
	if first.Status.ListKeyID == "" || strings.Contains(first.Status.ListKeyID, bindingTestKey) {
		t.Errorf("first binding's listKeyID = %q: want the key's id, never the key", first.Status.ListKeyID)
	}

	share := func(name string) {
		t.Helper()
		obj := e.get(name)
		obj.Spec.List.Shared = true
		if err := e.c.Update(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	share("second")
	e.waitBinding("second", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonListInUse, 30*time.Second)
	share("first")
	second = e.waitBinding("second", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, 60*time.Second)
	first = e.waitBinding("first", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, 30*time.Second)
	if second.Status.ListID != first.Status.ListID || second.Status.ListKeyID != first.Status.ListKeyID || !first.SharesListWith(second) {
		t.Fatalf("sharing bindings on lists %d/%q and %d/%q, want the same", first.Status.ListID, first.Status.ListKeyID,
			second.Status.ListID, second.Status.ListKeyID)
	}
}
