package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// DeadLetter is a job the worker gave up on, kept for inspection and
// re-enqueueing.
type DeadLetter struct {
	ID            int64
	Tenant        string // "" when the job could not be decoded
	Tube          string
	JobID         uint64 // beanstalkd id of the buried job
	Body          []byte
	Reason        string
	Attempts      int
	FirstFailedAt time.Time
	BuriedAt      time.Time  // set by the store
	RequeuedAt    *time.Time // nil until MarkRequeued
	RequeuedJobID uint64     // the id of the job put back, when requeued
}

// maxReasonLen keeps a runaway error message from filling the table.
const maxReasonLen = 8 << 10

// RecordDeadLetter stores d and returns its id. Recording the same job
// (tube, job id and body) again updates the existing row's reason, attempts
// and burial time, and marks it pending again, so a worker that crashed
// between recording and burying does not leave two rows. FirstFailedAt
// defaults to now.
func (s *Store) RecordDeadLetter(ctx context.Context, d DeadLetter) (int64, error) {
	if d.Tenant != "" {
		if err := checkTenant(d.Tenant); err != nil {
			return 0, err
		}
	}
	if d.Tube == "" {
		return 0, errors.New("store: dead letter without a tube")
	}
	at := now()
	if d.FirstFailedAt.IsZero() {
		d.FirstFailedAt = at
	}
	reason := strings.ToValidUTF8(truncate.Text(d.Reason, maxReasonLen), "?")
	sum := sha256.Sum256(d.Body)
	body := d.Body
	if body == nil {
		body = []byte{}
	}
	// LAST_INSERT_ID(id) makes the driver report the existing row's id when
	// the insert turns into an update.
	res, err := s.db.ExecContext(ctx, `
		INSERT INTO dead_letters
			(tenant, tube, job_id, body_sha256, body, reason, attempts, first_failed_at, buried_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE
			id = LAST_INSERT_ID(id), reason = ?, attempts = ?, buried_at = ?,
			requeued_at = NULL, requeued_job_id = NULL`,
		d.Tenant, d.Tube, d.JobID, sum[:], body, reason, d.Attempts, d.FirstFailedAt.UTC(), at,
		reason, d.Attempts, at)
	if err != nil {
		return 0, fmt.Errorf("store: record dead letter: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("store: record dead letter: %w", err)
	}
	return id, nil
}

// DeadLetterFilter selects dead letters for ListDeadLetters.
type DeadLetterFilter struct {
	Tenant      string // "" for every tenant
	OnlyPending bool   // skip those already requeued
	AfterID     int64  // for paging: only ids greater than this
	Limit       int    // at most this many; 0 means 100
}

const defaultDeadLetterLimit = 100

const deadLetterColumns = `id, tenant, tube, job_id, body, reason, attempts,
	first_failed_at, buried_at, requeued_at, requeued_job_id`

// ListDeadLetters returns the dead letters matching f, oldest first.
func (s *Store) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	query := `SELECT ` + deadLetterColumns + ` FROM dead_letters WHERE id > ?`
	args := []any{f.AfterID}
	if f.Tenant != "" {
		query += ` AND tenant = ?`
		args = append(args, f.Tenant)
	}
	if f.OnlyPending {
		query += ` AND requeued_at IS NULL`
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultDeadLetterLimit
	}
	query += ` ORDER BY id LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// GetDeadLetter returns one dead letter, or ErrNotFound.
func (s *Store) GetDeadLetter(ctx context.Context, id int64) (DeadLetter, error) {
	d, err := scanDeadLetter(s.db.QueryRowContext(ctx,
		`SELECT `+deadLetterColumns+` FROM dead_letters WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return DeadLetter{}, ErrNotFound
	}
	return d, err
}

func scanDeadLetter(r rowScanner) (DeadLetter, error) {
	var d DeadLetter
	var requeuedAt sql.NullTime
	var requeuedJob sql.NullInt64
	err := r.Scan(&d.ID, &d.Tenant, &d.Tube, &d.JobID, &d.Body, &d.Reason, &d.Attempts,
		&d.FirstFailedAt, &d.BuriedAt, &requeuedAt, &requeuedJob)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return DeadLetter{}, err
		}
		return DeadLetter{}, fmt.Errorf("store: read dead letter: %w", err)
	}
	if requeuedAt.Valid {
		t := requeuedAt.Time
		d.RequeuedAt = &t
	}
	d.RequeuedJobID = uint64(requeuedJob.Int64)
	return d, nil
}

// MarkRequeued records that dead letter id was put back on the queue as
// newJobID. Marking it again overwrites the earlier mark. ErrNotFound if
// there is no such dead letter.
func (s *Store) MarkRequeued(ctx context.Context, id int64, newJobID uint64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE dead_letters
		SET requeued_at = ?, requeued_job_id = ? WHERE id = ?`, now(), newJobID, id)
	if err != nil {
		return fmt.Errorf("store: mark dead letter requeued: %w", err)
	}
	// Without CLIENT_FOUND_ROWS an update that changes nothing reports 0
	// rows, but requeued_at always changes, so 0 means no such row.
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: mark dead letter requeued: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
