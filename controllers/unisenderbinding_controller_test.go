package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

func TestBindingLifecycleCreateReadyDelete(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	contacts := e.addContacts(30)
	m := e.startManager(bindingManagerOptions{})
	ctx := context.Background()

	e.create(e.binding("main", func(s *v1alpha1.UnisenderBindingSpec) {
		s.FieldMapping.CustomFields = []v1alpha1.CustomFieldMapping{{KommoFieldCode: "POSITION", UnisenderField: "Position"}}
	}))
	obj := e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, 60*time.Second)

	// The list was created by title, and the mapping's field exists.
	var list unisenderemu.List
	for _, l := range e.uni.Lists(bindingTestKey) {
		if l.Title == "Kommo main" {
			list = l
		}
	}
	if list.ID == 0 || obj.Status.ListID != list.ID {
		t.Fatalf("status.listID = %d, Unisender lists %+v: want the list created by title", obj.Status.ListID, e.uni.Lists(bindingTestKey))
	}
	fields := map[string]string{}
	for _, f := range e.uni.Fields(bindingTestKey) {
		fields[f.Name] = f.Type
	}
	if fields["Position"] != "string" || fields["Name"] == "" {
		t.Fatalf("Unisender fields %v: want Name and the mapped Position (string)", fields)
	}

	// The webhook is registered at the destination with the secret, for
	// the three contact events; the status shows it masked.
	secret := e.webhookSecret("main")
	if len(secret) != 64 {
		t.Fatalf("webhook secret has %d hex digits, want 64 (32 bytes)", len(secret))
	}
	want := bindingPublicURL + "/kommo/webhooks/" + e.ns + ".main/" + secret
	hooks := e.webhooks()
	if len(hooks) != 1 || hooks[0].Destination != want || hooks[0].Disabled {
		t.Fatalf("Kommo webhooks = %+v, want one enabled hook at the binding's destination", hooks)
	}
	for _, s := range []string{kommo.SettingAddContact, kommo.SettingUpdateContact, kommo.SettingDeleteContact} {
		if !strings.Contains(strings.Join(hooks[0].Settings, ","), s) {
			t.Fatalf("webhook settings %v lack %s", hooks[0].Settings, s)
		}
	}
	if got := obj.Status.WebhookDestination; got != bindingPublicURL+"/kommo/webhooks/"+e.ns+".main/****" {
		t.Fatalf("status.webhookDestination = %q, want the destination with the secret masked", got)
	}
	sec := &corev1.Secret{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: contract.WebhookSecretName("main")}, sec); err != nil {
		t.Fatal(err)
	}
	if sec.Labels[tokens.ManagedLabel] != tokens.ManagedLabelValue || !metav1.IsControlledBy(sec, obj) {
		t.Fatalf("webhook Secret labels %v, owners %v: want the managed label and the binding as controller", sec.Labels, sec.OwnerReferences)
	}

	// The initial import copied the contacts.
	imp := obj.Status.Import
	if imp == nil || imp.Phase != v1alpha1.ImportCompleted || imp.Imported != 30 || imp.Total != 30 || imp.StartedAt == nil || imp.FinishedAt == nil {
		t.Fatalf("status.import = %+v, want Completed with 30 of 30", imp)
	}
	members := e.listMembers(list.ID)
	if countActive(members) != 30 || members["person00007@example.com"].Fields["Name"] != contacts[7].Name {
		t.Fatalf("list holds %d active members (%+v), want the 30 contacts", countActive(members), members["person00007@example.com"])
	}
	if obj.Status.LastSyncedUpdatedAt != contacts[29].UpdatedAt || obj.Status.LastResyncTime == nil {
		t.Fatalf("lastSyncedUpdatedAt = %d, lastResyncTime %v; want the newest contact's %d and a time", obj.Status.LastSyncedUpdatedAt, obj.Status.LastResyncTime, contacts[29].UpdatedAt)
	}
	for _, c := range []string{v1alpha1.ConditionKeyValid, v1alpha1.ConditionWebhookRegistered, v1alpha1.ConditionImported} {
		if !status.IsTrue(obj, c) {
			t.Fatalf("%s is not True: %s", c, conditionsOf(obj))
		}
	}
	if res := bindingKstatus(t, obj); res.Status != kstatus.CurrentStatus {
		t.Fatalf("kstatus = %s (%s), want Current", res.Status, res.Message)
	}
	for _, reason := range []string{"ListCreated", "FieldCreated", "WebhookRegistered", "ImportStarted", "ImportCompleted"} {
		waitEvent(t, e.c, e.ns, "main", corev1.EventTypeNormal, reason)
	}
	e.assertNoBindingSecretLeak([]*bindingManager{m}, secret, bindingTestKey)
	if v := importMetric(t, "kommo_unisender_import_imported_contacts", e.ns, "main"); v != 30 {
		t.Fatalf("import progress gauge = %v, want 30", v)
	}
	if v := importMetric(t, "kommo_unisender_import_calls_total", e.ns, "main"); v < 1 {
		t.Fatalf("import calls counter = %v, want at least 1", v)
	}

	// The annotation forces a reconcile, recorded in the status, and a
	// resync: a contact deleted in Kommo without a webhook leaves the list
	// without waiting for the hour.
	if err := e.kommo.DeleteContact("acme", contacts[9].ID); err != nil {
		t.Fatal(err)
	}
	requested := requestBindingReconcile(t, e.c, e.ns, "main")
	eventually(t, 30*time.Second, func() (bool, string) {
		got := e.get("main").Status
		return got.LastHandledReconcileAt == requested &&
				e.listMembers(list.ID)["person00009@example.com"].ListStatus == unisenderemu.ListExcluded,
			"lastHandledReconcileAt = " + got.LastHandledReconcileAt + "; the resync has not removed the deleted contact"
	})

	// Deletion: the webhook leaves Kommo, the addresses leave the list
	// (Exclude: not unsubscribed), the store forgets the tenant.
	if err := e.c.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), &v1alpha1.UnisenderBinding{})
		return apierrors.IsNotFound(err), "binding still there"
	})
	if hooks := e.webhooks(); len(hooks) != 0 {
		t.Fatalf("Kommo webhooks after deletion = %+v, want none", hooks)
	}
	members = e.listMembers(list.ID)
	if countActive(members) != 0 {
		t.Fatalf("%d addresses still active in the list after deletion with policy Exclude", countActive(members))
	}
	if c, ok := e.uni.Contact(bindingTestKey, "person00007@example.com"); !ok || c.Status == "unsubscribed" {
		t.Fatalf("excluded contact = %+v, want it kept and not unsubscribed", c)
	}
	if live, err := e.store.LiveContacts(ctx, e.tenant("main").String()); err != nil || len(live) != 0 {
		t.Fatalf("store still holds %d contacts of the tenant (%v)", len(live), err)
	}
	if v := importMetric(t, "kommo_unisender_import_imported_contacts", e.ns, "main"); v != -1 {
		t.Fatalf("the deleted binding's import gauge is still exported (%v)", v)
	}
}

func TestBindingDeletionPolicies(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.addContacts(5)
	e.startManager(bindingManagerOptions{})
	ctx := context.Background()

	for _, policy := range []v1alpha1.DeletionPolicy{v1alpha1.DeletionPolicyDelete, v1alpha1.DeletionPolicyKeep} {
		name := strings.ToLower(string(policy))
		e.create(e.binding(name, func(s *v1alpha1.UnisenderBindingSpec) { s.DeletionPolicy = policy }))
		obj := e.waitBinding(name, v1alpha1.ConditionReady, metav1.ConditionTrue, "", 60*time.Second)
		if n := countActive(e.listMembers(obj.Status.ListID)); n != 5 {
			t.Fatalf("%s: %d active members before deletion, want 5", policy, n)
		}
		if err := e.c.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() (bool, string) {
			err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), &v1alpha1.UnisenderBinding{})
			return apierrors.IsNotFound(err), "binding still there"
		})
		_, exists := e.uni.Contact(bindingTestKey, "person00001@example.com")
		switch policy {
		case v1alpha1.DeletionPolicyDelete:
			if exists {
				t.Fatal("Delete: the contact still exists in Unisender")
			}
		case v1alpha1.DeletionPolicyKeep:
			if n := countActive(e.listMembers(obj.Status.ListID)); n != 5 {
				t.Fatalf("Keep: %d active members after deletion, want 5", n)
			}
		}
	}
}

func TestBindingWithInvalidKeyStallsUntilTheSecretIsFixed(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	const wrongKey = "WRONG-KEY-00000000000000"
	createSecret(t, e.c, e.ns, "bad-key", map[string]string{"apiKey": wrongKey})
	m := e.startManager(bindingManagerOptions{})

	e.create(e.binding("main", func(s *v1alpha1.UnisenderBindingSpec) {
		s.APIKeySecretRef = v1alpha1.SecretKeySelector{Name: "bad-key", Key: "apiKey"}
	}))
	obj := e.waitBinding("main", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidAPIKey, 30*time.Second)
	if c := status.Get(obj, v1alpha1.ConditionKeyValid); c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalidAPIKey {
		t.Fatalf("KeyValid = %+v, want False/InvalidAPIKey", c)
	}
	if c := status.Get(obj, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, `"bad-key"`) {
		t.Fatalf("Ready = %+v, want False naming the Secret to fix", c)
	}
	if res := bindingKstatus(t, obj); res.Status != kstatus.FailedStatus {
		t.Fatalf("kstatus = %s, want Failed", res.Status)
	}
	waitEvent(t, e.c, e.ns, "main", corev1.EventTypeWarning, v1alpha1.ReasonInvalidAPIKey)
	if hooks := e.webhooks(); len(hooks) != 0 {
		t.Fatalf("a webhook was registered for a binding with an invalid key: %+v", hooks)
	}
	e.assertNoBindingSecretLeak([]*bindingManager{m}, wrongKey)

	// Fixing the Secret is noticed through the metadata watch.
	putSecret(t, e.c, e.ns, "bad-key", map[string]string{"apiKey": bindingTestKey})
	obj = e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 30*time.Second)
	if status.Get(obj, v1alpha1.ConditionStalled) != nil {
		t.Fatalf("Stalled still present: %s", conditionsOf(obj))
	}
}

func TestBindingWaitsForItsIntegration(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.startManager(bindingManagerOptions{})

	e.create(e.binding("main", nil))
	obj := e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonIntegrationNotFound, 30*time.Second)
	if res := bindingKstatus(t, obj); res.Status != kstatus.InProgressStatus {
		t.Fatalf("kstatus while the integration is missing = %s, want InProgress", res.Status)
	}
	e.readyIntegration(false)
	e.setIntegrationReady(false, "refresh failing")
	e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonIntegrationNotReady, 30*time.Second)
	e.setIntegrationReady(true, "token stored")
	e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 30*time.Second)
}

// A transient failure is retried under the same policy as the
// integration's (internal/outcome): failedAttempts and lastFailureTime
// count it, Reconciling/ProgressingWithRetry and Ready=False say so with a
// Warning event, kstatus is InProgress, and the next success clears it.
func TestBindingTransientFailureBacksOff(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.startManager(bindingManagerOptions{tune: func(r *UnisenderBindingReconciler) {
		r.BackoffInitial, r.BackoffMax = 2*time.Second, 4*time.Second
	}})
	e.create(e.binding("main", nil))
	e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 60*time.Second)

	// Unisender answers 503 to the next eight calls: the key check and its
	// three retries fail at least once.
	e.uni.ForceErrors(8, unisenderemu.ForcedError{HTTPStatus: 503})
	requestBindingReconcile(t, e.c, e.ns, "main")
	obj := e.waitBinding("main", v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressingWithRetry, 30*time.Second)
	if obj.Status.FailedAttempts < 1 || obj.Status.LastFailureTime == nil {
		t.Fatalf("status = %+v", obj.Status)
	}
	if r := status.Get(obj, v1alpha1.ConditionReady); r.Status != metav1.ConditionFalse || r.Reason != v1alpha1.ReasonProgressingWithRetry {
		t.Fatalf("Ready = %+v", r)
	}
	if res := bindingKstatus(t, obj); res.Status != kstatus.InProgressStatus {
		t.Fatalf("kstatus = %s, want InProgress", res.Status)
	}
	waitEvent(t, e.c, e.ns, "main", corev1.EventTypeWarning, v1alpha1.ReasonProgressingWithRetry)
	obj = e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 30*time.Second)
	if obj.Status.FailedAttempts != 0 || status.Get(obj, v1alpha1.ConditionReconciling) != nil {
		t.Fatalf("after recovery: %+v", obj.Status)
	}
}

func TestDisabledWebhookIsReregisteredOnResyncAndCatchesUp(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	contacts := e.addContacts(20)
	m := e.startManager(bindingManagerOptions{})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(m.logs.String())
		}
	})

	e.create(e.binding("main", func(s *v1alpha1.UnisenderBindingSpec) {
		s.ResyncInterval = &metav1.Duration{Duration: time.Hour}
	}))
	obj := e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 60*time.Second)
	dest := e.webhooks()[0].Destination

	// Kommo disables the hook; meanwhile a contact changes and another is
	// deleted, and their events are lost.
	if err := e.kommo.SetWebhookDisabled("acme", dest, true); err != nil {
		t.Fatal(err)
	}
	c := contacts[3]
	c.Emails = []string{"changed-while-disabled@example.com"}
	if _, err := e.kommo.UpdateContact("acme", c); err != nil {
		t.Fatal(err)
	}
	if err := e.kommo.DeleteContact("acme", contacts[5].ID); err != nil {
		t.Fatal(err)
	}

	// An hour later the resync is due; the next reconcile (here the
	// integration's status changing, as a token refresh does) checks the hook.
	e.clock.Advance(61 * time.Minute)
	e.setIntegrationReady(true, "token refreshed")
	eventually(t, 30*time.Second, func() (bool, string) {
		hooks := e.webhooks()
		return len(hooks) == 1 && hooks[0].Destination == dest && !hooks[0].Disabled, "webhook not re-enabled"
	})
	waitEvent(t, e.c, e.ns, "main", corev1.EventTypeWarning, "WebhookReregistered")
	eventually(t, 30*time.Second, func() (bool, string) {
		m := e.listMembers(obj.Status.ListID)
		return m["changed-while-disabled@example.com"].ListStatus == unisenderemu.ListActive &&
				m["person00003@example.com"].ListStatus == unisenderemu.ListExcluded &&
				m["person00005@example.com"].ListStatus == unisenderemu.ListExcluded,
			"the change and the delete made while the hook was disabled have not reached Unisender"
	})
	waitEvent(t, e.c, e.ns, "main", corev1.EventTypeNormal, "ResyncCompleted")
	if n := countActive(e.listMembers(obj.Status.ListID)); n != 19 {
		t.Fatalf("the list holds %d active members after the catch-up, want 19", n)
	}
	obj = e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 30*time.Second)
	if !status.IsTrue(obj, v1alpha1.ConditionWebhookRegistered) {
		t.Fatalf("WebhookRegistered not True: %s", conditionsOf(obj))
	}
}

// The whole operator: the KommoIntegration reconciler obtains the token, the
// binding uses it; deleting both at once works because the integration
// waits for the binding, which removes its webhook with the integration's
// token first.
func TestBindingWithTheKommoIntegrationReconciler(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	ctx := context.Background()
	token, err := e.kommo.IssueLongLivedToken("acme", 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, e.c, e.ns, "kommo-llt", map[string]string{"token": token})
	ki := &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: ubIntegrationName},
		Spec: v1alpha1.KommoIntegrationSpec{
			BaseURL: e.kommoBase(), ClientID: testClientID,
			LongLivedTokenRef: &v1alpha1.SecretKeySelector{Name: "kommo-llt", Key: "token"},
		},
	}
	e.create(ki)
	e.addContacts(10)
	m := e.startManager(bindingManagerOptions{withIntegrationReconciler: true})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(conditionsOf(e.get("main")))
			t.Log(m.logs.String())
		}
	})

	e.create(e.binding("main", nil))
	obj := e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 60*time.Second)
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(ki), ki); err != nil {
		t.Fatal(err)
	}
	if !status.IsTrue(ki, v1alpha1.ConditionReady) || ki.Status.AccountID == 0 {
		t.Fatalf("integration status = %+v, want Ready with the account id", ki.Status)
	}
	if n := countActive(e.listMembers(obj.Status.ListID)); n != 10 {
		t.Fatalf("the list holds %d members, want 10", n)
	}
	if hooks := e.webhooks(); len(hooks) != 1 {
		t.Fatalf("Kommo webhooks = %+v, want the binding's", hooks)
	}
	secret := e.webhookSecret("main")

	if err := e.c.Delete(ctx, ki); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() (bool, string) {
		errB := e.c.Get(ctx, client.ObjectKeyFromObject(obj), &v1alpha1.UnisenderBinding{})
		errK := e.c.Get(ctx, client.ObjectKeyFromObject(ki), &v1alpha1.KommoIntegration{})
		return apierrors.IsNotFound(errB) && apierrors.IsNotFound(errK), fmt.Sprintf("binding: %v, integration: %v", errB, errK)
	})
	if hooks := e.webhooks(); len(hooks) != 0 {
		t.Fatalf("Kommo webhooks after deleting both = %+v, want none", hooks)
	}
	e.assertNoBindingSecretLeak([]*bindingManager{m}, token, secret, bindingTestKey)
}

// A binding whose integration is gone cannot remove its webhook: deletion
// gives up on that after CleanupGiveUp with a Warning, and still applies
// the deletion policy and goes.
func TestBindingDeletionGivesUpOnAMissingIntegration(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	ki := e.readyIntegration(true)
	e.addContacts(3)
	e.startManager(bindingManagerOptions{tune: func(r *UnisenderBindingReconciler) { r.CleanupGiveUp = 2 * time.Second }})
	ctx := context.Background()

	e.create(e.binding("main", nil))
	obj := e.waitBinding("main", v1alpha1.ConditionReady, metav1.ConditionTrue, "", 60*time.Second)
	if err := e.c.Delete(ctx, ki); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		err := e.c.Get(ctx, client.ObjectKeyFromObject(obj), &v1alpha1.UnisenderBinding{})
		return apierrors.IsNotFound(err), "binding still there"
	})
	waitEvent(t, e.c, e.ns, "main", corev1.EventTypeWarning, "WebhookNotRemoved")
	if n := countActive(e.listMembers(obj.Status.ListID)); n != 0 {
		t.Fatalf("%d addresses still active: the deletion policy was not applied", n)
	}
}
