package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrationFiles holds the schema, one goose SQL file per version. Each file
// carries a single DDL statement: MySQL commits DDL implicitly, so a file
// with several would be left half-applied by a failure in the middle.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockWait bounds how long a replica waits for another one's
// migration. It is generous because a migration that rebuilds a large table
// can take minutes, and a replica that gives up just restarts and waits again.
const migrateLockWait = 5 * time.Minute

// Migrate brings the schema to the latest version embedded in the binary.
// Replicas that start together are safe: the migrations run under a
// MySQL named lock (GET_LOCK) held by the migrating session, so one replica
// applies them and the others wait, then find nothing left to do. The lock
// is released by the server if the holder dies.
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// MigrationInfo describes one embedded migration and whether the database
// has it.
type MigrationInfo struct {
	Version   int64
	Name      string // file name, e.g. "00001_import_checkpoints.sql"
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// MigrationStatus lists the embedded migrations in version order with their
// state in the database. It takes no lock.
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationInfo, error) {
	p, err := s.provider()
	if err != nil {
		return nil, err
	}
	status, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migration status: %w", err)
	}
	out := make([]MigrationInfo, 0, len(status))
	for _, st := range status {
		out = append(out, MigrationInfo{
			Version:   st.Source.Version,
			Name:      path.Base(st.Source.Path),
			Applied:   st.State == goose.StateApplied,
			AppliedAt: st.AppliedAt,
		})
	}
	return out, nil
}

// SchemaVersion returns the version the database is at and the latest one
// embedded in the binary; they are equal after a successful Migrate.
func (s *Store) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := s.provider()
	if err != nil {
		return 0, 0, err
	}
	current, latest, err = p.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: schema version: %w", err)
	}
	return current, latest, nil
}

func (s *Store) provider() (*goose.Provider, error) {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(goose.DialectMySQL, s.db, files,
		goose.WithSessionLocker(namedLock{wait: migrateLockWait}),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, fmt.Errorf("store: load migrations: %w", err)
	}
	return p, nil
}

// namedLock is a goose SessionLocker on MySQL's GET_LOCK, which both MySQL 8
// and MariaDB provide. goose v3.30 ships a session locker for Postgres only
// and a lease-based table locker for MySQL; a named lock is simpler and is
// dropped by the server the moment its session dies, so a crashed replica
// never leaves the others waiting for a lease to expire.
type namedLock struct {
	wait time.Duration
}

var _ lock.SessionLocker = namedLock{}

// lockName is per database, so that installations (or test databases)
// sharing a server do not wait for each other. MySQL caps names at 64
// characters, hence the hash of the database name.
func lockName(ctx context.Context, conn *sql.Conn) (string, error) {
	var db sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db); err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(db.String))
	return "kommo_unisender_migrate:" + hex.EncodeToString(sum[:8]), nil
}

// SessionLock polls GET_LOCK with a one-second server-side wait, so that a
// cancelled ctx is noticed within a second.
func (l namedLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	name, err := lockName(ctx, conn)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	deadline := time.Now().Add(l.wait)
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 1)", name).Scan(&got); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if got.Valid && got.Int64 == 1 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("migration lock: another replica has been migrating for over %v", l.wait)
		}
	}
}

// SessionUnlock releases the lock taken by SessionLock on the same session.
func (l namedLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	name, err := lockName(ctx, conn)
	if err != nil {
		return fmt.Errorf("migration unlock: %w", err)
	}
	var released sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&released); err != nil {
		return fmt.Errorf("migration unlock: %w", err)
	}
	if !released.Valid || released.Int64 != 1 {
		return errors.New("migration unlock: this session did not hold the lock")
	}
	return nil
}
