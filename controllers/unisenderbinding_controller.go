package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// Defaults of UnisenderBindingReconciler.
const (
	// DefaultProgressInterval: how often a running initial import's
	// progress is copied into the status.
	DefaultProgressInterval = 5 * time.Second
	// DefaultRunRetryInitial and DefaultRunRetryMax shape the delay before
	// a failed import or resync run is resumed: initial·2^(failures−1).
	DefaultRunRetryInitial = 10 * time.Second
	DefaultRunRetryMax     = 10 * time.Minute
	// DefaultCleanupGiveUp: how long a deletion waits for the Kommo
	// integration (to remove the webhook) or a usable Unisender key (to
	// apply the deletion policy) before it gives up on that part.
	DefaultCleanupGiveUp = 10 * time.Minute

	bindingWaitRecheck = time.Minute
	// resyncCollectFallback: when a resync run is under way, look again
	// after this long even if its end is not signalled.
	resyncCollectFallback = time.Minute
	kommoStepTimeout      = 2 * time.Minute
)

// UnisenderBindingReconciler makes each UnisenderBinding's Kommo contacts
// appear in its Unisender list: it checks the API key, finds or creates the
// list and the fields the mapping needs, registers (and keeps registered)
// the Kommo webhook that feeds the sync pipeline, runs the initial import
// and the periodic incremental resync in the background (internal/importer),
// and cleans up on deletion.
type UnisenderBindingReconciler struct {
	// Client reads through the manager's cache, which holds the bindings,
	// the integrations and the operator's managed Secrets only.
	client.Client
	// APIReader reads the user's API key Secrets, which are not cached.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	// Store keeps import checkpoints and the tenant's contact state.
	Store *store.Store
	// PublicBaseURL is where Kommo reaches the webhook server (manager
	// flag --public-base-url); webhooks are registered under it.
	PublicBaseURL string
	// KommoHosts are the integrations' base URLs requests may go to (the
	// zero value: Kommo's domains over https); see kommointegration_baseurl.go.
	KommoHosts kommo.HostPolicy

	// NewKommoClient builds a client for an integration's account, one per
	// lane (foreground: webhook registration; background: import, resync,
	// sweep); b is the lane's share of the integration's shared request
	// budget, nil only without a Store. nil means kommo.NewClient with the
	// rate limit, the budget and the token source.
	NewKommoClient func(baseURL string, rps int, ts kommo.TokenSource, b kommo.Budget) *kommo.Client
	// NewUnisenderClient builds a client for an API key; nil means
	// unisender.NewClient on UnisenderBaseURL.
	NewUnisenderClient func(apiKey string) *unisender.Client
	// UnisenderBaseURL is the API's base URL (unisender.DefaultBaseURL when
	// empty; an emulator in tests).
	UnisenderBaseURL string
	// Clock is the time source; nil means time.Now.
	Clock func() time.Time
	// SecretMetadata is the metadata-only Secret cache (secretwatch.New);
	// nil makes SetupWithManager create one.
	SecretMetadata cache.Cache
	// Metrics records import progress and calls; nil means the default
	// series on controller-runtime's registry.
	Metrics *importer.Metrics
	// ProgressInterval overrides DefaultProgressInterval.
	ProgressInterval time.Duration
	// BackoffInitial and BackoffMax shape the retry delay after transient
	// failures: initial·2^(failedAttempts−1), capped (internal/outcome's
	// defaults when zero).
	BackoffInitial, BackoffMax time.Duration
	// CleanupGiveUp overrides DefaultCleanupGiveUp.
	CleanupGiveUp time.Duration
	// HealthInterval overrides DefaultHealthInterval.
	HealthInterval time.Duration
	// HealthMetrics records the bindings' health figures; nil means the
	// default series on controller-runtime's registry.
	HealthMetrics *HealthMetrics
	// Controller options (tests set SkipNameValidation to run several
	// managers in one process).
	Controller controller.Options

	runner  *importer.Runner
	wake    chan event.TypedGenericEvent[*v1alpha1.UnisenderBinding]
	clients clientCache

	reportedMu sync.Mutex
	reported   map[tenant.Key]time.Time // end of the last failed run an event was emitted for
}

// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=unisenderbindings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=unisenderbindings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=unisenderbindings/finalizers,verbs=update
// +kubebuilder:rbac:groups=sync.kommo-unisender.io,resources=kommointegrations,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// bindingPass is what one reconcile of one binding learns on its way
// through the steps.
type bindingPass struct {
	obj    *v1alpha1.UnisenderBinding
	tenant tenant.Key
	forced bool // a new reconcile request (annotation) is being served

	integration *v1alpha1.KommoIntegration
	kommo       *kommo.Client // foreground lane: webhook registration
	kommoBulk   *kommo.Client // background lane: import and resync runs
	uni         *unisender.Client
	keySource   string // "Secret \"x\" key \"y\"", for messages
	lists       []unisender.List
	listSharers []string         // tenants sharing the list (spec.list.shared on both)
	destination string           // the webhook URL, with its secret: never logged or shown
	hookURL     string           // Unisender's event hook URL, with the same secret: never logged or shown
	catchUp     bool             // the webhook was re-registered: resync now
	importing   bool             // an initial import runs: keep Reconciling=True
	segment     *segment.Segment // spec.selector compiled; nil selects every contact
	reevaluate  bool             // spec.selector changed: the resync evaluates every synced contact again
}

// Reconcile follows Flux's shape: get, one deferred summarize-and-patch,
// the delete branch, the finalizer, suspend, the forced-reconcile
// annotation, then the steps.
func (r *UnisenderBindingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &v1alpha1.UnisenderBinding{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	p := &bindingPass{obj: obj, tenant: tenant.FromNamespacedName(req.NamespacedName)}
	patcher := status.NewSerialPatcher(obj, r.Client)
	var after time.Duration
	var stepErr error
	defer func() { result, retErr = r.finisher(p).Finish(ctx, obj, patcher, after, stepErr) }()

	if !obj.DeletionTimestamp.IsZero() {
		after, stepErr = r.reconcileBindingDelete(ctx, p)
		return
	}
	if controllerutil.AddFinalizer(obj, v1alpha1.Finalizer) {
		if stepErr = patcher.Patch(ctx, obj); stepErr != nil {
			return
		}
	}
	if obj.Spec.Suspend {
		stepErr = r.suspend(ctx, p)
		return
	}
	p.forced = status.NoteReconcileRequest(obj, &obj.Status.LastHandledReconcileAt)
	if p.forced {
		logf.FromContext(ctx).Info("reconcile requested by annotation", "requestedAt", obj.Status.LastHandledReconcileAt)
	}
	if !p.forced && r.importProgressOnly(p) {
		after = r.publishRunningImport(p)
		return
	}
	after, stepErr = r.reconcileBindingSteps(ctx, p)
	return
}

// reconcileBindingSteps runs the steps in order; each may ask for an
// earlier requeue, and the first error ends the pass.
func (r *UnisenderBindingReconciler) reconcileBindingSteps(ctx context.Context, p *bindingPass) (time.Duration, error) {
	steps := []func(context.Context, *bindingPass) (time.Duration, error){
		r.reconcileIntegrationRef,
		r.reconcileSelector,
		r.reconcileAPIKey,
		r.reconcileList,
		r.reconcileListClaim,
		r.reconcileFields,
		r.reconcileWebhookSecret,
		r.reconcileWebhook,
		r.reconcileWriteBack,
		r.reconcileImport,
	}
	var after time.Duration
	for _, step := range steps {
		d, err := step(ctx, p)
		if err != nil {
			return 0, err
		}
		if d > 0 && (after == 0 || d < after) {
			after = d
		}
	}
	return after, nil
}

// suspend stops the tenant's import run (its checkpoint stays, and it
// resumes when suspend is lifted). The webhook server does not queue a
// suspended binding's events, so the last resync time is cleared: lifting
// suspend starts a resync at once, which catches up with what changed in
// Kommo meanwhile, deletes included (the sweep).
func (r *UnisenderBindingReconciler) suspend(ctx context.Context, p *bindingPass) error {
	logf.FromContext(ctx).V(1).Info("suspended; not reconciling")
	if err := r.runner.Stop(ctx, p.tenant); err != nil {
		return fmt.Errorf("stopping the import run: %w", err)
	}
	if imp := p.obj.Status.Import; imp != nil && imp.Phase == v1alpha1.ImportRunning {
		imp.Phase = v1alpha1.ImportPending
	}
	p.obj.Status.LastResyncTime = nil
	return nil
}

// finisher ends a pass over a binding (internal/outcome).
func (r *UnisenderBindingReconciler) finisher(p *bindingPass) outcome.Finisher {
	return outcome.Finisher{
		Recorder: r.Recorder, Now: r.now, BackoffInitial: r.BackoffInitial, BackoffMax: r.BackoffMax,
		Mark: func(o outcome.Outcome) { markBindingOutcome(p, o) },
	}
}

// markBindingOutcome: a pass that succeeded settles (unless an import runs
// or the deletion cleans up); Ready is summarized, says Suspended while the
// binding is, and names what a waiting binding waits for.
func markBindingOutcome(p *bindingPass, o outcome.Outcome) {
	obj := p.obj
	deleting := !obj.DeletionTimestamp.IsZero()
	if o.Kind == outcome.Succeeded {
		switch {
		case p.importing:
			// publishRunningImport set Reconciling: the import is the work in progress.
		case deleting:
			status.MarkReconciling(obj, v1alpha1.ReasonProgressing, "cleaning up before deletion")
		default:
			status.ClearProgress(obj)
		}
	}
	if obj.Spec.Suspend && !deleting {
		status.ClearProgress(obj)
		status.MarkFalse(obj, v1alpha1.ConditionReady, v1alpha1.ReasonSuspended,
			"spec.suspend is true: no import, no resync, webhook events are not queued; lifting it starts a resync")
		return
	}
	status.SummarizeReady(obj, readyMessage(obj), v1alpha1.ConditionKeyValid, v1alpha1.ConditionWebhookRegistered, v1alpha1.ConditionImported)
	if o.Kind == outcome.Waited {
		status.MarkFalse(obj, v1alpha1.ConditionReady, o.Reason, "%s", o.Message)
	}
}

func readyMessage(obj *v1alpha1.UnisenderBinding) string {
	return fmt.Sprintf("Kommo contacts sync into Unisender list %d", obj.Status.ListID)
}

func (r *UnisenderBindingReconciler) event(obj runtime.Object, eventType, reason, action, format string, args ...any) {
	outcome.Event(r.Recorder, obj, eventType, reason, action, format, args...)
}

func (r *UnisenderBindingReconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

func (r *UnisenderBindingReconciler) progressInterval() time.Duration {
	if r.ProgressInterval > 0 {
		return r.ProgressInterval
	}
	return DefaultProgressInterval
}

func (r *UnisenderBindingReconciler) cleanupGiveUp() time.Duration {
	if r.CleanupGiveUp > 0 {
		return r.CleanupGiveUp
	}
	return DefaultCleanupGiveUp
}
