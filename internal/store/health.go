package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// LatencyWindow is how far back the sync latency figures look; older
// samples are pruned.
const LatencyWindow = time.Hour

// Health is a tenant's sync figures, as the binding's status shows them.
type Health struct {
	ContactsSynced int64 // live contacts in the store
	// ListMembers are the distinct addresses of live contacts that
	// Unisender did not refuse: the addresses in the list.
	ListMembers int64
	// Refused counts the addresses Unisender refused, by reason.
	Refused map[string]int64
	// Excluded counts the contacts the sync left out, by reason (no
	// e-mail, company).
	Excluded           map[string]int64
	InvitationsPending int64
	DeadLetters        int64     // buried jobs not requeued
	LastAppliedAt      time.Time // when a contact version was last applied; zero if never
	// LatencyP50 and LatencyP99 are the webhook → applied latencies over
	// the last LatencyWindow, from LatencySamples jobs (0: none).
	LatencyP50, LatencyP99 time.Duration
	LatencySamples         int64
}

// TenantHealth reads a tenant's figures: a handful of indexed counts.
func (s *Store) TenantHealth(ctx context.Context, tenant string) (Health, error) {
	if err := checkTenant(tenant); err != nil {
		return Health{}, err
	}
	h := Health{Refused: map[string]int64{}, Excluded: map[string]int64{}}
	var last sql.NullTime
	counts := []struct {
		what  string
		query string
		dest  any
	}{
		{"contacts synced", `SELECT COUNT(*) FROM contact_state WHERE tenant = ? AND deleted = FALSE`, &h.ContactsSynced},
		{"list members", `SELECT COUNT(DISTINCT e.email) FROM contact_emails e WHERE e.tenant = ? AND NOT EXISTS
			(SELECT 1 FROM refusals r WHERE r.tenant = e.tenant AND r.email = e.email AND r.source = 'unisender')`, &h.ListMembers},
		{"pending invitations", `SELECT COUNT(*) FROM invitations WHERE tenant = ? AND status = 'pending'`, &h.InvitationsPending},
		{"dead letters", `SELECT COUNT(*) FROM dead_letters WHERE tenant = ? AND requeued_at IS NULL`, &h.DeadLetters},
		{"last applied", `SELECT MAX(synced_at) FROM contact_state WHERE tenant = ?`, &last},
	}
	for _, c := range counts {
		if err := s.db.QueryRowContext(ctx, c.query, tenant).Scan(c.dest); err != nil {
			return Health{}, fmt.Errorf("store: health of %s: %s: %w", tenant, c.what, err)
		}
	}
	h.LastAppliedAt = last.Time
	if err := s.refusalCounts(ctx, tenant, h.Refused, h.Excluded); err != nil {
		return Health{}, err
	}
	return h, s.latencyQuantiles(ctx, tenant, &h)
}

func (s *Store) refusalCounts(ctx context.Context, tenant string, refused, excluded map[string]int64) error {
	rows, err := s.db.QueryContext(ctx, `SELECT source, reason, COUNT(*) FROM refusals
		WHERE tenant = ? GROUP BY source, reason`, tenant)
	if err != nil {
		return fmt.Errorf("store: count refusals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var source, reason string
		var n int64
		if err := rows.Scan(&source, &reason, &n); err != nil {
			return err
		}
		if source == RefusalUnisender {
			refused[reason] += n
		} else {
			excluded[reason] += n
		}
	}
	return rows.Err()
}

// RecordSyncLatencies records how long jobs of the tenant took from receipt
// to applied, and prunes the tenant's samples older than LatencyWindow.
func (s *Store) RecordSyncLatencies(ctx context.Context, tenant string, latencies []time.Duration) error {
	if err := checkTenant(tenant); err != nil || len(latencies) == 0 {
		return err
	}
	at := now()
	if err := insertLatencies(ctx, s.db, tenant, at, latencies); err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sync_latency WHERE tenant = ? AND applied_at < ?`,
		tenant, at.Add(-LatencyWindow)); err != nil {
		return fmt.Errorf("store: prune sync latencies: %w", err)
	}
	return nil
}

func insertLatencies(ctx context.Context, q querier, tenant string, at time.Time, latencies []time.Duration) error {
	for chunk := range slices.Chunk(latencies, maxRowsPerStatement) {
		args := make([]any, 0, 3*len(chunk))
		for _, d := range chunk {
			args = append(args, tenant, at, max(d, 0).Milliseconds())
		}
		query := `INSERT INTO sync_latency (tenant, applied_at, latency_ms) VALUES ` + placeholders("(?, ?, ?)", len(chunk))
		if _, err := q.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("store: record sync latencies: %w", err)
		}
	}
	return nil
}

// latencyQuantiles fills the p50 and p99 of the tenant's samples of the
// last LatencyWindow (nearest rank).
func (s *Store) latencyQuantiles(ctx context.Context, tenant string, h *Health) error {
	since := now().Add(-LatencyWindow)
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sync_latency WHERE tenant = ? AND applied_at >= ?`,
		tenant, since).Scan(&h.LatencySamples); err != nil {
		return fmt.Errorf("store: count sync latencies: %w", err)
	}
	if h.LatencySamples == 0 {
		return nil
	}
	for _, q := range []struct {
		rank float64
		dest *time.Duration
	}{{0.50, &h.LatencyP50}, {0.99, &h.LatencyP99}} {
		offset := max(int64(q.rank*float64(h.LatencySamples)+0.999999)-1, 0)
		var ms int64
		if err := s.db.QueryRowContext(ctx, `SELECT latency_ms FROM sync_latency WHERE tenant = ? AND applied_at >= ?
			ORDER BY latency_ms LIMIT 1 OFFSET ?`, tenant, since, offset).Scan(&ms); err != nil {
			return fmt.Errorf("store: sync latency quantile: %w", err)
		}
		*q.dest = time.Duration(ms) * time.Millisecond
	}
	return nil
}
