// Package manager is the `manager` subcommand: the controller-runtime
// manager running the KommoIntegration and UnisenderBinding reconcilers,
// leader-elected, with a cache that holds the operator's own Secrets only.
package manager

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kommo-unisender/kommo-unisender/controllers"
	"github.com/kommo-unisender/kommo-unisender/internal/cli/kubeconfig"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/namespaces"
	"github.com/kommo-unisender/kommo-unisender/internal/secretwatch"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// DefaultMaxConcurrentReconciles: one reconcile at a time per kind made a
// thousand tenants wait on each other's Kommo and Unisender round trips.
const DefaultMaxConcurrentReconciles = 8

// LeaderElectionID is the default Lease name.
const LeaderElectionID = "kommo-unisender.sync.kommo-unisender.io"

// Options are the manager's settings, from flags.
type Options struct {
	MetricsAddr             string
	ProbeAddr               string
	LeaderElect             bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	// PublicBaseURL is where Kommo reaches the webhook server; the
	// UnisenderBinding reconciler registers webhooks under it.
	PublicBaseURL string
	// MySQLDSN reaches the store (import checkpoints); the
	// UnisenderBinding reconciler needs it.
	MySQLDSN       string
	MigrateOnStart bool
	// UnisenderBaseURL overrides the Unisender API (the sandbox in dev).
	UnisenderBaseURL string
	// KommoHosts are the integrations' base URLs Kommo requests may go to
	// (--allowed-kommo-hosts).
	KommoHosts kommo.HostPolicy
	// Namespaces limits what the manager watches; empty means all.
	Namespaces []string
	// WorkerServiceAccount is the workers' identity, granted get on the
	// Secrets workers read in each namespace with bindings (empty: no
	// grant).
	WorkerServiceAccount types.NamespacedName
	// OperatorNamespace holds the operator's own Secrets: the OAuth state
	// key and the KommoApps' client secrets.
	OperatorNamespace string
	// OAuthStateTTL is how long a published OAuth state is accepted.
	OAuthStateTTL time.Duration
	Kubeconfig    string
	Zap           zap.Options

	// MaxConcurrentReconciles is how many integrations, and how many
	// bindings, are reconciled at once (--max-concurrent-reconciles).
	MaxConcurrentReconciles int
}

// ParseFlags reads the flags of the subcommand. MYSQL_DSN is the default of
// --mysql-dsn, so the DSN (which holds a password) need not appear in the
// process list.
func ParseFlags(args []string) (Options, error) {
	o := Options{Zap: zap.Options{}}
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", `address of the metrics endpoint ("0" disables it)`)
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "elect one active manager among the replicas (a Lease)")
	fs.StringVar(&o.LeaderElectionID, "leader-election-id", LeaderElectionID, "name of the leader-election Lease")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the pod's namespace)")
	fs.StringVar(&o.PublicBaseURL, "public-base-url", "", "public https URL of the webhook server, e.g. https://hooks.example.com; Kommo webhooks are registered under it")
	fs.StringVar(&o.MySQLDSN, "mysql-dsn", os.Getenv("MYSQL_DSN"), "MySQL DSN of the store (default: $MYSQL_DSN)")
	fs.StringVar(&o.UnisenderBaseURL, "unisender-base-url", "", "Unisender API base URL (default https://api.unisender.com; the sandbox in dev)")
	fs.Var(&o.KommoHosts, kommo.HostsFlagName, kommo.HostsFlagUsage)
	fs.BoolVar(&o.MigrateOnStart, "migrate", true, "apply the store's migrations at start-up (serialized by a MySQL lock)")
	fs.Var((*namespaces.List)(&o.Namespaces), "namespaces", namespaces.FlagUsage)
	workerSA := fs.String("worker-service-account", "",
		"namespace/name of the workers' ServiceAccount: the manager grants it get on exactly the Secrets workers read, by name, in a Role per namespace with bindings (empty: no grant)")
	fs.StringVar(&o.OperatorNamespace, "operator-namespace", kubeconfig.PodNamespace(), "namespace of the operator's own Secrets: the OAuth state key and the KommoApps' client secrets (default: $POD_NAMESPACE, else the pod's namespace)")
	fs.DurationVar(&o.OAuthStateTTL, "oauth-state-ttl", controllers.DefaultStateTTL, "how long the state in a KommoIntegration's status.authorizationURL is accepted; the URL is renewed before")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", DefaultMaxConcurrentReconciles,
		"how many KommoIntegrations, and how many UnisenderBindings, are reconciled at once (each waits mostly on Kommo and Unisender, whose rate budgets are per tenant)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, or $KUBECONFIG)")
	o.Zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.MaxConcurrentReconciles < 1 {
		return o, fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", o.MaxConcurrentReconciles)
	}
	if *workerSA != "" {
		var err error
		if o.WorkerServiceAccount, err = serviceAccountRef(*workerSA); err != nil {
			return o, fmt.Errorf("--worker-service-account: %w", err)
		}
	}
	if o.PublicBaseURL != "" {
		u, err := url.Parse(o.PublicBaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return o, fmt.Errorf("--public-base-url must be an absolute http(s) URL without query or fragment")
		}
	}
	return o, nil
}

// serviceAccountRef parses namespace/name.
func serviceAccountRef(s string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return types.NamespacedName{}, fmt.Errorf("want namespace/name, got %q", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// Run is the `manager` subcommand. It returns when ctx ends (nil) or the
// manager fails.
func Run(ctx context.Context, args []string) error {
	o, err := ParseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := zap.New(zap.UseFlagOptions(&o.Zap))
	ctrl.SetLogger(log)
	cfg, err := kubeconfig.Load(o.Kubeconfig)
	if err != nil {
		return err
	}
	mgr, closeFn, err := New(ctx, cfg, o, log)
	if err != nil {
		return err
	}
	defer closeFn()
	log = log.WithName("manager")
	log.Info("starting", "leaderElection", o.LeaderElect, "namespaces", o.Namespaces)
	return serve(ctx, mgr, log)
}

// serve runs mgr until ctx ends (a requested stop: an info line, nil) or
// mgr fails (a leader lease really lost included: its error).
func serve(ctx context.Context, mgr ctrl.Manager, log logr.Logger) error {
	if err := mgr.Start(ctx); err != nil {
		return err
	}
	log.Info("stopped as requested")
	return nil
}

// New builds the manager, logging to log, and registers both reconcilers.
// The returned function closes what New opened (the store); call it after
// the manager stopped.
func New(ctx context.Context, cfg *rest.Config, o Options, log logr.Logger) (ctrl.Manager, func(), error) {
	scheme, err := contract.Scheme()
	if err != nil {
		return nil, nil, err
	}
	mgr, err := ctrl.NewManager(cfg, managerOptions(scheme, o, log))
	if err != nil {
		return nil, nil, fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	closeFn := func() {
		if st != nil {
			_ = st.Close()
		}
	}
	if err := setupReconcilers(ctx, mgr, o, st); err != nil {
		closeFn()
		return nil, nil, err
	}
	return mgr, closeFn, nil
}

// managerOptions: leader election with release on cancel (a rolling update
// hands over at once) and quiet on a requested stop, and a cache that holds
// Secrets only when they carry the managed label — user Secrets are read
// with the API reader and watched by metadata (internal/secretwatch).
func managerOptions(scheme *runtime.Scheme, o Options, log logr.Logger) ctrl.Options {
	opts := ctrl.Options{
		Logger:                        quietStop(log),
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              o.LeaderElectionID,
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{tokens.ManagedLabel: tokens.ManagedLabelValue})},
			},
			DefaultNamespaces: namespaces.CacheConfig(o.Namespaces),
			DefaultTransform:  cache.TransformStripManagedFields(),
		},
	}
	return opts
}

func openStore(ctx context.Context, o Options) (*store.Store, error) {
	if o.MySQLDSN == "" {
		return nil, nil
	}
	st, err := store.Open(ctx, o.MySQLDSN)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	if o.MigrateOnStart {
		if err := st.Migrate(ctx); err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("migrating the store: %w", err)
		}
	}
	return st, nil
}

// setupReconcilers registers both reconcilers, which share the metadata
// cache of Secrets, and, given the workers' ServiceAccount, the one
// granting it their Secrets by name.
func setupReconcilers(ctx context.Context, mgr ctrl.Manager, o Options, st *store.Store) error {
	secrets, err := secretwatch.New(mgr, o.Namespaces...)
	if err != nil {
		return err
	}
	// Both reconcilers take their Kommo requests from the integrations'
	// budgets in the store, which the workers share (internal/budget).
	ki := &controllers.KommoIntegrationReconciler{SecretMetadata: secrets, Store: st, KommoHosts: o.KommoHosts,
		OperatorNamespace: o.OperatorNamespace, StateTTL: o.OAuthStateTTL,
		Controller: controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles}}
	if err := ki.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the KommoIntegration reconciler: %w", err)
	}
	apps := &controllers.KommoAppReconciler{OperatorNamespace: o.OperatorNamespace}
	if err := apps.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the KommoApp reconciler: %w", err)
	}
	if st == nil {
		return errors.New("the UnisenderBinding reconciler needs the MySQL store: set --mysql-dsn or MYSQL_DSN")
	}
	ub := &controllers.UnisenderBindingReconciler{
		Store: st, PublicBaseURL: o.PublicBaseURL, UnisenderBaseURL: o.UnisenderBaseURL, SecretMetadata: secrets,
		KommoHosts: o.KommoHosts, Controller: controller.Options{MaxConcurrentReconciles: o.MaxConcurrentReconciles},
	}
	if err := ub.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the UnisenderBinding reconciler: %w", err)
	}
	if o.WorkerServiceAccount.Name == "" {
		return nil
	}
	ws := &controllers.WorkerSecretsReconciler{Worker: o.WorkerServiceAccount}
	if err := ws.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the worker Secrets reconciler: %w", err)
	}
	return nil
}
