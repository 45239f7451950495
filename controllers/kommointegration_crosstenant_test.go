package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// TestCrossTenantCodeForAnotherAccountStallsAccountChanged: an integration
// on record for account acme, whose tokens stopped working, gets a code
// for another account (its spec now points there): the code is exchanged
// but the pair is not stored; Stalled AccountChanged says what to do, the
// token Secret keeps acme's pair, and the stall holds until a reconcile
// request.
func TestCrossTenantCodeForAnotherAccountStallsAccountChanged(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-acctchange")
	sb := newKommoSandbox(t, kommoemu.Options{})
	other, err := sb.emu.AddAccount("other")
	if err != nil {
		t.Fatal(err)
	}
	m := startManager(t, ns, nil)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(m.logs.String())
		}
	})
	createReadyIntegration(t, c, ns, sb)
	_, before := tokenSecret(t, c, ns, "acme")
	if err := sb.emu.RevokeTokens(sb.sub); err != nil {
		t.Fatal(err)
	}
	requestReconcile(t, c, ns, "acme")
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTokenRevoked, waitReady)

	// The code and the account change in one spec update, so no
	// reconcile sees one without the other.
	otherCode, err := sb.emu.IssueAuthCode("other", testClientID)
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, c, ns, "kommo-code-other", map[string]string{"code": otherCode})
	obj := getIntegration(t, c, ns, "acme")
	obj.Spec.BaseURL = sb.srv.URL + "/_acct/other"
	obj.Spec.AuthorizationCodeRef = &v1alpha1.SecretKeySelector{Name: "kommo-code-other", Key: "code"}
	if err := c.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonAccountChanged, waitReady)
	msg := status.Get(obj, v1alpha1.ConditionStalled).Message
	if !strings.Contains(msg, "create a new KommoIntegration") || !strings.Contains(msg, v1alpha1.ReconcileRequestAnnotation) {
		t.Fatalf("message does not say what to do: %s", msg)
	}
	if obj.Status.AccountID == other.ID {
		t.Fatal("status took the other account")
	}
	waitEvent(t, c, ns, "acme", corev1.EventTypeWarning, v1alpha1.ReasonAccountChanged)
	time.Sleep(2 * time.Second) // reconciles triggered by the refusal itself must not lift it
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonAccountChanged, waitReady)
	if _, after := tokenSecret(t, c, ns, "acme"); after != before {
		t.Fatal("the tokens on record were replaced by the other account's")
	}
	assertNoSecretLeak(t, c, ns, []*testManager{m}, testClientSecret, otherCode, before.AccessToken, before.RefreshToken)
}

// TestCrossTenantNewCodeDoesNotReplaceWorkingTokens: a Ready integration
// gets a new code (as anyone who saw the authorization URL could make
// Kommo send): it is not spent, the tokens stay, a Warning event says so.
func TestCrossTenantNewCodeDoesNotReplaceWorkingTokens(t *testing.T) {
	c := directClient(t)
	ns := newNamespace(t, c, "ki-keeptokens")
	sb := newKommoSandbox(t, kommoemu.Options{})
	startManager(t, ns, nil)
	createReadyIntegration(t, c, ns, sb)
	_, before := tokenSecret(t, c, ns, "acme")
	exchanges := sb.emu.Stats().CodeExchanges

	putSecret(t, c, ns, "kommo-code", map[string]string{"code": sb.code(t)})
	waitEvent(t, c, ns, "acme", corev1.EventTypeWarning, v1alpha1.ReasonAuthorizationCodeIgnored)
	if _, after := tokenSecret(t, c, ns, "acme"); after != before {
		t.Fatal("working tokens were replaced by a new code")
	}
	if got := sb.emu.Stats().CodeExchanges; got != exchanges {
		t.Fatalf("the new code was sent to Kommo (%d exchanges, was %d)", got, exchanges)
	}
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
}

// TestCrossTenantLongLivedTokenForAnotherAccountStalls: the long-lived
// token Secret is replaced by one of another account: the integration
// stalls with AccountChanged and keeps status.accountID, instead of
// syncing the new account into the old account's bindings.
func TestCrossTenantLongLivedTokenForAnotherAccountStalls(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-llt-acct")
	sb := newKommoSandbox(t, kommoemu.Options{})
	if _, err := sb.emu.AddAccount("other"); err != nil {
		t.Fatal(err)
	}
	startManager(t, ns, nil)
	token, err := sb.emu.IssueLongLivedToken(sb.sub, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, c, ns, "kommo-llt", map[string]string{"token": token})
	obj := integration(ns, "acme", sb, func(s *v1alpha1.KommoIntegrationSpec) {
		s.ClientSecretRef, s.RedirectURI = nil, ""
		s.LongLivedTokenRef = &v1alpha1.SecretKeySelector{Name: "kommo-llt", Key: "token"}
	})
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)

	otherToken, err := sb.emu.IssueLongLivedToken("other", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, c, ns, "kommo-llt-other", map[string]string{"token": otherToken})
	obj = getIntegration(t, c, ns, "acme")
	obj.Spec.BaseURL = sb.srv.URL + "/_acct/other"
	obj.Spec.LongLivedTokenRef = &v1alpha1.SecretKeySelector{Name: "kommo-llt-other", Key: "token"}
	if err := c.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonAccountChanged, waitReady)
	if obj.Status.AccountID != sb.acct.ID {
		t.Fatalf("status.accountID = %d, want %d kept", obj.Status.AccountID, sb.acct.ID)
	}
}

// TestCrossTenantSharedClientIDIsReported: integrations in two namespaces
// declare one clientID with their own copies of the secret: both get
// SharedClientID=True naming the other namespace and a Warning event (the
// webhook server refuses their widget writes); Ready is not affected.
func TestCrossTenantSharedClientIDIsReported(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	nsA, nsB := newNamespace(t, c, "ki-shared-a"), newNamespace(t, c, "ki-shared-b")
	sb := newKommoSandbox(t, kommoemu.Options{})
	startManagerIn(t, []string{nsA, nsB}, nil)
	for _, ns := range []string{nsA, nsB} {
		createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
		if err := c.Create(ctx, integration(ns, "acme", sb, func(s *v1alpha1.KommoIntegrationSpec) {
			s.OAuthCallback = &v1alpha1.OAuthCallbackSource{}
		})); err != nil {
			t.Fatal(err)
		}
	}
	requestReconcile(t, c, nsA, "acme") // a was reconciled before b existed
	for ns, other := range map[string]string{nsA: nsB, nsB: nsA} {
		obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionSharedClientID, metav1.ConditionTrue, v1alpha1.ReasonSharedClientID, waitReady)
		if msg := status.Get(obj, v1alpha1.ConditionSharedClientID).Message; !strings.Contains(msg, other) || !strings.Contains(msg, "KommoApp") {
			t.Errorf("%s: message %q does not name %s and KommoApp", ns, msg, other)
		}
		waitEvent(t, c, ns, "acme", corev1.EventTypeWarning, v1alpha1.ReasonSharedClientID)
	}
}
