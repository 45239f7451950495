package status

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
)

func newObj(gen int64) *v1alpha1.KommoIntegration {
	o := &v1alpha1.KommoIntegration{}
	o.Generation = gen
	return o
}

func TestSetStampsGenerationAndKeepsTransitionTime(t *testing.T) {
	o := newObj(3)
	MarkFalse(o, v1alpha1.ConditionAuthorized, v1alpha1.ReasonSecretNotFound, "waiting for %q", "x")
	c := Get(o, v1alpha1.ConditionAuthorized)
	if c == nil || c.ObservedGeneration != 3 || c.Message != `waiting for "x"` || c.Status != metav1.ConditionFalse {
		t.Fatalf("condition = %+v", c)
	}
	first := c.LastTransitionTime
	if first.IsZero() {
		t.Fatal("no transition time")
	}

	// Same status, new reason and generation: the transition time stays.
	o.Generation = 4
	c.LastTransitionTime = metav1.NewTime(first.Add(-time.Hour)) // make a change observable
	marked := c.LastTransitionTime
	MarkFalse(o, v1alpha1.ConditionAuthorized, v1alpha1.ReasonRefreshFailed, "again")
	c = Get(o, v1alpha1.ConditionAuthorized)
	if c.ObservedGeneration != 4 || c.Reason != v1alpha1.ReasonRefreshFailed || !c.LastTransitionTime.Equal(&marked) {
		t.Fatalf("after same-status update: %+v (want transition time %v)", c, marked)
	}

	// A status change moves it.
	MarkTrue(o, v1alpha1.ConditionAuthorized, v1alpha1.ReasonSucceeded, "ok")
	c = Get(o, v1alpha1.ConditionAuthorized)
	if c.LastTransitionTime.Equal(&marked) || !IsTrue(o, v1alpha1.ConditionAuthorized) {
		t.Fatalf("after status change: %+v", c)
	}
}

func TestLongMessagesAreBounded(t *testing.T) {
	o := newObj(1)
	long := make([]byte, 10*maxMessageLen)
	for i := range long {
		long[i] = 'é' % 128
	}
	MarkFalse(o, v1alpha1.ConditionReady, "R", "%s", string(long)+"ü")
	if n := len(Get(o, v1alpha1.ConditionReady).Message); n > maxMessageLen+len("…") {
		t.Fatalf("message length %d", n)
	}
}

func TestReconcilingAndStalledExcludeEachOther(t *testing.T) {
	o := newObj(1)
	MarkReconciling(o, v1alpha1.ReasonProgressing, "working")
	MarkStalled(o, v1alpha1.ReasonInvalidClient, "fix it")
	if Get(o, v1alpha1.ConditionReconciling) != nil || !IsTrue(o, v1alpha1.ConditionStalled) {
		t.Fatalf("stalled did not replace reconciling: %+v", o.Status.Conditions)
	}
	MarkReconciling(o, v1alpha1.ReasonProgressingWithRetry, "retrying")
	if Get(o, v1alpha1.ConditionStalled) != nil || !IsTrue(o, v1alpha1.ConditionReconciling) {
		t.Fatalf("reconciling did not replace stalled: %+v", o.Status.Conditions)
	}
	ClearProgress(o)
	if len(o.Status.Conditions) != 0 {
		t.Fatalf("ClearProgress left %+v", o.Status.Conditions)
	}
}

func TestSummarizeReady(t *testing.T) {
	type cond struct {
		t, reason string
		s         metav1.ConditionStatus
	}
	const owned1, owned2 = "KeyValid", "WebhookRegistered"
	cases := []struct {
		name       string
		conds      []cond
		wantStatus metav1.ConditionStatus
		wantReason string
	}{
		{"all owned true", []cond{{owned1, "Succeeded", "True"}, {owned2, "Succeeded", "True"}}, "True", v1alpha1.ReasonSucceeded},
		{"stalled wins over everything", []cond{{owned1, "X", "False"}, {v1alpha1.ConditionStalled, "InvalidAPIKey", "True"}, {v1alpha1.ConditionReconciling, "Progressing", "True"}}, "False", "InvalidAPIKey"},
		{"first false owned in order", []cond{{owned1, "Succeeded", "True"}, {owned2, "WebhookDisabled", "False"}}, "False", "WebhookDisabled"},
		{"false owned beats reconciling", []cond{{owned1, "ListNotFound", "False"}, {v1alpha1.ConditionReconciling, "Progressing", "True"}}, "False", "ListNotFound"},
		{"retrying is false", []cond{{owned1, "Succeeded", "True"}, {owned2, "Succeeded", "True"}, {v1alpha1.ConditionReconciling, v1alpha1.ReasonProgressingWithRetry, "True"}}, "False", v1alpha1.ReasonProgressingWithRetry},
		{"progressing is unknown", []cond{{owned1, "Succeeded", "True"}, {v1alpha1.ConditionReconciling, v1alpha1.ReasonImportRunning, "True"}}, "Unknown", v1alpha1.ReasonImportRunning},
		{"missing owned is unknown", []cond{{owned1, "Succeeded", "True"}}, "Unknown", v1alpha1.ReasonProgressing},
		{"unknown owned is unknown", []cond{{owned1, "Succeeded", "True"}, {owned2, "Checking", "Unknown"}}, "Unknown", "Checking"},
		{"stalled false is ignored", []cond{{owned1, "Succeeded", "True"}, {owned2, "Succeeded", "True"}, {v1alpha1.ConditionStalled, "Old", "False"}}, "True", v1alpha1.ReasonSucceeded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := newObj(7)
			for _, c := range tc.conds {
				Set(o, c.t, c.s, c.reason, "msg of "+c.t)
			}
			SummarizeReady(o, "all good", owned1, owned2)
			r := Get(o, v1alpha1.ConditionReady)
			if r == nil || r.Status != tc.wantStatus || r.Reason != tc.wantReason || r.ObservedGeneration != 7 {
				t.Fatalf("Ready = %+v, want %s/%s", r, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestNoteReconcileRequest(t *testing.T) {
	o := newObj(1)
	var last string
	if NoteReconcileRequest(o, &last) {
		t.Fatal("no annotation counted as a request")
	}
	o.SetAnnotations(map[string]string{v1alpha1.ReconcileRequestAnnotation: "2026-01-02T03:04:05Z"})
	if !NoteReconcileRequest(o, &last) || last != "2026-01-02T03:04:05Z" {
		t.Fatalf("new request not noted: %q", last)
	}
	if NoteReconcileRequest(o, &last) {
		t.Fatal("the same request counted twice")
	}
}
