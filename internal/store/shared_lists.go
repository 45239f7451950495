package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Bindings that share a Unisender list (spec.list.shared) are separate
// tenants here, each with its own contacts. An address one of them no
// longer holds leaves the list only when none of the others holds it
// either: the commit and the binding's cleanup ask HeldByAny.

// HeldByAny returns which of the addresses (normalised) a live contact of
// any of the tenants holds. It locks the entries and the gaps where they
// would be, as EmailHeld does, so that no tenant can take one up or drop it
// before this transaction commits.
func (t *Tx) HeldByAny(ctx context.Context, tenants, emails []string) (map[string]bool, error) {
	return heldByTenants(ctx, t.tx, tenants, emails, " FOR UPDATE")
}

// HeldByAny returns which of the addresses (normalised) a live contact of
// any of the tenants holds, without locking.
func (s *Store) HeldByAny(ctx context.Context, tenants, emails []string) (map[string]bool, error) {
	return heldByTenants(ctx, s.db, tenants, emails, "")
}

// heldByTenants looks the addresses up among the tenants' contacts, a
// chunk of addresses per statement; suffix ends the statement (a lock).
func heldByTenants(ctx context.Context, q querier, tenants, emails []string, suffix string) (map[string]bool, error) {
	held := map[string]bool{}
	if len(tenants) == 0 || len(emails) == 0 {
		return held, nil
	}
	for _, t := range tenants {
		if err := checkTenant(t); err != nil {
			return nil, err
		}
	}
	emails = sortedUnique(slices.Clone(emails))
	for chunk := range slices.Chunk(emails, maxRowsPerStatement) {
		args := make([]any, 0, len(tenants)+len(chunk))
		for _, t := range tenants {
			args = append(args, t)
		}
		for _, e := range chunk {
			args = append(args, e)
		}
		rows, err := q.QueryContext(ctx, `SELECT email FROM contact_emails WHERE tenant IN (`+
			placeholders("?", len(tenants))+`) AND email IN (`+placeholders("?", len(chunk))+`)`+suffix, args...)
		if err != nil {
			return nil, fmt.Errorf("store: look up held e-mails: %w", err)
		}
		for rows.Next() {
			var e string
			if err := rows.Scan(&e); err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: look up held e-mails: %w", err)
			}
			held[e] = true
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("store: look up held e-mails: %w", err)
		}
	}
	return held, nil
}
