package store

import (
	"context"
	"fmt"
)

// What the UnisenderBinding reconciler needs when a binding goes away (or
// switches to another list): the addresses it synced, and dropping every row
// of the tenant. Written by the importer/binding helper (issue #4).

// deleteChunk bounds the rows one DELETE statement removes, so that dropping
// a large tenant never holds one huge transaction and its locks.
const deleteChunk = 10_000

// TenantEmails returns up to limit distinct addresses held by the tenant's
// live contacts, in ascending order, starting after the address after
// ("" for the first page). Page through them by passing the last address
// returned; an empty result means there are no more.
func (s *Store) TenantEmails(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("store: tenant e-mails: limit %d, want a positive page size", limit)
	}
	// Addresses Unisender refused are not in the list: leave them out.
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT e.email FROM contact_emails e
		WHERE e.tenant = ? AND e.email > ? AND NOT EXISTS (SELECT 1 FROM refusals r
			WHERE r.tenant = e.tenant AND r.email = e.email AND r.source = 'unisender')
		ORDER BY e.email LIMIT ?`, tenant, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: tenant e-mails: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, fmt.Errorf("store: tenant e-mails: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// DeleteTenant removes everything the store keeps for the tenant — contact
// state, the e-mail map, the lead links, the import checkpoint and
// invitations — in chunks of deleteChunk rows. Dead letters stay: they are the operators'
// record of what failed. Deleting a tenant that has no rows is not an
// error, and a failure part-way leaves a state that a repeated call
// finishes.
func (s *Store) DeleteTenant(ctx context.Context, tenant string) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	for _, table := range []string{"contact_emails", "contact_leads", "contact_state", "import_checkpoints", "invitations"} {
		for {
			res, err := s.db.ExecContext(ctx, `DELETE FROM `+table+` WHERE tenant = ? LIMIT ?`, tenant, deleteChunk) //nolint:gosec // table comes from the constant list above
			if err != nil {
				return fmt.Errorf("store: delete tenant rows from %s: %w", table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("store: delete tenant rows from %s: %w", table, err)
			}
			if n < deleteChunk {
				break
			}
		}
	}
	return nil
}
