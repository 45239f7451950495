package controllers

import (
	"context"
	"encoding/json"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// newApp declares a KommoApp for the sandbox's test integration; with
// secret, its client secret is put into the operator's namespace first.
func newApp(t *testing.T, c client.Client, name string, secret bool) {
	t.Helper()
	if secret {
		createSecret(t, c, operatorNamespace(t), name, map[string]string{"secret": testClientSecret})
	}
	app := &v1alpha1.KommoApp{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.KommoAppSpec{
		ClientID: testClientID, RedirectURI: testRedirectURI,
		ClientSecretRef: v1alpha1.SecretKeySelector{Name: name, Key: "secret"},
	}}
	if err := c.Create(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), app) })
}

// TestKommoAppTenantsAuthorizeThroughTheSharedApp: an integration with
// spec.appRef exchanges its code with the app's credentials (its Secret in
// the operator's namespace) and becomes Ready; the app counts it and is
// Ready; an app without its Secret says so.
func TestKommoAppTenantsAuthorizeThroughTheSharedApp(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-app")
	sb := newKommoSandbox(t, kommoemu.Options{})
	startManager(t, ns, nil)
	app, missing := "app-"+ns, "app-missing-"+ns
	newApp(t, c, app, true)
	newApp(t, c, missing, false)

	createSecret(t, c, ns, "kommo-code", map[string]string{"code": sb.code(t)})
	obj := integration(ns, "acme", sb, withCodeRef)
	obj.Spec.ClientID, obj.Spec.ClientSecretRef, obj.Spec.RedirectURI = "", nil, ""
	obj.Spec.AppRef = &v1alpha1.AppReference{Name: app}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	if obj.Status.AccountID != sb.acct.ID {
		t.Fatalf("accountID %d", obj.Status.AccountID)
	}
	eventually(t, waitReady, func() (bool, string) {
		var got v1alpha1.KommoApp
		if err := c.Get(ctx, client.ObjectKey{Name: app}, &got); err != nil {
			return false, err.Error()
		}
		return status.IsTrue(&got, v1alpha1.ConditionReady) && got.Status.Integrations == 1, "app status " + toJSON(got.Status)
	})
	eventually(t, waitReady, func() (bool, string) {
		var got v1alpha1.KommoApp
		if err := c.Get(ctx, client.ObjectKey{Name: missing}, &got); err != nil {
			return false, err.Error()
		}
		cond := status.Get(&got, v1alpha1.ConditionReady)
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == v1alpha1.ReasonSecretNotFound, "app status " + toJSON(got.Status)
	})
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
