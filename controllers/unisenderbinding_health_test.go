package controllers

import (
	"encoding/json"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// Figures that did not change compare equal to the status read back from
// the API server (times in seconds, durations as strings, empty maps
// omitted), so the health loop writes nothing when nothing changed.
func TestSyncHealthUnchangedFiguresNeedNoWrite(t *testing.T) {
	fig := store.Health{
		ContactsSynced: 3000, ListMembers: 2990, Refused: map[string]int64{"invalid_email": 2, "role_address": 1},
		Excluded: map[string]int64{}, InvitationsPending: 4, DeadLetters: 1,
		LastAppliedAt: time.Date(2026, 12, 4, 19, 53, 57, 123456000, time.UTC),
		LatencyP50:    112345 * time.Microsecond, LatencyP99: 2*time.Second + 345678*time.Microsecond, LatencySamples: 40,
	}
	written := healthStatus(fig)
	raw, err := json.Marshal(written)
	if err != nil {
		t.Fatal(err)
	}
	var readBack v1alpha1.SyncHealth
	if err := json.Unmarshal(raw, &readBack); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(&readBack, healthStatus(fig)) {
		t.Fatalf("read back %s; computed again %+v: every refresh would write", raw, healthStatus(fig))
	}
	if written.Refused != 3 || written.Excluded != 0 || written.InList != 2990 {
		t.Fatalf("health %s; want 3 refused, none excluded, 2990 in the list", raw)
	}
	fig.LastAppliedAt = fig.LastAppliedAt.Add(time.Second)
	if equality.Semantic.DeepEqual(&readBack, healthStatus(fig)) {
		t.Fatal("a later applied change compares equal: the status would never move")
	}
}
