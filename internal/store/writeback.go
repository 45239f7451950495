package store

import (
	"context"
	"fmt"
	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
	"slices"
	"time"
)

// WriteBackMark is what the write-back last wrote to Kommo for one address
// (the writeback_marks table): the outcome shown ("" once cleared) and
// when Unisender saw it.
type WriteBackMark struct {
	Email   string
	Outcome string
	EventAt time.Time
}

// WriteBackMarks returns the marks of the given addresses that the tenant
// has, by normalized address.
func (s *Store) WriteBackMarks(ctx context.Context, tenant string, emails []string) (map[string]WriteBackMark, error) {
	if err := checkTenant(tenant); err != nil {
		return nil, err
	}
	out := map[string]WriteBackMark{}
	for chunk := range slices.Chunk(emails, maxRowsPerStatement) {
		args := []any{tenant}
		for _, e := range chunk {
			args = append(args, emailaddr.Normalize(e))
		}
		err := s.readMarks(ctx, out, `SELECT email, outcome, event_at FROM writeback_marks
			WHERE tenant = ? AND email IN (`+placeholders("?", len(chunk))+`)`, args...)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) readMarks(ctx context.Context, out map[string]WriteBackMark, query string, args ...any) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("store: read write-back marks: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var m WriteBackMark
		if err := rows.Scan(&m.Email, &m.Outcome, &m.EventAt); err != nil {
			return fmt.Errorf("store: read write-back marks: %w", err)
		}
		m.EventAt = m.EventAt.UTC()
		out[m.Email] = m
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read write-back marks: %w", err)
	}
	return nil
}

// RecordWriteBack records what was written to Kommo for each address,
// replacing the addresses' earlier marks.
func (s *Store) RecordWriteBack(ctx context.Context, tenant string, marks []WriteBackMark) error {
	if err := checkTenant(tenant); err != nil {
		return err
	}
	at := now()
	for chunk := range slices.Chunk(marks, maxRowsPerStatement) {
		args := make([]any, 0, 5*len(chunk))
		for _, m := range chunk {
			args = append(args, tenant, emailaddr.Normalize(m.Email), m.Outcome, m.EventAt.UTC().Truncate(time.Microsecond), at)
		}
		// Only placeholders are concatenated; every value is bound.
		query := `INSERT INTO writeback_marks (tenant, email, outcome, event_at, written_at) VALUES ` + //nolint:gosec // placeholders only
			placeholders("(?, ?, ?, ?, ?)", len(chunk)) +
			` ON DUPLICATE KEY UPDATE outcome = VALUES(outcome), event_at = VALUES(event_at), written_at = VALUES(written_at)`
		if _, err := s.db.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("store: record write-back marks: %w", err)
		}
	}
	return nil
}
