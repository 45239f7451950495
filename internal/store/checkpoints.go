package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Checkpoint is the progress of a tenant's initial import (or resync run),
// saved after every finished page so that a restarted manager resumes from
// NextURL instead of re-sending finished pages.
type Checkpoint struct {
	Tenant      string
	RunID       string // identifies the run; a new run starts from scratch
	LastPage    int    // last page fully imported
	NextURL     string // Kommo's next-page link; "" when there is none
	Imported    int64  // contacts imported so far
	Total       int64  // contacts expected, when known
	UpdatedFrom int64  // filter[updated_at][from] of the run (Unix seconds)
	Status      string // the caller's phase name, e.g. "Running", "Done"
	UpdatedAt   time.Time
}

// GetCheckpoint returns the tenant's checkpoint, or ErrNotFound.
func (s *Store) GetCheckpoint(ctx context.Context, tenant string) (Checkpoint, error) {
	if err := checkTenant(tenant); err != nil {
		return Checkpoint{}, err
	}
	c := Checkpoint{Tenant: tenant}
	var next sql.NullString
	err := s.db.QueryRowContext(ctx, `
		SELECT run_id, last_page, next_url, imported, total, updated_from, status, updated_at
		FROM import_checkpoints WHERE tenant = ?`, tenant).
		Scan(&c.RunID, &c.LastPage, &next, &c.Imported, &c.Total, &c.UpdatedFrom, &c.Status, &c.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, ErrNotFound
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("store: get checkpoint: %w", err)
	}
	c.NextURL = next.String
	return c, nil
}

// SaveCheckpoint stores c as the tenant's checkpoint, replacing any previous
// one; saving the same checkpoint twice leaves the same row. UpdatedAt is
// set by the store. The manager is leader-elected, so there is one writer
// per tenant and the last save wins.
func (s *Store) SaveCheckpoint(ctx context.Context, c Checkpoint) error {
	if err := checkTenant(c.Tenant); err != nil {
		return err
	}
	next := sql.NullString{String: c.NextURL, Valid: c.NextURL != ""}
	at := now()
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO import_checkpoints
			(tenant, run_id, last_page, next_url, imported, total, updated_from, status, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE
			run_id = ?, last_page = ?, next_url = ?, imported = ?, total = ?,
			updated_from = ?, status = ?, updated_at = ?`,
		c.Tenant, c.RunID, c.LastPage, next, c.Imported, c.Total, c.UpdatedFrom, c.Status, at,
		c.RunID, c.LastPage, next, c.Imported, c.Total, c.UpdatedFrom, c.Status, at)
	if err != nil {
		return fmt.Errorf("store: save checkpoint: %w", err)
	}
	return nil
}
