package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// Run ids name what a checkpoint belongs to: the kind, the binding's UID
// (a binding deleted and created again starts afresh) and a short hash of
// what makes the run unique — the list for the initial import; the
// previous resync time and the lower bound for a resync. They fit the
// checkpoint's 64-byte column.
func initialRunID(obj *v1alpha1.UnisenderBinding) string {
	return runID("initial", obj, obj.Status.ListID)
}

func resyncRunID(obj *v1alpha1.UnisenderBinding) string {
	var last int64
	if obj.Status.LastResyncTime != nil {
		last = obj.Status.LastResyncTime.Unix()
	}
	// The generation tells apart the resyncs that start on each lift of
	// spec.suspend (which clears lastResyncTime): with nothing changed in
	// Kommo meanwhile they would otherwise share one id, and the second
	// would find the first's checkpoint done and list nothing.
	return runID("resync", obj, last, obj.Status.LastSyncedUpdatedAt, obj.Generation)
}

func runID(kind string, obj *v1alpha1.UnisenderBinding, parts ...int64) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d/", p)
	}
	return kind + "/" + string(obj.UID) + "/" + hex.EncodeToString(h.Sum(nil))[:12]
}

// runKind tells the kind of a run id of this binding; ok is false for a
// checkpoint of another binding (an earlier one with the same name).
func runKind(runID string, obj *v1alpha1.UnisenderBinding) (importer.Kind, bool) {
	kind, rest, _ := strings.Cut(runID, "/")
	if !strings.HasPrefix(rest, string(obj.UID)+"/") {
		return "", false
	}
	switch kind {
	case "initial":
		return importer.KindInitial, true
	case "resync":
		return importer.KindResync, true
	}
	return "", false
}

// reconcileImport drives the tenant's background runs: it publishes a
// running initial import's progress, takes the result of a finished run
// into the status, resumes an interrupted run from its checkpoint, and
// starts the initial import or a due resync. It never waits for a run.
func (r *UnisenderBindingReconciler) reconcileImport(ctx context.Context, p *bindingPass) (time.Duration, error) {
	if snap, ok := r.runner.Snapshot(p.tenant); ok {
		if snap.Running {
			return r.publishRunningImport(p), nil
		}
		if wait := r.takeRunResult(ctx, p, snap); wait > 0 {
			return wait, nil
		}
	}
	return r.startDueRun(ctx, p)
}

// importProgressOnly: a pass that only has to publish the progress of a
// running run — nothing in the spec changed since the last full pass, and
// the steps before the import all succeeded. It makes no call to Kommo or
// Unisender, so frequent progress updates cost the tenant nothing.
func (r *UnisenderBindingReconciler) importProgressOnly(p *bindingPass) bool {
	snap, ok := r.runner.Snapshot(p.tenant)
	return ok && snap.Running && p.obj.Status.ObservedGeneration == p.obj.Generation &&
		status.IsTrue(p.obj, v1alpha1.ConditionKeyValid) && status.IsTrue(p.obj, v1alpha1.ConditionWebhookRegistered)
}

// publishRunningImport copies a running run's progress into the status.
// For the initial import that is the import field and Imported=Unknown
// with Reconciling=True; a resync runs quietly (the binding stays Ready).
func (r *UnisenderBindingReconciler) publishRunningImport(p *bindingPass) time.Duration {
	snap, ok := r.runner.Snapshot(p.tenant)
	if !ok || !snap.Running {
		return r.progressInterval()
	}
	if snap.Kind != importer.KindInitial {
		return resyncCollectFallback
	}
	obj := p.obj
	imp := obj.Status.Import
	if imp == nil {
		imp = &v1alpha1.ImportStatus{}
		obj.Status.Import = imp
	}
	if imp.Phase != v1alpha1.ImportRunning || imp.StartedAt == nil {
		started := metav1.NewTime(snap.StartedAt)
		imp.StartedAt = &started
	}
	imp.Phase, imp.FinishedAt = v1alpha1.ImportRunning, nil
	imp.Imported, imp.Total, imp.LastPage = snap.Progress.Imported, snap.Progress.Seen, int32(snap.Progress.Pages)
	msg := fmt.Sprintf("initial import running: %d contacts imported, %d listed so far (Kommo gives no total), %d pages done",
		imp.Imported, imp.Total, imp.LastPage)
	status.MarkUnknown(obj, v1alpha1.ConditionImported, v1alpha1.ReasonImportRunning, "%s", msg)
	status.MarkReconciling(obj, v1alpha1.ReasonImportRunning, "%s", msg)
	p.importing = true
	return r.progressInterval()
}

// takeRunResult records a finished run. A failed run is resumed after a
// backoff; until then it returns how long to wait.
func (r *UnisenderBindingReconciler) takeRunResult(ctx context.Context, p *bindingPass, snap importer.Snapshot) time.Duration {
	if snap.Err != nil {
		r.recordRunFailure(ctx, p, snap)
		retryAt := snap.FinishedAt.Add(status.Backoff(int32(snap.Failures), DefaultRunRetryInitial, DefaultRunRetryMax))
		if wait := retryAt.Sub(r.now()); wait > 0 {
			return wait
		}
		r.runner.Collect(p.tenant, snap.RunID)
		return 0
	}
	r.recordRunSuccess(p, snap)
	r.runner.Collect(p.tenant, snap.RunID)
	return 0
}

func (r *UnisenderBindingReconciler) recordRunSuccess(p *bindingPass, snap importer.Snapshot) {
	obj, prog := p.obj, snap.Progress
	now := metav1.NewTime(r.now())
	obj.Status.LastSyncedUpdatedAt = max(obj.Status.LastSyncedUpdatedAt, prog.Cursor)
	obj.Status.LastResyncTime = &now
	if snap.Sweep || snap.Kind == importer.KindInitial { // the import read every contact
		obj.Status.LastSweepTime = &now
	}
	if snap.Kind != importer.KindInitial {
		r.reportResync(obj, prog)
		return
	}
	imp := obj.Status.Import
	if imp == nil {
		imp = &v1alpha1.ImportStatus{}
		obj.Status.Import = imp
	}
	if imp.StartedAt == nil {
		started := metav1.NewTime(snap.StartedAt)
		imp.StartedAt = &started
	}
	finished := metav1.NewTime(snap.FinishedAt)
	imp.Phase, imp.FinishedAt = v1alpha1.ImportCompleted, &finished
	imp.Imported, imp.Total, imp.LastPage = prog.Imported, prog.Seen, int32(prog.Pages)
	status.MarkTrue(obj, v1alpha1.ConditionImported, v1alpha1.ReasonSucceeded,
		"initial import completed: %d contacts imported", prog.Imported)
	r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonImportCompleted, "Import",
		"initial import completed: %d contacts imported in %s (%d rows refused by Unisender: invalid or role addresses)",
		prog.Imported, snap.FinishedAt.Sub(snap.StartedAt).Round(time.Second), prog.Rejected)
}

// reportResync makes an event of a resync that changed something, and a
// warning of a sweep that held back its deletions.
func (r *UnisenderBindingReconciler) reportResync(obj *v1alpha1.UnisenderBinding, prog importer.Progress) {
	if prog.Imported > 0 || prog.Rejected > 0 || prog.Deleted > 0 {
		r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonResyncCompleted, "Resync",
			"resync sent %d changed contacts to Unisender (%d rows refused by Unisender) and removed %d contacts deleted in Kommo without a webhook",
			prog.Imported, prog.Rejected, prog.Deleted)
	}
	if prog.SweepHeld > 0 {
		r.event(obj, corev1.EventTypeWarning, v1alpha1.ReasonSweepHeld, "Resync",
			"resync found at least %d of the contacts synced to the list gone from Kommo, more than spec.sweepMaxRemovalPercent (%d%%) of them, and removed none; "+
				"check that the integration still points at the right Kommo account, and if the removal is right, raise spec.sweepMaxRemovalPercent to 100 for one resync",
			prog.SweepHeld, obj.Spec.SweepHoldPercent())
	}
}

// recordRunFailure shows a failed run (once per failure in events). The
// checkpoint stays: the retry resumes where the run stopped.
func (r *UnisenderBindingReconciler) recordRunFailure(ctx context.Context, p *bindingPass, snap importer.Snapshot) {
	obj := p.obj
	what, reason := "resync", runFailureReason(snap.Err)
	if snap.Kind == importer.KindInitial {
		what = "initial import"
		imp := obj.Status.Import
		if imp == nil {
			imp = &v1alpha1.ImportStatus{}
			obj.Status.Import = imp
		}
		finished := metav1.NewTime(snap.FinishedAt)
		imp.Phase, imp.FinishedAt = v1alpha1.ImportFailed, &finished
		imp.Imported, imp.Total, imp.LastPage = snap.Progress.Imported, snap.Progress.Seen, int32(snap.Progress.Pages)
		status.MarkFalse(obj, v1alpha1.ConditionImported, reason,
			"initial import failed after %d contacts (attempt %d): %v; resuming from its checkpoint after a backoff",
			snap.Progress.Imported, snap.Failures, snap.Err)
	}
	if r.firstReport(p, snap.FinishedAt) {
		logf.FromContext(ctx).Error(snap.Err, "import run failed", "kind", snap.Kind, "failures", snap.Failures)
		r.event(obj, corev1.EventTypeWarning, reason, "Import",
			"%s failed (attempt %d): %v; it resumes from its checkpoint after a backoff", what, snap.Failures, snap.Err)
	}
}

// runFailureReason names why a run failed: AccountMismatch for a token of
// another Kommo account (a human must fix it), ImportFailed otherwise.
func runFailureReason(err error) string {
	if errors.Is(err, importer.ErrAccountMismatch) {
		return v1alpha1.ReasonAccountMismatch
	}
	return v1alpha1.ReasonImportFailed
}

// firstReport reports whether the failed run that ended at end has not been
// reported yet, and remembers it.
func (r *UnisenderBindingReconciler) firstReport(p *bindingPass, end time.Time) bool {
	r.reportedMu.Lock()
	defer r.reportedMu.Unlock()
	if r.reported[p.tenant].Equal(end) {
		return false
	}
	r.reported[p.tenant] = end
	return true
}

// startDueRun resumes an interrupted run, or starts the initial import or a
// resync that is due (or asked for: a catch-up after the webhook was
// re-registered, or a reconcile request), and otherwise returns the time to
// the next resync.
func (r *UnisenderBindingReconciler) startDueRun(ctx context.Context, p *bindingPass) (time.Duration, error) {
	obj := p.obj
	cp, err := r.Store.GetCheckpoint(ctx, p.tenant.String())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("reading the import checkpoint: %w", err)
	}
	if err == nil && cp.Status == importer.CheckpointRunning {
		if kind, ok := runKind(cp.RunID, obj); ok {
			if kind == importer.KindInitial {
				r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonImportResumed, "Import",
					"initial import resumed from its checkpoint: %d contacts done, %d pages", cp.Imported, cp.LastPage)
			}
			return r.launch(p, cp.RunID, kind, cp.UpdatedFrom)
		}
	}
	selector := obj.Spec.Selector.Digest()
	if obj.Spec.InitialImport.IsEnabled() && (obj.Status.Import == nil || obj.Status.Import.Phase != v1alpha1.ImportCompleted) {
		r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonImportStarted, "Import", "initial import of the Kommo contacts into Unisender list %d started", obj.Status.ListID)
		obj.Status.Selector.Evaluated = selector
		return r.launch(p, initialRunID(obj), importer.KindInitial, 0)
	}
	r.markImportSettled(obj)
	// A changed selector is evaluated again over every synced contact
	// (the resync's sweep), at once.
	p.reevaluate = selector != obj.Status.Selector.Evaluated
	if p.catchUp || p.forced || p.reevaluate || r.resyncDue(obj) {
		obj.Status.Selector.Evaluated = selector
		return r.launch(p, resyncRunID(obj), importer.KindResync, obj.Status.LastSyncedUpdatedAt)
	}
	return status.Jitter(r.untilResync(obj), 0.05), nil
}

// markImportSettled sets Imported for a binding whose initial import is done
// or disabled. Without an import, resyncs start from the binding's creation.
func (r *UnisenderBindingReconciler) markImportSettled(obj *v1alpha1.UnisenderBinding) {
	if obj.Spec.InitialImport.IsEnabled() {
		if imp := obj.Status.Import; imp != nil && !status.IsTrue(obj, v1alpha1.ConditionImported) {
			status.MarkTrue(obj, v1alpha1.ConditionImported, v1alpha1.ReasonSucceeded, "initial import completed: %d contacts imported", imp.Imported)
		}
		return
	}
	if obj.Status.LastSyncedUpdatedAt == 0 {
		obj.Status.LastSyncedUpdatedAt = obj.CreationTimestamp.Unix()
	}
	status.MarkTrue(obj, v1alpha1.ConditionImported, v1alpha1.ReasonImportDisabled,
		"spec.initialImport.enabled is false: only changes from %s on are synced",
		time.Unix(obj.Status.LastSyncedUpdatedAt, 0).UTC().Format(time.RFC3339))
}

// launch hands a run to the runner and publishes it.
func (r *UnisenderBindingReconciler) launch(p *bindingPass, runID string, kind importer.Kind, from int64) (time.Duration, error) {
	obj := p.obj
	job := importer.Job{
		Tenant: p.tenant, RunID: runID, Kind: kind, From: from,
		Mapper:           mapping.New(obj.Spec, obj.Status.ListID),
		Segment:          p.segment,
		Reevaluate:       p.segment != nil || p.reevaluate,
		DeletionPolicy:   obj.Spec.DeletionPolicy,
		DoubleOptin:      obj.Spec.DoubleOptin,
		Sweep:            kind == importer.KindResync && r.sweepDue(p),
		SweepHoldPercent: obj.Spec.SweepHoldPercent(),
		AccountID:        p.integration.Status.AccountID,
		ListSharers:      p.listSharers,
		Kommo:            segment.ReaderFor(p.segment, p.kommoBulk), Unisender: p.uni, Tags: p.uni,
		WriteBack: writeBackTarget(p),
	}
	if _, err := r.runner.Launch(job); err != nil {
		if errors.Is(err, importer.ErrNotStarted) {
			return time.Second, nil
		}
		return 0, err
	}
	return r.publishRunningImport(p), nil
}

// sweepDue: a resync sweeps when spec.sweepInterval is unset or has passed
// since the last sweep, and whenever the pass asks for everything to be
// checked (a reconcile request, a catch-up after the webhook was
// re-registered, a changed selector).
func (r *UnisenderBindingReconciler) sweepDue(p *bindingPass) bool {
	every, last := p.obj.Spec.SweepPeriod(), p.obj.Status.LastSweepTime
	if every == 0 || last == nil || p.forced || p.catchUp || p.reevaluate {
		return true
	}
	return !r.now().Before(last.Add(every))
}

// resyncDue: the interval since the last import or resync has passed.
func (r *UnisenderBindingReconciler) resyncDue(obj *v1alpha1.UnisenderBinding) bool {
	return r.untilResync(obj) <= 0
}

func (r *UnisenderBindingReconciler) untilResync(obj *v1alpha1.UnisenderBinding) time.Duration {
	if obj.Status.LastResyncTime == nil {
		return 0
	}
	return obj.Status.LastResyncTime.Add(obj.Spec.ResyncPeriod()).Sub(r.now())
}
