package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
)

// Where a refusal comes from (the refusals table's source column).
const (
	// RefusalUnisender: Unisender refused the address in an import's
	// per-row log; Reason is its log code.
	RefusalUnisender = "unisender"
	// RefusalSkipped: the sync left the contact out; Reason says why.
	RefusalSkipped = "skipped"
)

// Reasons of skipped contacts.
const (
	ReasonNoEmail = "no_email" // a contact with no address to sync
	ReasonCompany = "company"  // companies are not synced
)

// MaxRefusalsPerTenant bounds the refusals kept per tenant: past it, the
// oldest are pruned.
const MaxRefusalsPerTenant = 10000

const (
	maxRefusalReasonLen  = 64
	maxRefusalMessageLen = 500
)

// Refusal is one record the sync could not bring into the tenant's list.
type Refusal struct {
	ContactID  int64     `json:"contactID"`
	Email      string    `json:"email,omitempty"`
	Source     string    `json:"source"`
	Reason     string    `json:"reason"`
	Message    string    `json:"message,omitempty"`
	RecordedAt time.Time `json:"recordedAt"`
}

// ReplaceRefusals replaces the refusals of the contacts a commit applied
// (contactIDs) with what that commit found (refusals, each naming one of
// them): a contact fixed in Kommo leaves the table, one still refused
// keeps a row with the latest reason. The tenant's oldest rows past
// MaxRefusalsPerTenant are pruned.
func (t *Tx) ReplaceRefusals(ctx context.Context, tenant string, contactIDs []int64, refusals []Refusal) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	if err := clearRefusals(ctx, t.tx, tenant, contactIDs); err != nil {
		return err
	}
	if len(refusals) == 0 {
		return nil
	}
	if err := insertRefusals(ctx, t.tx, tenant, refusals); err != nil {
		return err
	}
	return pruneRefusals(ctx, t.tx, tenant)
}

func clearRefusals(ctx context.Context, q querier, tenant string, contactIDs []int64) error {
	for chunk := range slices.Chunk(contactIDs, maxRowsPerStatement) {
		args := append([]any{tenant}, int64Args(chunk)...)
		query := `DELETE FROM refusals WHERE tenant = ? AND contact_id IN (` + placeholders("?", len(chunk)) + `)`
		if _, err := q.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("store: clear refusals: %w", err)
		}
	}
	return nil
}

// insertRefusals adds rows for contacts whose rows were just cleared; a
// contact and address named twice keeps its first reason (the no-op update).
func insertRefusals(ctx context.Context, q querier, tenant string, refusals []Refusal) error {
	at := now()
	for chunk := range slices.Chunk(refusals, maxRowsPerStatement) {
		args := make([]any, 0, 7*len(chunk))
		for _, r := range chunk {
			args = append(args, tenant, r.ContactID, emailaddr.Normalize(r.Email), r.Source,
				RefusalReason(r.Reason), truncateRunes(r.Message, maxRefusalMessageLen), at)
		}
		_, err := q.ExecContext(ctx, `INSERT INTO refusals
			(tenant, contact_id, email, source, reason, message, recorded_at) VALUES `+
			placeholders("(?, ?, ?, ?, ?, ?, ?)", len(chunk))+`
			ON DUPLICATE KEY UPDATE recorded_at = recorded_at`, args...)
		if err != nil {
			return fmt.Errorf("store: record %d refusals: %w", len(chunk), err)
		}
	}
	return nil
}

// pruneRefusals deletes the tenant's rows older than its newest
// MaxRefusalsPerTenant.
func pruneRefusals(ctx context.Context, q querier, tenant string) error {
	var cutoff uint64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MIN(id), 0) FROM (SELECT id FROM refusals
		WHERE tenant = ? ORDER BY id DESC LIMIT ?) AS newest`, tenant, MaxRefusalsPerTenant).Scan(&cutoff)
	if err != nil {
		return fmt.Errorf("store: prune refusals: %w", err)
	}
	if _, err := q.ExecContext(ctx, `DELETE FROM refusals WHERE tenant = ? AND id < ?`, tenant, cutoff); err != nil {
		return fmt.Errorf("store: prune refusals: %w", err)
	}
	return nil
}

// RefusalReason is the form in which a reason is kept: Unisender's codes
// arrive from outside, so anything but a short code of lower-case letters,
// digits and underscores becomes "other", and nothing "unknown".
func RefusalReason(code string) string {
	code = strings.ToLower(strings.TrimSpace(code))
	switch {
	case code == "":
		return "unknown"
	case len(code) > maxRefusalReasonLen || strings.Trim(code, "abcdefghijklmnopqrstuvwxyz0123456789_") != "":
		return "other"
	}
	return code
}

// RefusedAmong returns which of emails Unisender refused for the tenant:
// they are not in its list, so they must not be sent to leave it.
func (t *Tx) RefusedAmong(ctx context.Context, tenant string, emails []string) (map[string]bool, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	return refusedEmails(ctx, t.tx, tenant, emails)
}

func refusedEmails(ctx context.Context, q querier, tenant string, emails []string) (map[string]bool, error) {
	refused := map[string]bool{}
	for chunk := range slices.Chunk(emails, maxRowsPerStatement) {
		args := []any{tenant, RefusalUnisender}
		for _, e := range chunk {
			args = append(args, emailaddr.Normalize(e))
		}
		query := `SELECT DISTINCT email FROM refusals WHERE tenant = ? AND source = ? AND email IN (` +
			placeholders("?", len(chunk)) + `)`
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("store: refused addresses: %w", err)
		}
		for rows.Next() {
			var e string
			if err := rows.Scan(&e); err != nil {
				rows.Close()
				return nil, err
			}
			refused[e] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return refused, nil
}

// RefusalFilter selects refusals to list.
type RefusalFilter struct {
	Tenant string
	Reason string // "" for every reason
	Limit  int    // at most this many, newest first; 0 means MaxRefusalsPerTenant
}

// ListRefusals returns a tenant's refusals, newest first.
func (s *Store) ListRefusals(ctx context.Context, f RefusalFilter) ([]Refusal, error) {
	if err := checkTenant(f.Tenant); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = MaxRefusalsPerTenant
	}
	query := `SELECT contact_id, email, source, reason, message, recorded_at FROM refusals WHERE tenant = ?`
	args := []any{f.Tenant}
	if f.Reason != "" {
		query += ` AND reason = ?`
		args = append(args, f.Reason)
	}
	rows, err := s.db.QueryContext(ctx, query+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: list refusals: %w", err)
	}
	defer rows.Close()
	var out []Refusal
	for rows.Next() {
		var r Refusal
		if err := rows.Scan(&r.ContactID, &r.Email, &r.Source, &r.Reason, &r.Message, &r.RecordedAt); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
