package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// The integration's token reads another Kommo account than the one on
// record (status.accountID): the binding's runs sync and remove nothing and
// say so (Imported=False and a Warning event AccountMismatch, naming both
// ids and what to do).
func TestBindingRunsRefuseATokenOfAnotherAccount(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.addContacts(5)
	ctx := context.Background()
	acme, err := e.kommo.AddAccount("acme")
	if err != nil {
		t.Fatal(err)
	}
	onRecord := acme.ID + 1000
	ki := &v1alpha1.KommoIntegration{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: ubIntegrationName}, ki); err != nil {
		t.Fatal(err)
	}
	ki.Status.AccountID = onRecord
	if err := e.c.Status().Update(ctx, ki); err != nil {
		t.Fatal(err)
	}
	e.startManager(bindingManagerOptions{})

	e.create(e.binding("main", nil))
	obj := e.waitBinding("main", v1alpha1.ConditionImported, metav1.ConditionFalse, v1alpha1.ReasonAccountMismatch, 60*time.Second)
	msg := status.Get(obj, v1alpha1.ConditionImported).Message
	for _, id := range []int64{acme.ID, onRecord} {
		if !strings.Contains(msg, fmt.Sprint(id)) {
			t.Errorf("Imported message %q does not name account %d", msg, id)
		}
	}
	waitEvent(t, e.c, e.ns, "main", corev1.EventTypeWarning, v1alpha1.ReasonAccountMismatch)
	if calls, _ := e.importCalls(); calls != 0 {
		t.Fatalf("%d importContacts calls with another account's token, want 0", calls)
	}
}
