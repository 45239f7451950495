package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// SegmentCounts are the figures a binding shows of its selector.
type SegmentCounts struct {
	Matching int64 // live contacts that match the selector
	InList   int64 // distinct addresses those contacts hold: the list's members
}

// CountSegment returns how many of the tenant's live contacts match its
// selector and how many addresses they hold.
func (s *Store) CountSegment(ctx context.Context, tenant string) (SegmentCounts, error) {
	if err := checkTenant(tenant); err != nil {
		return SegmentCounts{}, err
	}
	var n SegmentCounts
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM contact_state
		WHERE tenant = ? AND deleted = FALSE AND outside_segment = FALSE`, tenant).Scan(&n.Matching)
	if err != nil {
		return SegmentCounts{}, fmt.Errorf("store: counting matching contacts: %w", err)
	}
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(DISTINCT email) FROM contact_emails WHERE tenant = ?`, tenant).Scan(&n.InList)
	if err != nil {
		return SegmentCounts{}, fmt.Errorf("store: counting the list's addresses: %w", err)
	}
	return n, nil
}

// SetContactLeads records the leads each of the contacts has as just read
// from Kommo (leads[id]; a contact with none has no entry or an empty one),
// replacing what was recorded for them.
func (t *Tx) SetContactLeads(ctx context.Context, tenant string, leads map[int64][]int64) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	return setContactLeads(ctx, t.tx, tenant, leads)
}

func setContactLeads(ctx context.Context, q querier, tenant string, leads map[int64][]int64) error {
	ids := slices.Sorted(maps.Keys(leads))
	for chunk := range slices.Chunk(ids, maxRowsPerStatement) {
		args := append([]any{tenant}, int64Args(chunk)...)
		query := `DELETE FROM contact_leads WHERE tenant = ? AND contact_id IN (` + placeholders("?", len(chunk)) + `)`
		if _, err := q.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("store: clear lead links: %w", err)
		}
	}
	var rows []any
	for _, c := range ids {
		for _, l := range leads[c] {
			rows = append(rows, tenant, l, c)
		}
	}
	for chunk := range slices.Chunk(rows, 3*maxRowsPerStatement) {
		query := `INSERT INTO contact_leads (tenant, lead_id, contact_id) VALUES ` +
			placeholders("(?, ?, ?)", len(chunk)/3) + ` ON DUPLICATE KEY UPDATE lead_id = lead_id`
		if _, err := q.ExecContext(ctx, query, chunk...); err != nil {
			return fmt.Errorf("store: record lead links: %w", err)
		}
	}
	return nil
}

// ContactsOfLeads returns the ids of the contacts recorded as having any of
// the leads, in ascending order.
func (s *Store) ContactsOfLeads(ctx context.Context, tenant string, leadIDs []int64) ([]int64, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	var out []int64
	for chunk := range slices.Chunk(leadIDs, maxRowsPerStatement) {
		args := append([]any{tenant}, int64Args(chunk)...)
		ids, err := s.contactIDs(ctx, "contacts of leads", `SELECT DISTINCT contact_id FROM contact_leads
			WHERE tenant = ? AND lead_id IN (`+placeholders("?", len(chunk))+`)`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, ids...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
