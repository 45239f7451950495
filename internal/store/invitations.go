package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
)

// Invitation statuses (the invitations table's status column).
const (
	InvitationPending = "pending" // to be sent at NextAttemptAt
	InvitationSent    = "sent"    // subscribe accepted; never sent again
	InvitationFailed  = "failed"  // refused for good (Reason says why); never retried
)

// maxInvitationReasonLen is the reason column's width, in characters.
const maxInvitationReasonLen = 500

// Invitation is one address's double opt-in invitation.
type Invitation struct {
	Email         string
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	Reason        string
	// Held and Name are filled by DueInvitations: whether a live contact
	// of the tenant still holds the address (so it is still meant to be in
	// the list), and the name of the first such contact.
	Held bool
	Name string
}

// QueueInvitations records a pending invitation for each address, due at
// once, in the transaction that records the sync that added them. An
// address that already has a row of the tenant — pending, sent or failed —
// is left as it is, so an address is invited at most once whatever
// batches are retried or workers race (the primary key decides). It
// returns how many invitations it added.
func (t *Tx) QueueInvitations(ctx context.Context, tenant string, emails []string) (int, error) {
	if err := checkTenant(tenant); err != nil {
		return 0, err
	}
	return insertInvitations(ctx, t.tx, tenant, sortedUnique(slices.Clone(emails)))
}

func insertInvitations(ctx context.Context, q querier, tenant string, emails []string) (int, error) {
	at := now()
	added := 0
	for chunk := range slices.Chunk(emails, maxRowsPerStatement) {
		args := make([]any, 0, 5*len(chunk))
		for _, e := range chunk {
			args = append(args, tenant, e, InvitationPending, at, at, at)
		}
		// The no-op update keeps an existing row untouched; with affected
		// rows (not found rows) counted, only inserts count.
		res, err := q.ExecContext(ctx, `INSERT INTO invitations
			(tenant, email, status, next_attempt_at, created_at, updated_at) VALUES `+
			placeholders("(?, ?, ?, ?, ?, ?)", len(chunk))+` ON DUPLICATE KEY UPDATE email = email`, args...)
		if err != nil {
			return added, fmt.Errorf("store: queue invitations: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return added, fmt.Errorf("store: queue invitations: %w", err)
		}
		added += int(n)
	}
	return added, nil
}

// InvitationTenants returns up to limit tenants that have pending
// invitations due at or before asOf, the longest-waiting first.
func (s *Store) InvitationTenants(ctx context.Context, asOf time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT tenant FROM invitations
		WHERE status = ? AND next_attempt_at <= ?
		GROUP BY tenant ORDER BY MIN(next_attempt_at), tenant LIMIT ?`, InvitationPending, asOf.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: tenants with due invitations: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("store: tenants with due invitations: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DueInvitations returns up to limit of the tenant's pending invitations due
// at or before asOf, oldest first, each with Held and Name set from the
// e-mail map.
func (s *Store) DueInvitations(ctx context.Context, tenant string, asOf time.Time, limit int) ([]Invitation, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT i.email, i.status, i.attempts, i.next_attempt_at, i.reason,
			(SELECT c.name FROM contact_emails e JOIN contact_state c
				ON c.tenant = e.tenant AND c.contact_id = e.contact_id
				WHERE e.tenant = i.tenant AND e.email = i.email AND c.deleted = FALSE
				ORDER BY e.contact_id LIMIT 1)
		FROM invitations i
		WHERE i.tenant = ? AND i.status = ? AND i.next_attempt_at <= ?
		ORDER BY i.next_attempt_at, i.email LIMIT ?`, tenant, InvitationPending, asOf.UTC(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: due invitations: %w", err)
	}
	defer rows.Close()
	var out []Invitation
	for rows.Next() {
		var inv Invitation
		var name sql.NullString
		if err := rows.Scan(&inv.Email, &inv.Status, &inv.Attempts, &inv.NextAttemptAt, &inv.Reason, &name); err != nil {
			return nil, fmt.Errorf("store: due invitations: %w", err)
		}
		inv.Held, inv.Name = name.Valid, name.String
		out = append(out, inv)
	}
	return out, rows.Err()
}

// GetInvitation returns the tenant's invitation of an address, or
// ErrNotFound. Held and Name are not set.
func (s *Store) GetInvitation(ctx context.Context, tenant, email string) (Invitation, error) {
	if err := checkTenant(tenant); err != nil {
		return Invitation{}, err
	}
	inv := Invitation{}
	err := s.db.QueryRowContext(ctx, `SELECT email, status, attempts, next_attempt_at, reason
		FROM invitations WHERE tenant = ? AND email = ?`, tenant, emailaddr.Normalize(email)).
		Scan(&inv.Email, &inv.Status, &inv.Attempts, &inv.NextAttemptAt, &inv.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return Invitation{}, ErrNotFound
	}
	if err != nil {
		return Invitation{}, fmt.Errorf("store: get invitation: %w", err)
	}
	return inv, nil
}

// InvitationCounts returns the number of the tenant's invitations per
// status.
func (s *Store) InvitationCounts(ctx context.Context, tenant string) (map[string]int64, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT status, COUNT(*) FROM invitations WHERE tenant = ? GROUP BY status`, tenant)
	if err != nil {
		return nil, fmt.Errorf("store: count invitations: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("store: count invitations: %w", err)
		}
		out[status] = n
	}
	return out, rows.Err()
}

// MarkInvitationSent records that subscribe accepted the invitation.
func (s *Store) MarkInvitationSent(ctx context.Context, tenant, email string) error {
	return s.updatePending(ctx, "mark invitation sent", `UPDATE invitations
		SET status = ?, reason = '', updated_at = ? WHERE tenant = ? AND email = ? AND status = ?`,
		InvitationSent, now(), tenant, email, InvitationPending)
}

// MarkInvitationFailed records that the invitation can never be sent, and
// why (no secret may be in reason; it is cut to the column's width).
func (s *Store) MarkInvitationFailed(ctx context.Context, tenant, email, reason string) error {
	return s.updatePending(ctx, "mark invitation failed", `UPDATE invitations
		SET status = ?, attempts = attempts + 1, reason = ?, updated_at = ? WHERE tenant = ? AND email = ? AND status = ?`,
		InvitationFailed, truncateRunes(reason, maxInvitationReasonLen), now(), tenant, email, InvitationPending)
}

// RetryInvitation counts a failed attempt and makes the invitation due
// again at the given time.
func (s *Store) RetryInvitation(ctx context.Context, tenant, email string, at time.Time, reason string) error {
	return s.updatePending(ctx, "retry invitation", `UPDATE invitations
		SET attempts = attempts + 1, next_attempt_at = ?, reason = ?, updated_at = ?
		WHERE tenant = ? AND email = ? AND status = ?`,
		at.UTC(), truncateRunes(reason, maxInvitationReasonLen), now(), tenant, email, InvitationPending)
}

// DeferInvitations makes every pending invitation of the tenant due no
// sooner than at, without counting an attempt (the tenant cannot send for
// now: key refused, binding not ready).
func (s *Store) DeferInvitations(ctx context.Context, tenant string, at time.Time) error {
	return s.updatePending(ctx, "defer invitations", `UPDATE invitations
		SET next_attempt_at = ?, updated_at = ? WHERE tenant = ? AND status = ? AND next_attempt_at < ?`,
		at.UTC(), now(), tenant, InvitationPending, at.UTC())
}

// DropInvitation deletes a pending invitation (its address left the list
// before it went out), so that the address counts as new if it comes back.
// It reports whether there was one.
func (s *Store) DropInvitation(ctx context.Context, tenant, email string) (bool, error) {
	if err := checkTenant(tenant); err != nil {
		return false, err
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM invitations WHERE tenant = ? AND email = ? AND status = ?`,
		tenant, email, InvitationPending)
	if err != nil {
		return false, fmt.Errorf("store: drop invitation: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// CancelInvitations deletes every pending invitation of the tenant (its
// binding no longer invites) and returns how many it deleted. Sent and
// failed ones stay as the record of what happened.
func (s *Store) CancelInvitations(ctx context.Context, tenant string) (int64, error) {
	if err := checkTenant(tenant); err != nil {
		return 0, err
	}
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM invitations WHERE tenant = ? AND status = ? LIMIT ?`,
			tenant, InvitationPending, deleteChunk)
		if err != nil {
			return total, fmt.Errorf("store: cancel invitations: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: cancel invitations: %w", err)
		}
		total += n
		if n < deleteChunk {
			return total, nil
		}
	}
}

func (s *Store) updatePending(ctx context.Context, what, query string, args ...any) error {
	if _, err := s.db.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// heldEmails returns which of the addresses some contact of the tenant
// holds.
func heldEmails(ctx context.Context, q querier, tenant string, emails []string) (map[string]bool, error) {
	return heldByTenants(ctx, q, []string{tenant}, emails, "")
}

// markNew fills NewEmails: the added addresses that no contact held before
// the batch (heldBefore).
func markNew(results []ApplyResult, heldBefore map[string]bool) {
	for i := range results {
		r := &results[i]
		r.NewEmails = nil
		for _, e := range r.AddedEmails {
			if !heldBefore[e] {
				r.NewEmails = append(r.NewEmails, e)
			}
		}
	}
}
