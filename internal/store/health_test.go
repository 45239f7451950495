package store

import (
	"context"
	"testing"
	"time"
)

// The status's latency figures are the nearest-rank p50 and p99 of the
// last hour's samples; older samples are pruned as new ones arrive.
func TestSyncHealthLatencyQuantilesOverTheLastHour(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO sync_latency (tenant, applied_at, latency_ms) VALUES (?, ?, ?)`,
		"shop/main", now().Add(-2*LatencyWindow), 999_999); err != nil {
		t.Fatal(err)
	}
	var samples []time.Duration
	for ms := 100; ms >= 1; ms-- {
		samples = append(samples, time.Duration(ms)*time.Millisecond)
	}
	if err := s.RecordSyncLatencies(ctx, "shop/main", samples); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSyncLatencies(ctx, "other/tenant", []time.Duration{time.Hour}); err != nil {
		t.Fatal(err)
	}
	h, err := s.TenantHealth(ctx, "shop/main")
	if err != nil {
		t.Fatal(err)
	}
	if h.LatencySamples != 100 || h.LatencyP50 != 50*time.Millisecond || h.LatencyP99 != 99*time.Millisecond {
		t.Fatalf("latency: %d samples, p50 %v, p99 %v; want 100, 50ms, 99ms", h.LatencySamples, h.LatencyP50, h.LatencyP99)
	}
	var old int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sync_latency WHERE latency_ms = 999999`).Scan(&old); err != nil || old != 0 {
		t.Fatalf("%d samples older than the window left (%v); want them pruned", old, err)
	}
}

// The refusals kept per tenant are bounded: past the bound the oldest go.
func TestSyncHealthRefusalsAreBounded(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var batch []Refusal
	for id := int64(1); id <= MaxRefusalsPerTenant+5; id++ {
		batch = append(batch, Refusal{ContactID: id, Source: RefusalSkipped, Reason: ReasonNoEmail})
	}
	err := s.InTx(ctx, func(tx *Tx) error { return tx.ReplaceRefusals(ctx, "shop/main", nil, batch) })
	if err != nil {
		t.Fatal(err)
	}
	var kept, oldest int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(contact_id) FROM refusals WHERE tenant = ?`,
		"shop/main").Scan(&kept, &oldest); err != nil {
		t.Fatal(err)
	}
	if kept != MaxRefusalsPerTenant || oldest != 6 {
		t.Fatalf("%d refusals kept, oldest contact %d; want %d, the 5 oldest pruned", kept, oldest, MaxRefusalsPerTenant)
	}
	if got := RefusalReason("Bad Code!\x1b"); got != "other" {
		t.Fatalf("RefusalReason of a code from outside = %q; want other", got)
	}
}
