package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// maxEventKeyLen is the event_key column width; longer keys are hashed.
const maxEventKeyLen = 191

// pruneBatch bounds each DELETE of PruneProcessed so that it never holds
// locks on a large range for long.
const pruneBatch = 5000

// MarkProcessed records that the tenant's event key has been processed and
// reports whether this is the first time. Use Tx.MarkProcessed to make the
// mark part of the transaction that applies the event's effect, so that a
// rolled-back effect leaves the event unmarked.
func (s *Store) MarkProcessed(ctx context.Context, tenant, key string) (firstTime bool, err error) {
	return markProcessed(ctx, s.db, tenant, key)
}

// MarkProcessed is Store.MarkProcessed inside the transaction. A concurrent
// transaction marking the same key waits for this one and then sees false.
func (t *Tx) MarkProcessed(ctx context.Context, tenant, key string) (firstTime bool, err error) {
	return markProcessed(ctx, t.tx, tenant, key)
}

func markProcessed(ctx context.Context, q querier, tenant, key string) (bool, error) {
	if err := checkTenant(tenant); err != nil {
		return false, err
	}
	if key == "" {
		return false, fmt.Errorf("store: empty event key")
	}
	// A plain INSERT, rather than an upsert, tells first from repeat without
	// relying on affected-row counts; a duplicate-key error rolls back only
	// the statement, not the surrounding transaction.
	_, err := q.ExecContext(ctx, `INSERT INTO processed_events (tenant, event_key, processed_at)
		VALUES (?, ?, ?)`, tenant, eventKey(key), now())
	if isDuplicateKey(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: mark event processed: %w", err)
	}
	return true, nil
}

// eventKey fits a key into the column: keys longer than it are replaced by
// their SHA-256 (with a "sha256:" prefix).
func eventKey(key string) string {
	if len(key) <= maxEventKeyLen {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PruneProcessed deletes the de-duplication marks made before the cutoff and
// returns how many it deleted. Run it periodically with a cutoff older than
// any redelivery can be (beanstalkd delays, dead-letter requeues).
func (s *Store) PruneProcessed(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, `DELETE FROM processed_events
			WHERE processed_at < ? LIMIT ?`, before.UTC(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("store: prune processed events: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: prune processed events: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
