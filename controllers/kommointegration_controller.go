// Package controllers holds the operator's two reconcilers: the
// KommoIntegration reconciler (Kommo tokens) and the UnisenderBinding
// reconciler (list, webhook, import, resync).
package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/budget"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// Defaults of KommoIntegrationReconciler.
const (
	DefaultClaimTTL        = 2 * time.Minute
	DefaultRecheckInterval = 12 * time.Hour
	defaultWaitRecheck     = 5 * time.Minute
	defaultConflictRetry   = time.Second
	kommoCallTimeout       = 2 * time.Minute
)

// KommoIntegrationReconciler obtains, stores and refreshes the Kommo token
// of each KommoIntegration. The token pair lives in the operator-owned
// Secret <name>-tokens; this reconciler is its only writer, and a refresh
// is claimed on that Secret first, so two managers (or a crash mid-refresh)
// never spend one refresh token twice. See internal/tokens.
type KommoIntegrationReconciler struct {
	// Client reads through the manager's cache, which holds the
	// integrations, the bindings and the managed Secrets only.
	client.Client
	// APIReader reads the user's Secrets (client secret, codes,
	// long-lived tokens), which are not cached.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Metrics   *TokenMetrics
	// SecretMetadata is the metadata-only Secret cache (secretwatch.New);
	// nil makes SetupWithManager create one.
	SecretMetadata cache.Cache

	// Store holds the integrations' Kommo request budgets, shared with the
	// UnisenderBinding reconciler and every worker (internal/budget): token
	// exchanges, refreshes and account checks take from an integration's
	// foreground budget. nil (tests without MySQL) means no shared budget:
	// each client only paces itself, and SetupWithManager logs so.
	Store *store.Store

	// KommoHosts are the base URLs Kommo requests may go to (the zero value:
	// Kommo's domains over https); see kommointegration_baseurl.go.
	KommoHosts kommo.HostPolicy
	// HTTPClient calls Kommo; nil means a default client.
	HTTPClient *http.Client
	// KommoOptions are appended to every Kommo client's options.
	KommoOptions []kommo.Option
	// HolderID names this reconciler in refresh claims; it must be unique
	// per process. Empty: hostname plus a random suffix.
	HolderID string
	// ClaimTTL is how long a refresh claim holds (DefaultClaimTTL).
	ClaimTTL time.Duration
	// BackoffInitial and BackoffMax shape the retry delay after transient
	// failures: initial·2^(failedAttempts−1), capped (internal/outcome's
	// defaults when zero).
	BackoffInitial, BackoffMax time.Duration
	// RecheckInterval bounds the time between two confirmations of a
	// token that is not due (DefaultRecheckInterval).
	RecheckInterval time.Duration
	// Clock is the time source; nil means time.Now.
	Clock func() time.Time
	// OperatorNamespace is the namespace of the operator's own Secrets:
	// the OAuth state key and the KommoApps' client secrets. Tenants have
	// no access there.
	OperatorNamespace string
	// StateTTL is how long a published OAuth state is accepted
	// (DefaultStateTTL); the authorization URL is rotated before.
	StateTTL time.Duration

	// Controller options (tests set SkipNameValidation to run several
	// managers in one process).
	Controller controller.Options

	// BeforePersist, if set, runs after Kommo issued a new pair and before
	// it is persisted; grant is "refresh_token" or "authorization_code".
	// Tests use it to inject a crash (panic or error) between the refresh
	// and the persist; production leaves it nil.
	BeforePersist func(ctx context.Context, integration client.ObjectKey, grant string) error
}

// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=kommointegrations,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=kommointegrations/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=kommointegrations/finalizers,verbs=update
// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=unisenderbindings,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Reconcile follows Flux's shape: get, one deferred summarize-and-patch,
// the delete branch, the finalizer, suspend, the forced-reconcile
// annotation, then the token steps.
func (r *KommoIntegrationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &v1alpha1.KommoIntegration{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	patcher := status.NewSerialPatcher(obj, r.Client)
	var after time.Duration
	var stepErr error
	suspended := false
	defer func() {
		if p := recover(); p != nil {
			panic(p) // a crash writes nothing, like a dead process
		}
		if suspended {
			return // as in Flux, a suspended object's status is left as it was
		}
		result, retErr = r.finisher(obj).Finish(ctx, obj, patcher, after, stepErr)
	}()

	if !obj.DeletionTimestamp.IsZero() {
		after, stepErr = r.reconcileDelete(ctx, obj)
		return
	}
	if controllerutil.AddFinalizer(obj, v1alpha1.Finalizer) {
		if stepErr = patcher.Patch(ctx, obj); stepErr != nil {
			return
		}
	}
	if obj.Spec.Suspend {
		// The status is left as it was (and observedGeneration with it: a
		// spec change made while suspended shows as not yet observed).
		suspended = true
		logf.FromContext(ctx).Info("suspended; not reconciling")
		r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonSuspended, "Reconcile",
			"spec.suspend is true: the token is not refreshed until it is false again")
		return
	}
	requested := status.NoteReconcileRequest(obj, &obj.Status.LastHandledReconcileAt)
	if requested {
		logf.FromContext(ctx).Info("reconcile requested by annotation", "requestedAt", obj.Status.LastHandledReconcileAt)
	}
	r.noteSharedClientID(ctx, obj)
	after, stepErr = r.reconcileToken(ctx, obj, requested)
	return
}

// reconcileDelete releases the finalizer once no UnisenderBinding refers
// to the integration. Until then the token is kept fresh: the bindings
// need it to remove their Kommo webhooks on their own deletion. The token
// Secret goes with the integration (owner reference).
func (r *KommoIntegrationReconciler) reconcileDelete(ctx context.Context, obj *v1alpha1.KommoIntegration) (time.Duration, error) {
	if !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		return 0, nil
	}
	names, err := r.dependentBindings(ctx, obj)
	if err != nil {
		return 0, err
	}
	if len(names) == 0 {
		controllerutil.RemoveFinalizer(obj, v1alpha1.Finalizer)
		r.Metrics.forget(client.ObjectKeyFromObject(obj))
		return 0, nil
	}
	after, err := r.reconcileToken(ctx, obj, false)
	if err != nil {
		return 0, err
	}
	status.MarkReconciling(obj, v1alpha1.ReasonWaitingForBindings,
		"deletion waits for the UnisenderBindings %v: they need the token to remove their Kommo webhooks", names)
	return min(after, r.waitRecheck()), nil
}

// dependentBindings lists the bindings in the namespace that refer to obj.
// It reads the API server, not the cache: releasing the finalizer cannot be
// undone, and a binding created a moment ago may not be in the cache yet.
func (r *KommoIntegrationReconciler) dependentBindings(ctx context.Context, obj *v1alpha1.KommoIntegration) ([]string, error) {
	var list v1alpha1.UnisenderBindingList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(obj.Namespace)); err != nil {
		return nil, fmt.Errorf("listing UnisenderBindings: %w", err)
	}
	var names []string
	for _, b := range list.Items {
		if b.Spec.IntegrationRef.Name == obj.Name {
			names = append(names, b.Name)
		}
	}
	return names, nil
}

// finisher ends a pass over obj (internal/outcome): Authorized follows the
// outcome, Ready is summarized from it, and the OAuth state's rotation
// bounds the requeue.
func (r *KommoIntegrationReconciler) finisher(obj *v1alpha1.KommoIntegration) outcome.Finisher {
	return outcome.Finisher{
		Recorder: r.Recorder, Now: r.now, BackoffInitial: r.BackoffInitial, BackoffMax: r.BackoffMax,
		Mark:      func(o outcome.Outcome) { r.markOutcome(obj, o) },
		NextCheck: func() time.Duration { return r.stateRotationIn(obj) },
	}
}

// markOutcome: a stall makes Authorized False; a wait or a failure too,
// unless the stored token is still valid.
func (r *KommoIntegrationReconciler) markOutcome(obj *v1alpha1.KommoIntegration, o outcome.Outcome) {
	switch o.Kind {
	case outcome.Stalled:
		status.MarkFalse(obj, v1alpha1.ConditionAuthorized, o.Reason, "%s", o.Message)
	case outcome.Waited:
		r.markUnauthorizedUnlessValid(obj, o.Reason, o.Message)
	case outcome.Retrying:
		r.markUnauthorizedUnlessValid(obj, v1alpha1.ReasonRefreshFailed, o.Message)
	}
	status.SummarizeReady(obj, "Kommo token stored and confirmed", v1alpha1.ConditionAuthorized)
}

// markUnauthorizedUnlessValid keeps Authorized=True while the stored token
// is still valid (a failed refresh does not make it unusable yet), and
// sets it False otherwise.
func (r *KommoIntegrationReconciler) markUnauthorizedUnlessValid(obj *v1alpha1.KommoIntegration, reason, msg string) {
	if status.IsTrue(obj, v1alpha1.ConditionAuthorized) && obj.Status.TokenExpiresAt != nil &&
		r.now().Before(obj.Status.TokenExpiresAt.Time) {
		return
	}
	status.MarkFalse(obj, v1alpha1.ConditionAuthorized, reason, "%s", msg)
}

func (r *KommoIntegrationReconciler) event(obj runtime.Object, eventType, reason, action, format string, args ...any) {
	outcome.Event(r.Recorder, obj, eventType, reason, action, format, args...)
}

// kommoClient is a client for the integration's account; ts may be nil for
// the token endpoint, which needs no bearer token. It takes from the
// integration's foreground budget when there is a Store. override options
// come last, after KommoOptions.
func (r *KommoIntegrationReconciler) kommoClient(obj *v1alpha1.KommoIntegration, ts kommo.TokenSource, override ...kommo.Option) *kommo.Client {
	opts := []kommo.Option{
		kommo.WithRateLimit(float64(obj.Spec.RequestsPerSecond()), 1),
		kommo.WithClock(r.now),
		kommo.WithUserAgent("kommo-unisender-manager"),
	}
	if r.Store != nil {
		opts = append(opts, kommo.WithBudget(budget.KommoForeground(r.Store, obj.Namespace, obj.Name, obj.Spec.RequestsPerSecond())))
	}
	if r.HTTPClient != nil {
		opts = append(opts, kommo.WithHTTPClient(r.HTTPClient))
	}
	if ts != nil {
		opts = append(opts, kommo.WithTokenSource(ts))
	}
	opts = append(opts, r.KommoOptions...)
	return kommo.NewClient(obj.Spec.APIBaseURL(), append(opts, override...)...)
}

func (r *KommoIntegrationReconciler) writer() *tokens.Writer {
	return &tokens.Writer{Client: r.Client, Holder: r.HolderID, TTL: r.claimTTL(), Now: r.now}
}

func (r *KommoIntegrationReconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

func (r *KommoIntegrationReconciler) claimTTL() time.Duration {
	return orDefault(r.ClaimTTL, DefaultClaimTTL)
}
func (r *KommoIntegrationReconciler) recheckInterval() time.Duration {
	return orDefault(r.RecheckInterval, DefaultRecheckInterval)
}
func (r *KommoIntegrationReconciler) waitRecheck() time.Duration {
	return min(defaultWaitRecheck, r.recheckInterval())
}
func (r *KommoIntegrationReconciler) conflictRetry() time.Duration {
	return min(defaultConflictRetry, r.claimTTL()/4)
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// defaultHolderID is the hostname (the pod name) plus a random suffix, so
// two processes never share an identity even on one host.
func defaultHolderID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "manager"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
