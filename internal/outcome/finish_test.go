package outcome

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// Both kinds go through the same record: each outcome sets the same
// conditions, retry record and requeue whether the object is an
// integration or a binding.
func TestRecordIsTheSameForBothKinds(t *testing.T) {
	for _, newObj := range []func() Object{
		func() Object { return &v1alpha1.KommoIntegration{} },
		func() Object { return &v1alpha1.UnisenderBinding{} },
	} {
		t.Run(fmt.Sprintf("%T", newObj()), func(t *testing.T) { testRecord(t, newObj) })
	}
}

func testRecord(t *testing.T, newObj func() Object) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := Finisher{Now: func() time.Time { return now }, BackoffInitial: time.Second, BackoffMax: 4 * time.Second}
	ctx := context.Background()

	t.Run("success resets the count and keeps the steps' requeue", func(t *testing.T) {
		obj := newObj()
		obj.Retries().FailedAttempts = 3
		o, d := f.record(ctx, obj, 7*time.Second, nil)
		if o.Kind != Succeeded || d != 7*time.Second || obj.Retries().FailedAttempts != 0 {
			t.Fatalf("outcome %+v, requeue %s, failedAttempts %d", o, d, obj.Retries().FailedAttempts)
		}
	})
	t.Run("a stall sets Stalled and is not requeued", func(t *testing.T) {
		obj := newObj()
		status.MarkReconciling(obj, v1alpha1.ReasonProgressing, "working")
		o, d := f.record(ctx, obj, time.Second, fmt.Errorf("step: %w", Stall(v1alpha1.ReasonInvalidAPIKey, "fix %s", "it")))
		c := status.Get(obj, v1alpha1.ConditionStalled)
		if o.Kind != Stalled || d != 0 || c == nil || c.Reason != v1alpha1.ReasonInvalidAPIKey || c.Message != "fix it" ||
			status.Get(obj, v1alpha1.ConditionReconciling) != nil || obj.Retries().FailedAttempts != 0 {
			t.Fatalf("outcome %+v, requeue %s, conditions %+v", o, d, obj.GetConditions())
		}
	})
	t.Run("a wait sets Reconciling with its reason and comes back after its delay", func(t *testing.T) {
		obj := newObj()
		o, d := f.record(ctx, obj, 0, Wait(10*time.Second, v1alpha1.ReasonSecretNotFound, "waiting"))
		c := status.Get(obj, v1alpha1.ConditionReconciling)
		if o.Kind != Waited || o.Reason != v1alpha1.ReasonSecretNotFound || d < 10*time.Second || d > 11*time.Second ||
			c == nil || c.Reason != v1alpha1.ReasonSecretNotFound || obj.Retries().FailedAttempts != 0 {
			t.Fatalf("outcome %+v, requeue %s, conditions %+v", o, d, obj.GetConditions())
		}
	})
	t.Run("busy touches nothing and comes back after its delay", func(t *testing.T) {
		obj := newObj()
		o, d := f.record(ctx, obj, 0, &Busy{Why: "claimed", After: 10 * time.Second})
		if o.Kind != Busied || d < 10*time.Second || d > 12*time.Second || len(obj.GetConditions()) != 0 {
			t.Fatalf("outcome %+v, requeue %s, conditions %+v", o, d, obj.GetConditions())
		}
	})
	t.Run("other errors are counted and backed off, capped", func(t *testing.T) {
		obj := newObj()
		for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
			o, d := f.record(ctx, obj, time.Minute, errors.New("HTTP 503"))
			rs := obj.Retries()
			c := status.Get(obj, v1alpha1.ConditionReconciling)
			if o.Kind != Retrying || d != want || rs.FailedAttempts != int32(i+1) || rs.LastFailureTime == nil || !rs.LastFailureTime.Equal(&metav1.Time{Time: now}) ||
				c == nil || c.Reason != v1alpha1.ReasonProgressingWithRetry || c.Message != o.Message {
				t.Fatalf("failure %d: outcome %+v, requeue %s (want %s), retries %+v, Reconciling %+v", i+1, o, d, want, rs, c)
			}
		}
		if want := "attempt 4 failed: HTTP 503; retrying in 4s"; status.Get(obj, v1alpha1.ConditionReconciling).Message != want {
			t.Fatalf("message %q, want %q", status.Get(obj, v1alpha1.ConditionReconciling).Message, want)
		}
	})
}
