// Package status is the status discipline shared by the reconcilers, in the
// shape of Flux's runtime: conditions stamped with the observed generation,
// Ready summarized from the conditions a reconciler owns, the kstatus
// conditions Reconciling and Stalled, one serial patcher used by a single
// deferred "summarize and patch" per reconcile, jittered requeues and
// exponential backoff from a failure count.
//
// It works on any object that implements Object, so both reconcilers use
// the same rules.
package status

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// Object is a Kubernetes object with metav1.Conditions in its status.
type Object interface {
	client.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// maxMessageLen bounds condition messages well below the API's 32 KiB so a
// long error cannot make the status patch itself fail.
const maxMessageLen = 2048

// Set sets (or updates) a condition, stamped with the object's current
// generation. The transition time changes only when the status does.
func Set(obj Object, condType string, s metav1.ConditionStatus, reason, message string) {
	conds := obj.GetConditions()
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type:               condType,
		Status:             s,
		ObservedGeneration: obj.GetGeneration(),
		Reason:             reason,
		Message:            truncate.Text(message, maxMessageLen),
	})
	obj.SetConditions(conds)
}

// MarkTrue sets condType to True.
func MarkTrue(obj Object, condType, reason, format string, args ...any) {
	Set(obj, condType, metav1.ConditionTrue, reason, fmt.Sprintf(format, args...))
}

// MarkFalse sets condType to False.
func MarkFalse(obj Object, condType, reason, format string, args ...any) {
	Set(obj, condType, metav1.ConditionFalse, reason, fmt.Sprintf(format, args...))
}

// MarkUnknown sets condType to Unknown.
func MarkUnknown(obj Object, condType, reason, format string, args ...any) {
	Set(obj, condType, metav1.ConditionUnknown, reason, fmt.Sprintf(format, args...))
}

// Get returns the condition of that type, or nil.
func Get(obj Object, condType string) *metav1.Condition {
	return meta.FindStatusCondition(obj.GetConditions(), condType)
}

// IsTrue reports whether condType is present and True.
func IsTrue(obj Object, condType string) bool {
	return meta.IsStatusConditionTrue(obj.GetConditions(), condType)
}

// Remove deletes the condition of that type, if present.
func Remove(obj Object, condType string) {
	conds := obj.GetConditions()
	if meta.RemoveStatusCondition(&conds, condType) {
		obj.SetConditions(conds)
	}
}

// MarkReconciling sets the kstatus Reconciling condition (work under way or
// retrying) and removes Stalled: an object is one or the other.
func MarkReconciling(obj Object, reason, format string, args ...any) {
	MarkTrue(obj, v1alpha1.ConditionReconciling, reason, format, args...)
	Remove(obj, v1alpha1.ConditionStalled)
}

// MarkStalled sets the kstatus Stalled condition (a human must act; no
// retry until something changes) and removes Reconciling.
func MarkStalled(obj Object, reason, format string, args ...any) {
	MarkTrue(obj, v1alpha1.ConditionStalled, reason, format, args...)
	Remove(obj, v1alpha1.ConditionReconciling)
}

// ClearProgress removes Reconciling and Stalled: the object is settled.
func ClearProgress(obj Object) {
	Remove(obj, v1alpha1.ConditionReconciling)
	Remove(obj, v1alpha1.ConditionStalled)
}

// SummarizeReady sets Ready from the other conditions. The first rule that
// matches decides:
//
//  1. Stalled=True: Ready=False with Stalled's reason and message.
//  2. An owned condition is False: Ready=False with its reason and message.
//  3. Reconciling=True: Ready=False when the reason is ProgressingWithRetry
//     (a failure is being retried), otherwise Unknown; Reconciling's reason
//     and message.
//  4. An owned condition is Unknown or missing: Ready=Unknown with its
//     reason and message (ReasonProgressing when missing).
//  5. Otherwise Ready=True, ReasonSucceeded, readyMessage.
//
// owned lists the condition types in the order they are checked.
func SummarizeReady(obj Object, readyMessage string, owned ...string) {
	if c := Get(obj, v1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		Set(obj, v1alpha1.ConditionReady, metav1.ConditionFalse, c.Reason, c.Message)
		return
	}
	for _, t := range owned {
		if c := Get(obj, t); c != nil && c.Status == metav1.ConditionFalse {
			Set(obj, v1alpha1.ConditionReady, metav1.ConditionFalse, c.Reason, c.Message)
			return
		}
	}
	if c := Get(obj, v1alpha1.ConditionReconciling); c != nil && c.Status == metav1.ConditionTrue {
		s := metav1.ConditionUnknown
		if c.Reason == v1alpha1.ReasonProgressingWithRetry {
			s = metav1.ConditionFalse
		}
		Set(obj, v1alpha1.ConditionReady, s, c.Reason, c.Message)
		return
	}
	for _, t := range owned {
		c := Get(obj, t)
		if c == nil {
			MarkUnknown(obj, v1alpha1.ConditionReady, v1alpha1.ReasonProgressing, "%s not determined yet", t)
			return
		}
		if c.Status != metav1.ConditionTrue {
			Set(obj, v1alpha1.ConditionReady, metav1.ConditionUnknown, c.Reason, c.Message)
			return
		}
	}
	Set(obj, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, readyMessage)
}

// NoteReconcileRequest copies the value of the reconcile-request annotation
// into *lastHandled and reports whether it was a new request.
func NoteReconcileRequest(obj metav1.Object, lastHandled *string) bool {
	v, ok := v1alpha1.ReconcileRequestedAt(obj)
	if !ok || v == *lastHandled {
		return false
	}
	*lastHandled = v
	return true
}
