package status

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

var kube *testenv.Kube

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithKube(m, []string{filepath.Join("..", "..", "config", "crd", "bases")}, &kube))
}

func newClient(t *testing.T) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(kube.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createIntegration(t *testing.T, c client.Client, prefix string) *v1alpha1.KommoIntegration {
	t.Helper()
	ctx := context.Background()
	// A generated name: the tests can run again (-count) on one API server.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	obj := &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "acme"},
		Spec: v1alpha1.KommoIntegrationSpec{
			Subdomain:         "acme",
			ClientID:          "client",
			LongLivedTokenRef: &v1alpha1.SecretKeySelector{Name: "tok", Key: "token"},
		},
	}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestSerialPatcherPatchesMetadataAndStatusSeparately(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	obj := createIntegration(t, c, "patch-both")
	p := NewSerialPatcher(obj, c)

	controllerutil.AddFinalizer(obj, v1alpha1.Finalizer)
	obj.Status.AccountID = 42
	MarkTrue(obj, v1alpha1.ConditionAuthorized, v1alpha1.ReasonSucceeded, "ok")
	if err := p.Patch(ctx, obj); err != nil {
		t.Fatal(err)
	}
	// Neither half's answer overwrote the other's in-memory changes.
	if !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) || obj.Status.AccountID != 42 {
		t.Fatalf("in-memory object lost changes: finalizers %v, accountID %d", obj.Finalizers, obj.Status.AccountID)
	}
	got := &v1alpha1.KommoIntegration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	if !controllerutil.ContainsFinalizer(got, v1alpha1.Finalizer) || got.Status.AccountID != 42 || !IsTrue(got, v1alpha1.ConditionAuthorized) {
		t.Fatalf("stored object: finalizers %v, status %+v", got.Finalizers, got.Status)
	}

	// A second patch in the same reconcile builds on the first one's
	// resourceVersion.
	obj.Status.AccountID = 43
	if err := p.Patch(ctx, obj); err != nil {
		t.Fatalf("second patch of the same reconcile: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil || got.Status.AccountID != 43 {
		t.Fatalf("stored accountID %d, %v; want 43", got.Status.AccountID, err)
	}

	// Nothing changed: nothing is sent, so the resourceVersion stays.
	if err := p.Patch(ctx, obj); err != nil {
		t.Fatal(err)
	}
	again := &v1alpha1.KommoIntegration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), again); err != nil {
		t.Fatal(err)
	}
	if again.ResourceVersion != got.ResourceVersion {
		t.Fatalf("a no-op patch wrote: resourceVersion %s → %s", got.ResourceVersion, again.ResourceVersion)
	}
}

func TestSerialPatcherRefusesAStaleBaseAndRemovesFields(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	obj := createIntegration(t, c, "patch-stale")
	obj.Status.AccountID = 7
	obj.Status.AuthorizationURL = "https://www.kommo.com/oauth?client_id=client"
	p := NewSerialPatcher(&v1alpha1.KommoIntegration{ObjectMeta: obj.ObjectMeta, Spec: obj.Spec}, c)
	if err := p.Patch(ctx, obj); err != nil {
		t.Fatal(err)
	}

	// Someone else annotates the object; our copy is now stale.
	other := &v1alpha1.KommoIntegration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), other); err != nil {
		t.Fatal(err)
	}
	other.Annotations = map[string]string{"team": "crm"}
	if err := c.Update(ctx, other); err != nil {
		t.Fatal(err)
	}

	// A patch from the stale copy is refused, and writes nothing.
	obj.Status.AuthorizationURL = "" // omitempty: must be removed on the server
	err := p.Patch(ctx, obj)
	if !apierrors.IsConflict(err) {
		t.Fatalf("patch from a stale copy: %v, want a Conflict", err)
	}
	if res, rerr := ConflictResult(err); rerr != nil || res.RequeueAfter <= 0 {
		t.Fatalf("ConflictResult = %+v, %v; want a prompt requeue and no error", res, rerr)
	}
	got := &v1alpha1.KommoIntegration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.AuthorizationURL == "" {
		t.Fatalf("the refused patch wrote the status: %+v", got.Status)
	}

	// The next reconcile starts from a fresh read: its patch goes through
	// and keeps their annotation.
	p = NewSerialPatcher(got, c)
	got.Status.AuthorizationURL = ""
	if err := p.Patch(ctx, got); err != nil {
		t.Fatal(err)
	}
	final := &v1alpha1.KommoIntegration{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), final); err != nil {
		t.Fatal(err)
	}
	if final.Annotations["team"] != "crm" || final.Status.AuthorizationURL != "" || final.Status.AccountID != 7 {
		t.Fatalf("after a fresh read: annotations %v, status %+v", final.Annotations, final.Status)
	}
}

func TestSerialPatcherIgnoresAnObjectThatIsGone(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	obj := createIntegration(t, c, "patch-gone")
	p := NewSerialPatcher(obj, c)
	controllerutil.AddFinalizer(obj, v1alpha1.Finalizer)
	if err := p.Patch(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, obj); err != nil {
		t.Fatal(err)
	}
	// The last reconcile reads the object being deleted, removes the
	// finalizer and writes status in the same Patch: the object disappears
	// between the two halves.
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	p = NewSerialPatcher(obj, c)
	controllerutil.RemoveFinalizer(obj, v1alpha1.Finalizer)
	MarkTrue(obj, v1alpha1.ConditionReady, v1alpha1.ReasonSucceeded, "bye")
	if err := p.Patch(ctx, obj); err != nil {
		t.Fatalf("patching a deleted object: %v", err)
	}
	err := c.Get(ctx, client.ObjectKeyFromObject(obj), &v1alpha1.KommoIntegration{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("object still there: %v", err)
	}
}

func TestSplitPatchDropsServerFields(t *testing.T) {
	main, st, err := splitPatch([]byte(`{"metadata":{"resourceVersion":"5","generation":2,"finalizers":["f"]},"status":{"accountID":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	md := main["metadata"].(map[string]any)
	if _, ok := md["resourceVersion"]; ok || md["finalizers"] == nil || main["status"] != nil {
		t.Fatalf("main part = %v", main)
	}
	if b, _ := json.Marshal(st); string(b) != `{"status":{"accountID":1}}` {
		t.Fatalf("status part = %s", b)
	}
	main, st, err = splitPatch([]byte(`{"metadata":{"resourceVersion":"6"}}`))
	if err != nil || main != nil || st != nil {
		t.Fatalf("only a resourceVersion: main %v, status %v, err %v", main, st, err)
	}
}
