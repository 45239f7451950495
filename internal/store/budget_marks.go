package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A mark is a call_budgets row that takes no calls: its next_at_ms holds
// when a kind of call was last made (on the database's clock), so that
// other processes can see whether that kind has been quiet (internal/budget
// lets the background take every slot while the foreground is quiet).

// MarkCall records now as the bucket's last call.
func (s *Store) MarkCall(ctx context.Context, bucket string) error {
	if bucket == "" || len(bucket) > maxBucketLen {
		return fmt.Errorf("store: mark name %q is empty or longer than %d bytes", bucket, maxBucketLen)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO call_budgets (bucket, next_at_ms) VALUES (?, `+nowMillis+`)
		ON DUPLICATE KEY UPDATE next_at_ms = VALUES(next_at_ms)`, bucket)
	if err != nil {
		return fmt.Errorf("store: marking a call: %w", err)
	}
	return nil
}

// SinceMark is the time since the bucket's last MarkCall; marked is false
// when it was never marked.
func (s *Store) SinceMark(ctx context.Context, bucket string) (since time.Duration, marked bool, err error) {
	var ms int64
	err = s.db.QueryRowContext(ctx, `SELECT `+nowMillis+` - next_at_ms FROM call_budgets WHERE bucket = ?`, bucket).Scan(&ms)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("store: reading a mark: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, true, nil
}
