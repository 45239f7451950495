package outcome

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// The retry policy's defaults: the first retry after 5 s, doubling up to
// 10 minutes (cert-manager's shape).
const (
	DefaultBackoffInitial = 5 * time.Second
	DefaultBackoffMax     = 10 * time.Minute
)

// Object is what Finish finishes: an object with conditions, the retry
// record and an observed generation in its status.
type Object interface {
	status.Object
	Retries() *v1alpha1.RetryStatus
	SetObservedGeneration(int64)
}

// Finisher is the deferred end of every reconcile, the same for both
// kinds: it records the outcome of the steps (conditions, event, retry
// record), lets the kind mark its own conditions and summarize Ready,
// patches status once and picks the requeue.
//
// The one retry policy: a transient failure counts in
// status.failedAttempts and the pass is requeued after
// BackoffInitial·2^(failedAttempts−1), capped at BackoffMax; a pass that
// succeeds resets the count. The count lives in the status rather than in
// the workqueue's rate limiter so that a manager restart or a new leader
// does not start hammering Kommo or Unisender from a 5 ms delay again, and
// so that kubectl shows it. Finish never returns the steps' error to
// controller-runtime, so its rate limiter never stacks on top.
type Finisher struct {
	// Recorder receives the events; nil emits none.
	Recorder events.EventRecorder
	// Now is the clock of lastFailureTime; nil means time.Now.
	Now func() time.Time
	// BackoffInitial and BackoffMax shape the retry delay (defaults above).
	BackoffInitial, BackoffMax time.Duration
	// Mark records the outcome on the kind's own conditions and summarizes
	// Ready; Reconciling and Stalled are already set. Required.
	Mark func(Outcome)
	// NextCheck, if set, bounds the requeue whatever the outcome (0: no
	// bound).
	NextCheck func() time.Duration
}

// Finish ends a pass whose steps asked to be requeued after `after` (0:
// not) and returned err.
func (f Finisher) Finish(ctx context.Context, obj Object, patcher *status.SerialPatcher, after time.Duration, err error) (ctrl.Result, error) {
	if !obj.GetDeletionTimestamp().IsZero() && !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		return status.ConflictResult(patcher.Patch(ctx, obj)) // the finalizer goes; the object with it
	}
	if apierrors.IsConflict(err) {
		return status.ConflictResult(err) // the early patch met a newer object: start over from a fresh read
	}
	o, requeue := f.record(ctx, obj, after, err)
	f.Mark(o)
	if f.NextCheck != nil {
		if d := f.NextCheck(); d > 0 && (requeue == 0 || d < requeue) {
			requeue = d
		}
	}
	obj.SetObservedGeneration(obj.GetGeneration())
	if perr := patcher.Patch(ctx, obj); perr != nil {
		return status.ConflictResult(perr)
	}
	// As Flux does: when the next pass comes is what an operator chasing
	// a stuck object asks first.
	logf.FromContext(ctx).V(1).Info("reconciled", "outcome", o.Kind, "reason", o.Reason, "requeueAfter", requeue)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// record classifies err, sets Reconciling or Stalled, keeps the retry
// record and returns the requeue.
func (f Finisher) record(ctx context.Context, obj Object, after time.Duration, err error) (Outcome, time.Duration) {
	var (
		busy  *Busy
		stuck *Stalling
		wait  *Waiting
	)
	switch {
	case err == nil:
		obj.Retries().FailedAttempts = 0
		return Outcome{Kind: Succeeded}, after
	case errors.As(err, &busy):
		logf.FromContext(ctx).V(1).Info("another writer is at the data; looking again shortly", "why", busy.Why)
		return Outcome{Kind: Busied}, status.Jitter(busy.After, 0.2)
	case errors.As(err, &stuck):
		f.stall(obj, stuck)
		return Outcome{Kind: Stalled, Reason: stuck.Reason, Message: stuck.Message}, 0
	case errors.As(err, &wait):
		status.MarkReconciling(obj, wait.Reason, "%s", wait.Message)
		return Outcome{Kind: Waited, Reason: wait.Reason, Message: wait.Message}, status.Jitter(wait.After, 0.1)
	}
	return f.retry(ctx, obj, err)
}

// stall: a human must act. The Warning event is emitted when the object
// newly stalls or stalls for a new reason, not on every pass.
func (f Finisher) stall(obj Object, e *Stalling) {
	prev := status.Get(obj, v1alpha1.ConditionStalled)
	if prev == nil || prev.Status != metav1.ConditionTrue || prev.Reason != e.Reason || prev.Message != e.Message {
		Event(f.Recorder, obj, corev1.EventTypeWarning, e.Reason, "Reconcile", "%s", e.Message)
	}
	status.MarkStalled(obj, e.Reason, "%s", e.Message)
}

// retry counts a transient failure and backs off exponentially; the first
// failure after a success emits a Warning event.
func (f Finisher) retry(ctx context.Context, obj Object, err error) (Outcome, time.Duration) {
	rs := obj.Retries()
	rs.FailedAttempts++
	now := metav1.NewTime(f.now())
	rs.LastFailureTime = &now
	initial, maxDelay := f.backoff()
	delay := status.Backoff(rs.FailedAttempts, initial, maxDelay)
	msg := fmt.Sprintf("attempt %d failed: %v; retrying in %s", rs.FailedAttempts, err, delay.Round(time.Second))
	logf.FromContext(ctx).Error(err, "reconcile failed; retrying", "failedAttempts", rs.FailedAttempts, "retryIn", delay)
	if rs.FailedAttempts == 1 {
		Event(f.Recorder, obj, corev1.EventTypeWarning, v1alpha1.ReasonProgressingWithRetry, "Reconcile", "%s", msg)
	}
	status.MarkReconciling(obj, v1alpha1.ReasonProgressingWithRetry, "%s", msg)
	return Outcome{Kind: Retrying, Reason: v1alpha1.ReasonProgressingWithRetry, Message: msg}, delay
}

func (f Finisher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// backoff returns BackoffInitial and BackoffMax, or their defaults.
func (f Finisher) backoff() (initial, maxDelay time.Duration) {
	initial, maxDelay = f.BackoffInitial, f.BackoffMax
	if initial <= 0 {
		initial = DefaultBackoffInitial
	}
	if maxDelay <= 0 {
		maxDelay = DefaultBackoffMax
	}
	return initial, maxDelay
}

// Event emits an event about obj through rec; a nil rec (tests without a
// manager) emits nothing.
func Event(rec events.EventRecorder, obj runtime.Object, eventType, reason, action, format string, args ...any) {
	if rec != nil {
		rec.Eventf(obj, nil, eventType, reason, action, format, args...)
	}
}
