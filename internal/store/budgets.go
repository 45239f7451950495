package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// maxBucketLen is the call_budgets.bucket column width.
const maxBucketLen = 64

// nowMillis is the database's clock in milliseconds. Every replica reads
// the same clock, so their pods' clocks need not agree.
const nowMillis = `CAST(UNIX_TIMESTAMP(NOW(3)) * 1000 AS SIGNED)`

// TakeCall takes one call from the shared budget bucket, which allows one
// call per interval with no burst (so no window of any length holds more
// than its share). It returns 0 when the call was taken, otherwise how long
// until the budget's next call; nothing is taken then. Every replica of
// the worker draws from the same row, so the budget holds across them.
func (s *Store) TakeCall(ctx context.Context, bucket string, interval time.Duration) (time.Duration, error) {
	if bucket == "" || len(bucket) > maxBucketLen {
		return 0, fmt.Errorf("store: call budget name %q is empty or longer than %d bytes", bucket, maxBucketLen)
	}
	for range 3 { // the budget can come due between the statements
		res, err := s.db.ExecContext(ctx, `UPDATE call_budgets SET next_at_ms = `+nowMillis+` + ?
			WHERE bucket = ? AND next_at_ms <= `+nowMillis, interval.Milliseconds(), bucket)
		if err != nil {
			return 0, fmt.Errorf("store: taking a call from a budget: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return 0, err
		}
		var waitMillis int64
		err = s.db.QueryRowContext(ctx, `SELECT next_at_ms - `+nowMillis+` FROM call_budgets WHERE bucket = ?`, bucket).Scan(&waitMillis)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := s.db.ExecContext(ctx, `INSERT IGNORE INTO call_budgets (bucket, next_at_ms) VALUES (?, 0)`, bucket); err != nil {
				return 0, fmt.Errorf("store: creating a call budget: %w", err)
			}
		case err != nil:
			return 0, fmt.Errorf("store: reading a call budget: %w", err)
		case waitMillis > 0:
			return time.Duration(waitMillis) * time.Millisecond, nil
		}
	}
	return interval, nil // other replicas keep taking the calls: try after one
}
