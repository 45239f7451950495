package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// A thousand integrations whose 10-minute tokens were issued in the same
// second are due spread over the first half of their 5-minute refresh
// window, not all at once, and none later than that half.
func TestRefreshesOfTokensIssuedTogetherSpread(t *testing.T) {
	const n, buckets = 1000, 10
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pair := tokens.Pair{AccessToken: "a", RefreshToken: "r", ExpiresAt: issued.Add(10 * time.Minute)}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
		tokens.ObtainedAtAnnotation: issued.Format(time.RFC3339)}}}
	earliest, latest := pair.ExpiresAt.Add(-5*time.Minute), pair.ExpiresAt.Add(-150*time.Second)
	per := make([]int, buckets)
	for range n {
		obj := &v1alpha1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{UID: uuid.NewUUID()}}
		at := (&tokenRun{obj: obj, sec: sec}).refreshAt(pair)
		if at.Before(earliest) || !at.Before(latest) {
			t.Fatalf("refresh due at %s, want within [%s, %s)", at, earliest, latest)
		}
		per[int(at.Sub(earliest)*buckets/latest.Sub(earliest))]++
	}
	for i, c := range per {
		if c > 2*n/buckets {
			t.Fatalf("%d of %d refreshes fall in the 15-second slice %d (per slice: %v): want at most %d", c, n, i, per, 2*n/buckets)
		}
	}
}
