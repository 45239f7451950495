package manager

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/controllers"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

var kube *testenv.Kube

func TestMain(m *testing.M) {
	os.Exit(testenv.RunWithKube(m, []string{filepath.Join("..", "..", "..", "config", "crd", "bases")}, &kube))
}

func TestParseFlagsDefaults(t *testing.T) {
	t.Setenv("MYSQL_DSN", "u:p@tcp(db:3306)/kus")
	o, err := ParseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !o.LeaderElect || o.LeaderElectionID != "kommo-unisender.sync.kommo-unisender.io" || !o.MigrateOnStart {
		t.Fatalf("defaults = %+v", o)
	}
	if o.MySQLDSN != "u:p@tcp(db:3306)/kus" || o.MetricsAddr != ":8080" || o.ProbeAddr != ":8081" || o.Namespaces != nil {
		t.Fatalf("defaults = %+v", o)
	}
	o, err = ParseFlags([]string{"--leader-elect=false", "--namespaces", "a, b,,", "--public-base-url", "https://hooks.example.com/base",
		"--zap-log-level", "debug", "--worker-service-account", "ops/kus-worker"})
	if err != nil {
		t.Fatal(err)
	}
	if o.LeaderElect || strings.Join(o.Namespaces, "|") != "a|b" || o.PublicBaseURL != "https://hooks.example.com/base" ||
		o.WorkerServiceAccount.String() != "ops/kus-worker" {
		t.Fatalf("parsed = %+v", o)
	}
}

func TestParseFlagsRefusesBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"--public-base-url", "hooks.example.com"},
		{"--public-base-url", "ftp://hooks.example.com"},
		{"--public-base-url", "https://hooks.example.com/?x=1"},
		{"--worker-service-account", "kus-worker"},
		{"--worker-service-account", "Ops/kus-worker"},
		{"--namespaces", "a,B"},
		{"--no-such-flag"},
		{"extra-argument"},
	} {
		if _, err := ParseFlags(args); err == nil {
			t.Errorf("ParseFlags(%q) accepted", args)
		}
	}
}

// The subcommand end to end: flags, a kubeconfig of a user that holds only
// the generated RBAC role (config/rbac/role.yaml), leader election on (a
// Lease), the store migrated, the cache scoped to managed Secrets — and an
// integration whose user Secret carries no label becomes Ready.
func TestRunReconcilesAnIntegration(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	ctx := context.Background()
	c, err := client.New(kube.Config, client.Options{Scheme: mustScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	const ns = "manager-run"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	emu, srv := sandboxtest.Kommo(t, kommoemu.Options{RateLimit: -1})
	acct, err := emu.AddAccount("acme")
	if err != nil {
		t.Fatal(err)
	}
	token, err := emu.IssueLongLivedToken("acme", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kommo-llt"},
		StringData: map[string]string{"token": token}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &v1alpha1.KommoIntegration{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"},
		Spec: v1alpha1.KommoIntegrationSpec{
			BaseURL: srv.URL + "/_acct/acme", ClientID: "private",
			LongLivedTokenRef: &v1alpha1.SecretKeySelector{Name: "kommo-llt", Key: "token"},
		},
	}); err != nil {
		t.Fatal(err)
	}

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, userWithGeneratedRole(t, c), 0o600); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, []string{"--kubeconfig", kubeconfig, "--metrics-bind-address", "0",
			"--health-probe-bind-address", "127.0.0.1:0", "--leader-election-namespace", ns,
			"--namespaces", ns, "--mysql-dsn", dsn, "--public-base-url", "https://hooks.example.com",
			"--unisender-base-url", "http://127.0.0.1:1", "--worker-service-account", "ops/kus-worker",
			"--allowed-kommo-hosts", kommoemu.HostsFlagValue})
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		}
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		ki := &v1alpha1.KommoIntegration{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "acme"}, ki); err != nil {
			t.Fatal(err)
		}
		if meta.IsStatusConditionTrue(ki.Status.Conditions, v1alpha1.ConditionReady) {
			if ki.Status.AccountID != acct.ID {
				t.Fatalf("accountID = %d", ki.Status.AccountID)
			}
			break
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("manager stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Ready: %+v", ki.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// With --worker-service-account, a binding gives the workers get on
	// the Secrets they read for it, by name.
	if err := c.Create(ctx, &v1alpha1.UnisenderBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "acme"},
		Spec: v1alpha1.UnisenderBindingSpec{IntegrationRef: v1alpha1.IntegrationReference{Name: "acme"},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "acme-unisender", Key: "k"}, List: v1alpha1.ListSelector{ID: 1}},
	}); err != nil {
		t.Fatal(err)
	}
	waitForWorkerRole(t, c, ns, []string{"acme-tokens", "acme-unisender"}, done)

	lease := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: LeaderElectionID}, lease); err != nil {
		t.Fatalf("leader election Lease: %v", err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Fatal("the Lease has no holder")
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if cur, latest, err := st.SchemaVersion(ctx); err != nil || cur != latest || cur == 0 {
		t.Fatalf("store schema %d of %d: %v", cur, latest, err)
	}

	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after its context ended", err)
	}
}

// waitForWorkerRole waits for the workers' Secret Role of ns to grant get on
// exactly names, bound to ops/kus-worker.
func waitForWorkerRole(t *testing.T, c client.Client, ns string, names []string, done chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var role rbacv1.Role
		var binding rbacv1.RoleBinding
		key := client.ObjectKey{Namespace: ns, Name: controllers.WorkerSecretsRoleName}
		if c.Get(context.Background(), key, &role) == nil && c.Get(context.Background(), key, &binding) == nil &&
			len(role.Rules) == 1 && strings.Join(role.Rules[0].ResourceNames, ",") == strings.Join(names, ",") {
			if s := binding.Subjects; len(s) != 1 || s[0].Namespace != "ops" || s[0].Name != "kus-worker" {
				t.Fatalf("worker Secret RoleBinding subjects %+v, want ops/kus-worker", s)
			}
			return
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("manager stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no worker Secret Role granting %v in %s (have %+v)", names, ns, role.Rules)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s, err := contract.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// userWithGeneratedRole binds config/rbac/role.yaml to a new user and
// returns that user's kubeconfig: what the manager may do in a cluster is
// exactly what the generated role grants.
func userWithGeneratedRole(t *testing.T, c client.Client) []byte {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, role); err != nil {
		t.Fatal(err)
	}
	role.Name = "kus-manager-under-test"
	if err := c.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	const user = "kus-manager"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kus-manager-under-test"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := c.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	u, err := kube.Env.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The API server enforces RBAC: what the role does not grant is refused.
	uc, err := client.New(u.Config(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.List(ctx, &corev1.ConfigMapList{}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing ConfigMaps as the manager user: %v, want Forbidden", err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	return kc
}
