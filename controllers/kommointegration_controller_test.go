package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

const waitReady = 30 * time.Second

func withCodeRef(s *v1alpha1.KommoIntegrationSpec) {
	s.AuthorizationCodeRef = &v1alpha1.SecretKeySelector{Name: "kommo-code", Key: "code"}
}

// Create → Ready: the code is exchanged once, the pair lands in the owned
// token Secret, the account id in status, kstatus says Current.
func TestKommoIntegrationAuthorizationCodeBecomesReady(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-ready")
	sb := newKommoSandbox(t, kommoemu.Options{})
	m := startManager(t, ns, nil)

	code := sb.code(t)
	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": code})
	if err := c.Create(ctx, integration(ns, "acme", sb, withCodeRef)); err != nil {
		t.Fatal(err)
	}

	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, waitReady)
	st := obj.Status
	if st.AccountID != sb.acct.ID || st.TokenSecretName != "acme-tokens" || st.TokenExpiresAt == nil || st.LastRefreshTime == nil {
		t.Fatalf("status = %+v", st)
	}
	if !status.IsTrue(obj, v1alpha1.ConditionAuthorized) || !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		t.Fatalf("conditions %+v, finalizers %v", st.Conditions, obj.Finalizers)
	}
	if res := kstatusOf(t, obj); res.Status != kstatus.CurrentStatus {
		t.Fatalf("kstatus = %s (%s)", res.Status, res.Message)
	}

	sec, pair := tokenSecret(t, c, ns, "acme")
	if !metav1.IsControlledBy(sec, obj) || sec.Labels[tokens.ManagedLabel] != "true" {
		t.Fatalf("token Secret owner %v labels %v", sec.OwnerReferences, sec.Labels)
	}
	if pair.RefreshToken == "" || !pair.ExpiresAt.Equal(st.TokenExpiresAt.Truncate(time.Second)) {
		t.Fatalf("pair expiry %v vs status %v", pair.ExpiresAt, st.TokenExpiresAt)
	}
	if a, err := sb.accountWith(ctx, pair.AccessToken); err != nil || a.ID != sb.acct.ID {
		t.Fatalf("the stored access token does not work: %v", err)
	}
	if stats := sb.emu.Stats(); stats.CodeExchanges != 1 || stats.Refreshes != 0 {
		t.Fatalf("emulator: %d exchanges, %d refreshes", stats.CodeExchanges, stats.Refreshes)
	}
	waitEvent(t, c, ns, "acme", corev1.EventTypeNormal, "Authorized")
	assertNoSecretLeak(t, c, ns, []*testManager{m}, testClientSecret, code, pair.AccessToken, pair.RefreshToken)
}

// With a short token lifetime the reconciler refreshes before expiry, the
// new pair replaces the old one in the Secret, and no refresh token is
// ever spent twice.
func TestKommoIntegrationRefreshesBeforeExpiry(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-refresh")
	sb := newKommoSandbox(t, kommoemu.Options{AccessTokenTTL: 4 * time.Second})
	m := startManager(t, ns, nil)

	code := sb.code(t)
	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": code})
	obj := integration(ns, "acme", sb, withCodeRef)
	obj.Spec.RefreshBefore = &metav1.Duration{Duration: 2 * time.Second}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	_, first := tokenSecret(t, c, ns, "acme")

	seen := map[string]bool{first.RefreshToken: true}
	eventually(t, 30*time.Second, func() (bool, string) {
		_, p := tokenSecret(t, c, ns, "acme")
		seen[p.RefreshToken] = true
		return sb.emu.Stats().Refreshes >= 3 && len(seen) >= 3, "waiting for three refreshes"
	})
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	_, last := tokenSecret(t, c, ns, "acme")
	if last.RefreshToken == first.RefreshToken || !last.ExpiresAt.After(first.ExpiresAt) {
		t.Fatalf("pair not replaced: first expires %v, last %v", first.ExpiresAt, last.ExpiresAt)
	}
	if obj.Status.LastRefreshTime == nil || obj.Status.TokenExpiresAt == nil {
		t.Fatalf("status = %+v", obj.Status)
	}
	if a, err := sb.accountWith(ctx, last.AccessToken); err != nil || a.ID != sb.acct.ID {
		t.Fatalf("the stored access token does not work: %v", err)
	}
	if s := sb.emu.Stats(); s.ReusedRefreshTokens != 0 {
		t.Fatalf("%d refresh tokens spent twice", s.ReusedRefreshTokens)
	}
	if v := counterValue(t, m, "kommo_unisender_token_refreshes_total", map[string]string{"grant": "refresh_token", "result": "success"}); v < 3 {
		t.Fatalf("refresh metric = %v", v)
	}
	if v := gaugeValue(t, m, "kommo_unisender_token_expiry_seconds", map[string]string{"namespace": ns, "name": "acme"}); v > 4 || v < -4 {
		t.Fatalf("expiry gauge = %v s, want within the 4 s lifetime", v)
	}
	assertNoSecretLeak(t, c, ns, []*testManager{m}, testClientSecret, code, first.AccessToken, first.RefreshToken, last.AccessToken, last.RefreshToken)
}

// Waiting for Secrets is InProgress, and the Secret's creation alone brings
// the reconcile back (the wait requeue is minutes away): the metadata
// watch and the index work.
func TestKommoIntegrationWaitsForSecretsThenBecomesReady(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-wait")
	sb := newKommoSandbox(t, kommoemu.Options{})
	startManager(t, ns, nil)

	if err := c.Create(ctx, integration(ns, "acme", sb, withCodeRef)); err != nil {
		t.Fatal(err)
	}
	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonSecretNotFound, waitReady)
	if c := status.Get(obj, v1alpha1.ConditionReconciling); !strings.Contains(c.Message, `"kommo-client"`) {
		t.Fatalf("message does not name the client secret: %q", c.Message)
	}
	if res := kstatusOf(t, obj); res.Status != kstatus.InProgressStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}

	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	eventually(t, waitReady, func() (bool, string) {
		obj = getIntegration(t, c, ns, "acme")
		cond := status.Get(obj, v1alpha1.ConditionReconciling)
		return cond != nil && strings.Contains(cond.Message, `"kommo-code"`), "waiting for the code Secret to be named"
	})
	if r := status.Get(obj, v1alpha1.ConditionReady); r == nil || r.Status == metav1.ConditionTrue {
		t.Fatalf("Ready while waiting: %+v", r)
	}
	if res := kstatusOf(t, obj); res.Status != kstatus.InProgressStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}

	createSecret(t, c, ns, "kommo-code", map[string]string{"code": sb.code(t)})
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	if res := kstatusOf(t, obj); res.Status != kstatus.CurrentStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}
}

// The /oauth/callback flow: status shows an authorization URL whose state
// the callback can verify (signed with the operator's key, expiring); the
// code the callback writes is spent and cleared from its Secret, and a new
// state is published.
func TestKommoIntegrationOAuthCallbackFlow(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-callback")
	sb := newKommoSandbox(t, kommoemu.Options{})
	m := startManager(t, ns, nil)

	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	if err := c.Create(ctx, integration(ns, "acme", sb, func(s *v1alpha1.KommoIntegrationSpec) {
		s.OAuthCallback = &v1alpha1.OAuthCallbackSource{}
	})); err != nil {
		t.Fatal(err)
	}
	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonWaitingForAuthorization, waitReady)
	if res := kstatusOf(t, obj); res.Status != kstatus.InProgressStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}
	u, err := url.Parse(obj.Status.AuthorizationURL)
	if err != nil || u.Query().Get("client_id") != testClientID {
		t.Fatalf("authorizationURL = %q", obj.Status.AuthorizationURL)
	}
	state, waitingURL := u.Query().Get("state"), obj.Status.AuthorizationURL
	stateKey, err := tokens.LoadStateKey(ctx, c, operatorNamespace(t))
	if err != nil {
		t.Fatal(err)
	}
	st, err := tokens.VerifyCallbackState(stateKey, state, time.Now())
	if err != nil || st.Integration != (client.ObjectKey{Namespace: ns, Name: "acme"}) || time.Until(st.Expires) < 20*time.Minute {
		t.Fatalf("state %q: %+v %v", state, st, err)
	}

	// What the callback route does with a verified state.
	code := sb.code(t)
	createSecret(t, c, ns, tokens.OAuthCodeSecretName("acme"), map[string]string{tokens.OAuthCodeKey: code})
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	if obj.Status.AccountID != sb.acct.ID {
		t.Fatalf("accountID = %d", obj.Status.AccountID)
	}
	eventually(t, waitReady, func() (bool, string) {
		var s corev1.Secret
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: tokens.OAuthCodeSecretName("acme")}, &s)
		return err == nil && len(s.Data[tokens.OAuthCodeKey]) == 0, "the spent code is still in its Secret"
	})
	// The code is cleared before the pass ends; its status patch, with the
	// renewed URL, comes after.
	eventually(t, waitReady, func() (bool, string) {
		got := getIntegration(t, c, ns, "acme").Status.AuthorizationURL
		return got != waitingURL && got != "", "the authorization URL was not renewed after its state was used"
	})
	_, pair := tokenSecret(t, c, ns, "acme")
	assertNoSecretLeak(t, c, ns, []*testManager{m}, testClientSecret, code, pair.AccessToken, pair.RefreshToken)
}

// A private integration's long-lived token is copied into the token
// Secret (readers look only there) and confirmed; it has no refresh token.
func TestKommoIntegrationLongLivedToken(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-longlived")
	sb := newKommoSandbox(t, kommoemu.Options{})
	m := startManager(t, ns, nil)

	token, err := sb.emu.IssueLongLivedToken(sb.sub, 30*24*time.Hour)
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
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	_, pair := tokenSecret(t, c, ns, "acme")
	if pair.AccessToken != token || pair.Refreshable() {
		t.Fatal("the token Secret does not hold the long-lived token alone")
	}
	if d := time.Until(pair.ExpiresAt); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Fatalf("expiry read from the token: %v", pair.ExpiresAt)
	}
	if obj.Status.AccountID != sb.acct.ID || obj.Status.TokenExpiresAt == nil {
		t.Fatalf("status = %+v", obj.Status)
	}
	assertNoSecretLeak(t, c, ns, []*testManager{m}, token)
}

// Kommo revokes the tokens: the integration stalls with a reason that says
// what to do, a Warning event, kstatus Failed; a new code brings it back.
func TestKommoIntegrationRevokedTokenStallsUntilReauthorized(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-revoked")
	sb := newKommoSandbox(t, kommoemu.Options{})
	m := startManager(t, ns, nil)

	code := sb.code(t)
	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": code})
	if err := c.Create(ctx, integration(ns, "acme", sb, withCodeRef)); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	_, revoked := tokenSecret(t, c, ns, "acme")

	if err := sb.emu.RevokeTokens(sb.sub); err != nil {
		t.Fatal(err)
	}
	requestReconcile(t, c, ns, "acme")
	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonTokenRevoked, waitReady)
	ready := status.Get(obj, v1alpha1.ConditionReady)
	if ready.Status != metav1.ConditionFalse || ready.Reason != v1alpha1.ReasonTokenRevoked ||
		!strings.Contains(ready.Message, `put a new authorization code into Secret "kommo-code" key "code"`) {
		t.Fatalf("Ready = %+v", ready)
	}
	if status.IsTrue(obj, v1alpha1.ConditionAuthorized) || status.Get(obj, v1alpha1.ConditionReconciling) != nil {
		t.Fatalf("conditions = %+v", obj.Status.Conditions)
	}
	if res := kstatusOf(t, obj); res.Status != kstatus.FailedStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}
	ev := waitEvent(t, c, ns, "acme", corev1.EventTypeWarning, v1alpha1.ReasonTokenRevoked)
	if !strings.Contains(ev.Note, "authorize again") {
		t.Fatalf("event note %q", ev.Note)
	}

	// The fix the message asks for.
	newCode := sb.code(t)
	putSecret(t, c, ns, "kommo-code", map[string]string{"code": newCode})
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	if status.Get(obj, v1alpha1.ConditionStalled) != nil {
		t.Fatalf("still stalled: %+v", obj.Status.Conditions)
	}
	_, fresh := tokenSecret(t, c, ns, "acme")
	assertNoSecretLeak(t, c, ns, []*testManager{m}, testClientSecret, code, newCode,
		revoked.AccessToken, revoked.RefreshToken, fresh.AccessToken, fresh.RefreshToken)
}

// A wrong client secret stalls with InvalidClient; each reconcile makes at
// most one call (no hot retry).
func TestKommoIntegrationInvalidClientStalls(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-badclient")
	sb := newKommoSandbox(t, kommoemu.Options{})
	m := startManager(t, ns, nil)

	const wrong = "WRONG-CLIENT-SECRET-0a9b8c7d6e"
	code := sb.code(t)
	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": wrong})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": code})
	if err := c.Create(ctx, integration(ns, "acme", sb, withCodeRef)); err != nil {
		t.Fatal(err)
	}
	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidClient, waitReady)
	if res := kstatusOf(t, obj); res.Status != kstatus.FailedStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}
	if r := status.Get(obj, v1alpha1.ConditionReady); r.Status != metav1.ConditionFalse || !strings.Contains(r.Message, "spec.clientSecretRef") {
		t.Fatalf("Ready = %+v", r)
	}
	waitEvent(t, c, ns, "acme", corev1.EventTypeWarning, v1alpha1.ReasonInvalidClient)
	if sb.emu.Stats().CodeExchanges != 0 {
		t.Fatal("a code was exchanged with a wrong client secret")
	}

	// Two forced reconciles, one token call each: the stall does not retry
	// by itself, and the code is not marked spent (Kommo never looked at it).
	tokenCalls := func() int { return sb.emu.Stats().Requests["POST /oauth2/access_token"] }
	handled := func(v string) {
		eventually(t, waitReady, func() (bool, string) {
			return getIntegration(t, c, ns, "acme").Status.LastHandledReconcileAt == v, "waiting for the request to be handled"
		})
	}
	handled(requestReconcile(t, c, ns, "acme"))
	before := tokenCalls()
	handled(requestReconcile(t, c, ns, "acme"))
	if n := tokenCalls() - before; n != 1 {
		t.Fatalf("one forced reconcile made %d token calls", n)
	}

	// Fixing the client secret fixes the integration.
	putSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	_, pair := tokenSecret(t, c, ns, "acme")
	assertNoSecretLeak(t, c, ns, []*testManager{m}, wrong, testClientSecret, code, pair.AccessToken, pair.RefreshToken)
}

// A code Kommo refuses stalls with AuthorizationCodeInvalid and is not sent
// again until a new one is put in the Secret.
func TestKommoIntegrationDeadCodeStalls(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-deadcode")
	sb := newKommoSandbox(t, kommoemu.Options{})
	startManager(t, ns, nil)

	const dead = "def50200-NOT-A-REAL-CODE-1234567890"
	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": dead})
	if err := c.Create(ctx, integration(ns, "acme", sb, withCodeRef)); err != nil {
		t.Fatal(err)
	}
	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonAuthorizationCodeInvalid, waitReady)
	if res := kstatusOf(t, obj); res.Status != kstatus.FailedStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}
	before := sb.emu.Stats().Requests["POST /oauth2/access_token"]
	v := requestReconcile(t, c, ns, "acme")
	eventually(t, waitReady, func() (bool, string) {
		return getIntegration(t, c, ns, "acme").Status.LastHandledReconcileAt == v, "waiting for the request to be handled"
	})
	if n := sb.emu.Stats().Requests["POST /oauth2/access_token"] - before; n != 0 {
		t.Fatalf("the dead code was sent again (%d calls)", n)
	}
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonAuthorizationCodeInvalid, waitReady)

	putSecret(t, c, ns, "kommo-code", map[string]string{"code": sb.code(t)})
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
}

// Suspended: nothing is called and nothing written (as in Flux), a
// Normal event says why; unsuspending reconciles.
func TestKommoIntegrationSuspend(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-suspend")
	sb := newKommoSandbox(t, kommoemu.Options{})
	startManager(t, ns, nil)

	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": sb.code(t)})
	obj := integration(ns, "acme", sb, withCodeRef)
	obj.Spec.Suspend = true
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, c, ns, "acme", corev1.EventTypeNormal, v1alpha1.ReasonSuspended)
	obj = getIntegration(t, c, ns, "acme")
	if len(obj.Status.Conditions) != 0 || obj.Status.ObservedGeneration != 0 {
		t.Fatalf("status written while suspended: %+v", obj.Status)
	}
	if !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		t.Fatal("no finalizer: a suspended integration could be deleted under its bindings")
	}
	if res := kstatusOf(t, obj); res.Status != kstatus.CurrentStatus {
		t.Fatalf("kstatus = %s (%s)", res.Status, res.Message)
	}
	if n := sb.emu.Stats().Requests["POST /oauth2/access_token"]; n != 0 {
		t.Fatalf("%d token calls while suspended", n)
	}
	obj.Spec.Suspend = false
	if err := c.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	if res := kstatusOf(t, obj); res.Status != kstatus.CurrentStatus {
		t.Fatalf("kstatus = %s (%s)", res.Status, res.Message)
	}
}

// Deleting an integration waits for the bindings that still need its
// token, then the finalizer goes and the token Secret with it.
func TestKommoIntegrationDeletionWaitsForBindings(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-delete")
	sb := newKommoSandbox(t, kommoemu.Options{})
	startManager(t, ns, nil)

	createReadyIntegration(t, c, ns, sb)

	binding := &v1alpha1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme-list",
			// Hold the binding: no binding reconciler runs in this test.
			Finalizers: []string{"test.kommo-unisender.io/hold"}},
		Spec: v1alpha1.UnisenderBindingSpec{
			IntegrationRef:  v1alpha1.IntegrationReference{Name: "acme"},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "unisender", Key: "apiKey"},
			List:            v1alpha1.ListSelector{Title: "Kommo contacts"},
		},
	}
	if err := c.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &v1alpha1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"}}); err != nil {
		t.Fatal(err)
	}
	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonWaitingForBindings, waitReady)
	if !strings.Contains(status.Get(obj, v1alpha1.ConditionReconciling).Message, "acme-list") {
		t.Fatalf("message does not name the binding: %+v", obj.Status.Conditions)
	}
	if res := kstatusOf(t, obj); res.Status != kstatus.TerminatingStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}

	// The binding goes; so does the integration.
	if err := c.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(binding), binding); err != nil {
		t.Fatal(err)
	}
	binding.Finalizers = nil
	if err := c.Update(ctx, binding); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitReady, func() (bool, string) {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme"}, &v1alpha1.KommoIntegration{})
		return apierrors.IsNotFound(err), "the integration is still there"
	})
}

// A transient failure is retried with backoff: failedAttempts counts it,
// Reconciling/ProgressingWithRetry and Ready=False say so (Authorized stays
// True: the stored token is still valid), kstatus is InProgress; the next
// success clears it.
func TestKommoIntegrationTransientFailureBacksOff(t *testing.T) {
	c := directClient(t)
	ns := newNamespace(t, c, "ki-transient")
	sb := newKommoSandbox(t, kommoemu.Options{})
	startManager(t, ns, func(r *KommoIntegrationReconciler) {
		r.BackoffInitial, r.BackoffMax = 2*time.Second, 4*time.Second
	})

	createReadyIntegration(t, c, ns, sb)

	// Kommo answers 503 to the next six requests: the account check and its
	// two retries fail at least once even if another request (a periodic
	// recheck) takes some of them.
	sb.emu.Force5xx(6)
	requestReconcile(t, c, ns, "acme")
	obj := waitCondition(t, c, ns, "acme", v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressingWithRetry, waitReady)
	if obj.Status.FailedAttempts < 1 || obj.Status.LastFailureTime == nil {
		t.Fatalf("status = %+v", obj.Status)
	}
	if r := status.Get(obj, v1alpha1.ConditionReady); r.Status != metav1.ConditionFalse || r.Reason != v1alpha1.ReasonProgressingWithRetry {
		t.Fatalf("Ready = %+v", r)
	}
	if !status.IsTrue(obj, v1alpha1.ConditionAuthorized) {
		t.Fatalf("Authorized dropped while the token is valid: %+v", obj.Status.Conditions)
	}
	if res := kstatusOf(t, obj); res.Status != kstatus.InProgressStatus {
		t.Fatalf("kstatus = %s", res.Status)
	}
	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	if obj.Status.FailedAttempts != 0 || status.Get(obj, v1alpha1.ConditionReconciling) != nil {
		t.Fatalf("after recovery: %+v", obj.Status)
	}
}

// Kommo failing 30 % of requests at random while tokens rotate every
// couple of seconds: refreshes fail and are retried in new claims, and no
// refresh token is ever spent twice.
func TestKommoIntegrationFlakyKommoNeverReusesRefreshTokens(t *testing.T) {
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-flaky")
	sb := newKommoSandbox(t, kommoemu.Options{AccessTokenTTL: 4 * time.Second, Seed: 7})
	startManager(t, ns, func(r *KommoIntegrationReconciler) { r.ClaimTTL = time.Second })

	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": sb.code(t)})
	obj := integration(ns, "acme", sb, withCodeRef)
	obj.Spec.RefreshBefore = &metav1.Duration{Duration: 2 * time.Second}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)

	sb.emu.SetErrorRate(0.3)
	start := sb.emu.Stats()
	eventually(t, 60*time.Second, func() (bool, string) {
		s := sb.emu.Stats()
		return s.Refreshes-start.Refreshes >= 4 && s.Statuses[500] > start.Statuses[500],
			fmt.Sprintf("%d refreshes, %d HTTP 500 so far", s.Refreshes-start.Refreshes, s.Statuses[500]-start.Statuses[500])
	})
	sb.emu.SetErrorRate(0)
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	s := sb.emu.Stats()
	t.Logf("under 30%% errors: %d refreshes, %d HTTP 500", s.Refreshes-start.Refreshes, s.Statuses[500]-start.Statuses[500])
	if s.ReusedRefreshTokens != 0 {
		t.Fatalf("%d refresh tokens spent twice", s.ReusedRefreshTokens)
	}
	_, pair := tokenSecret(t, c, ns, "acme")
	if a, err := sb.accountWith(ctx, pair.AccessToken); err != nil || a.ID != sb.acct.ID {
		t.Fatalf("the stored access token does not work: %v", err)
	}
}
