package packaging

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/internal/cli/manager"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/test/packaging/argohealth"
)

const (
	e2eClientID     = "packaging-client"
	e2eClientSecret = "packaging-client-secret"
	e2eRedirectURI  = "https://hooks.example.com/oauth/callback"
)

var (
	kommoIntegrationGVK = schema.GroupVersionKind{Group: argohealth.Group, Version: "v1alpha1", Kind: "KommoIntegration"}
	unisenderBindingGVK = schema.GroupVersionKind{Group: argohealth.Group, Version: "v1alpha1", Kind: "UnisenderBinding"}
)

// The real manager, run as the ServiceAccount config/default gives it (so
// its generated role and the leader-election role are enough to reconcile),
// drives objects into each state; Argo CD's health of each, computed by the
// shipped health.lua, is the one intended. Kommo is the sandbox emulator.
func TestHealthOfReconciledObjects(t *testing.T) {
	t.Parallel()
	env := applyKustomize(t)
	const ns = "health-e2e"
	env.createNamespaces(t, nil, ns)

	emu, srv := sandboxtest.Kommo(t, kommoemu.Options{RateLimit: -1})
	if _, err := emu.AddAccount("acme"); err != nil {
		t.Fatal(err)
	}
	if err := emu.RegisterClient(e2eClientID, e2eClientSecret, e2eRedirectURI); err != nil {
		t.Fatal(err)
	}
	code, err := emu.IssueAuthCode("acme", e2eClientID)
	if err != nil {
		t.Fatal(err)
	}
	baseURL := srv.URL + "/_acct/acme"
	uni, usrv := sandboxtest.Unisender(t, unisenderemu.Options{})
	uni.AddAPIKey("packaging-api-key")

	probes := freePort(t)
	stop := startSubcommand(t, manager.Run, []string{
		"--kubeconfig=" + env.impersonating(t, "kommo-unisender-system", "kommo-unisender-controller-manager"),
		"--leader-elect=true", "--leader-election-namespace=kommo-unisender-system",
		"--leader-election-id=packaging-" + strings.ToLower(testenv.Tube("le")),
		"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:" + probes,
		"--mysql-dsn=" + testenv.MySQLDSN(t), "--namespaces=" + ns, "--zap-log-level=error",
		"--unisender-base-url=" + usrv.URL, "--public-base-url=https://hooks.example.com", "--allowed-kommo-hosts=" + kommoemu.HostsFlagValue,
	}, "http://127.0.0.1:"+probes+"/readyz")
	defer stop()

	env.apply(t, []byte(fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: kommo, namespace: %[1]s}
stringData: {client-secret: %[2]s, code: %[3]s, stale-code: not-a-code-kommo-issued}
---
apiVersion: v1
kind: Secret
metadata: {name: unisender, namespace: %[1]s}
stringData: {api-key: packaging-api-key, wrong-key: not-a-key-unisender-knows}
---
apiVersion: sync.kommo-unisender.io/v1alpha1
kind: KommoIntegration
metadata: {name: healthy, namespace: %[1]s}
spec:
  baseURL: %[4]s
  clientID: %[5]s
  clientSecretRef: {name: kommo, key: client-secret}
  redirectURI: %[6]s
  authorizationCodeRef: {name: kommo, key: code}
---
apiVersion: sync.kommo-unisender.io/v1alpha1
kind: KommoIntegration
metadata: {name: refused-code, namespace: %[1]s}
spec:
  baseURL: %[4]s
  clientID: %[5]s
  clientSecretRef: {name: kommo, key: client-secret}
  redirectURI: %[6]s
  authorizationCodeRef: {name: kommo, key: stale-code}
---
apiVersion: sync.kommo-unisender.io/v1alpha1
kind: KommoIntegration
metadata: {name: waiting-for-secret, namespace: %[1]s}
spec:
  baseURL: %[4]s
  clientID: %[5]s
  clientSecretRef: {name: not-created-yet, key: client-secret}
  redirectURI: %[6]s
  authorizationCodeRef: {name: not-created-yet, key: code}
---
apiVersion: sync.kommo-unisender.io/v1alpha1
kind: UnisenderBinding
metadata: {name: no-integration, namespace: %[1]s}
spec:
  integrationRef: {name: does-not-exist}
  apiKeySecretRef: {name: unisender, key: api-key}
  list: {title: Kommo contacts}
---
apiVersion: sync.kommo-unisender.io/v1alpha1
kind: UnisenderBinding
metadata: {name: synced, namespace: %[1]s}
spec:
  integrationRef: {name: healthy}
  apiKeySecretRef: {name: unisender, key: api-key}
  list: {title: Kommo contacts}
---
apiVersion: sync.kommo-unisender.io/v1alpha1
kind: UnisenderBinding
metadata: {name: refused-key, namespace: %[1]s}
spec:
  integrationRef: {name: healthy}
  apiKeySecretRef: {name: unisender, key: wrong-key}
  list: {title: Kommo contacts}
`, ns, e2eClientSecret, code, baseURL, e2eClientID, e2eRedirectURI)), "health-e2e")

	cases := []struct {
		gvk    schema.GroupVersionKind
		name   string
		want   string
		reason string // in the message
	}{
		{kommoIntegrationGVK, "healthy", argohealth.Healthy, "Succeeded"},
		{kommoIntegrationGVK, "refused-code", argohealth.Degraded, "AuthorizationCodeInvalid"},
		{kommoIntegrationGVK, "waiting-for-secret", argohealth.Progressing, "SecretNotFound"},
		{unisenderBindingGVK, "no-integration", argohealth.Progressing, "IntegrationNotFound"},
		{unisenderBindingGVK, "synced", argohealth.Healthy, "Succeeded"},
		{unisenderBindingGVK, "refused-key", argohealth.Degraded, "InvalidAPIKey"},
	}
	for _, c := range cases {
		t.Run(c.gvk.Kind+"/"+c.name, func(t *testing.T) {
			waitHealth(t, env, c.gvk, types.NamespacedName{Namespace: ns, Name: c.name}, c.want, c.reason)
		})
	}

	for _, c := range []struct {
		gvk  schema.GroupVersionKind
		name string
	}{{kommoIntegrationGVK, "waiting-for-secret"}, {unisenderBindingGVK, "synced"}} {
		t.Run(c.gvk.Kind+"/"+c.name+"/suspended", func(t *testing.T) {
			obj := &unstructured.Unstructured{}
			obj.SetGroupVersionKind(c.gvk)
			obj.SetNamespace(ns)
			obj.SetName(c.name)
			patch := []byte(`{"spec":{"suspend":true}}`)
			if err := env.client.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
				t.Fatal(err)
			}
			waitHealth(t, env, c.gvk, types.NamespacedName{Namespace: ns, Name: c.name}, argohealth.Suspended, "spec.suspend")
		})
	}
}

// waitHealth polls an object until its health is want with reason in the
// message (an object the operator has not reached yet is Progressing too),
// and fails with the last health and status after a minute.
func waitHealth(t *testing.T, env *kubeEnv, gvk schema.GroupVersionKind, key types.NamespacedName, want, reason string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last argohealth.Status
	obj := &unstructured.Unstructured{}
	for time.Now().Before(deadline) {
		obj = &unstructured.Unstructured{}
		obj.SetGroupVersionKind(gvk)
		if err := env.client.Get(context.Background(), key, obj); err != nil {
			t.Fatal(err)
		}
		var err error
		if last, err = argohealth.Assess(gvk.Kind, obj.Object); err != nil {
			t.Fatal(err)
		}
		if last.Status == want && strings.Contains(last.Message, reason) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	status, _, _ := unstructured.NestedMap(obj.Object, "status")
	t.Fatalf("%s %s: health %+v, want %s (%s); status %v", gvk.Kind, key, last, want, reason, status)
}

// startSubcommand runs a subcommand until the test ends, after url answered
// 200; the returned func stops it.
func startSubcommand(t *testing.T, run func(context.Context, []string) error, args []string, url string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Logf("the subcommand stopped with: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the subcommand did not stop within 30s of its context ending")
		}
	}
	if err := waitHealthy(url, done, 30*time.Second); err != nil {
		stop()
		t.Fatal(err)
	}
	return stop
}
