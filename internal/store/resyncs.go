package store

import (
	"context"
	"fmt"
	"time"
)

// ResyncRequest is a worker's request that the manager resync a tenant:
// DroppedJobs of its webhook jobs expired unapplied since the manager last
// took its requests.
type ResyncRequest struct {
	Tenant      string
	RequestedAt time.Time
	DroppedJobs int
}

// RequestResync records that the tenant needs a resync because dropped of
// its jobs expired; requests for one tenant add up until the manager takes
// them.
func (s *Store) RequestResync(ctx context.Context, tenant string, dropped int) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO resync_requests (tenant, requested_at, dropped_jobs)
		VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE requested_at = ?, dropped_jobs = dropped_jobs + ?`,
		tenant, now(), dropped, now(), dropped)
	if err != nil {
		return fmt.Errorf("store: requesting a resync: %w", err)
	}
	return nil
}

// ResyncRequests returns the pending requests, oldest first.
func (s *Store) ResyncRequests(ctx context.Context) ([]ResyncRequest, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT tenant, requested_at, dropped_jobs FROM resync_requests ORDER BY requested_at LIMIT 1000`)
	if err != nil {
		return nil, fmt.Errorf("store: reading resync requests: %w", err)
	}
	defer rows.Close()
	var out []ResyncRequest
	for rows.Next() {
		var r ResyncRequest
		if err := rows.Scan(&r.Tenant, &r.RequestedAt, &r.DroppedJobs); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DoneResyncRequest removes a request the manager acted on, unless a worker
// renewed it meanwhile (then it stays for the next round).
func (s *Store) DoneResyncRequest(ctx context.Context, r ResyncRequest) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM resync_requests WHERE tenant = ? AND requested_at = ?`, r.Tenant, r.RequestedAt)
	if err != nil {
		return fmt.Errorf("store: removing a resync request: %w", err)
	}
	return nil
}
