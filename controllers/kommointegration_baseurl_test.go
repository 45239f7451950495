package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// A spec.baseURL outside Kommo's domains (here the emulator, plain http on
// loopback, which a manager without --allowed-kommo-hosts does not allow)
// stalls the integration with BaseURLNotAllowed naming the flag, and not a
// single request reaches that host: neither the client secret nor the code
// is sent, and nothing of an answer lands in the status.
func TestKommoIntegrationBaseURLOutsideKommoStallsWithoutARequest(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-baseurl")
	sb := newKommoSandbox(t, kommoemu.Options{})
	m := startManager(t, ns, func(r *KommoIntegrationReconciler) { r.KommoHosts = kommo.HostPolicy{} })

	code := sb.code(t)
	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": code})
	if err := c.Create(ctx, integration(ns, "acme", sb, withCodeRef)); err != nil {
		t.Fatal(err)
	}

	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonBaseURLNotAllowed, waitReady)
	msg := status.Get(obj, v1alpha1.ConditionStalled).Message
	if !strings.Contains(msg, "--"+kommo.HostsFlagName) || !strings.Contains(msg, "*.kommo.com") {
		t.Errorf("Stalled message %q does not say which hosts are allowed and which flag widens them", msg)
	}
	if status.IsTrue(obj, v1alpha1.ConditionReady) || status.IsTrue(obj, v1alpha1.ConditionAuthorized) || obj.Status.AccountID != 0 {
		t.Errorf("a refused integration reports %s, account %d", conditionsOf(obj), obj.Status.AccountID)
	}
	waitEvent(t, c, ns, "acme", "Warning", v1alpha1.ReasonBaseURLNotAllowed)
	time.Sleep(500 * time.Millisecond) // a request sent after the stall would show now
	if reqs := sb.emu.RequestLog(); len(reqs) != 0 {
		t.Fatalf("the refused host received %d requests, first %s", len(reqs), reqs[0].Route)
	}
	assertNoSecretLeak(t, c, ns, []*testManager{m}, testClientSecret, code)
}

// The binding reconciler applies the same policy to its integration's
// base URL before any call with the token (registration, import, and the
// cleanup on deletion): the binding waits with BaseURLNotAllowed, and the
// host receives nothing.
func TestBindingWaitsWhenItsIntegrationBaseURLIsNotAllowed(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.startManager(bindingManagerOptions{tune: func(r *UnisenderBindingReconciler) { r.KommoHosts = kommo.HostPolicy{} }})
	e.kommo.ResetStats()

	e.create(e.binding("main", nil))
	obj := e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBaseURLNotAllowed, 30*time.Second)
	if msg := status.Get(obj, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "--"+kommo.HostsFlagName) {
		t.Errorf("Ready message %q does not name the flag", msg)
	}
	time.Sleep(500 * time.Millisecond)
	if reqs := e.kommo.RequestLog(); len(reqs) != 0 {
		t.Fatalf("the refused host received %d requests, first %s", len(reqs), reqs[0].Route)
	}
}
