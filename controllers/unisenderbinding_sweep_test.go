package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
)

// A resync sweeps every time without spec.sweepInterval; with it, only once
// the interval has passed since the last sweep, unless the pass asks for
// everything to be checked.
func TestResyncSweepsPerSweepInterval(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	r := &UnisenderBindingReconciler{Clock: func() time.Time { return now }}
	ago := func(d time.Duration) *metav1.Time { at := metav1.NewTime(now.Add(-d)); return &at }
	daily := &metav1.Duration{Duration: 24 * time.Hour}
	for _, tc := range []struct {
		name      string
		interval  *metav1.Duration
		lastSweep *metav1.Time
		pass      bindingPass
		want      bool
	}{
		{"no interval: every resync", nil, ago(time.Minute), bindingPass{}, true},
		{"never swept", daily, nil, bindingPass{}, true},
		{"swept an hour ago", daily, ago(time.Hour), bindingPass{}, false},
		{"swept a day ago", daily, ago(24 * time.Hour), bindingPass{}, true},
		{"reconcile request", daily, ago(time.Hour), bindingPass{forced: true}, true},
		{"webhook re-registered", daily, ago(time.Hour), bindingPass{catchUp: true}, true},
		{"selector changed", daily, ago(time.Hour), bindingPass{reevaluate: true}, true},
	} {
		p := tc.pass
		p.obj = &v1alpha1.UnisenderBinding{
			Spec:   v1alpha1.UnisenderBindingSpec{SweepInterval: tc.interval},
			Status: v1alpha1.UnisenderBindingStatus{LastSweepTime: tc.lastSweep},
		}
		if got := r.sweepDue(&p); got != tc.want {
			t.Errorf("%s: sweep due %v, want %v", tc.name, got, tc.want)
		}
	}
}
