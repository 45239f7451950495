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
// Replicas that start together are safe: the whole of it runs under a MySQL
// named lock (GET_LOCK) held by a session of its own, so one replica applies
// the migrations and the others wait, then find nothing left to do. The lock
// is released by the server if the holder dies.
//
// The lock is taken here rather than left to goose's session locker: goose
// checks for pending migrations before it locks, creating its version table
// on the way, and MySQL commits that CREATE TABLE at once while the zero
// version row it inserts commits later; a replica checking in between found
// the table without the row and failed with "missing zero version
// migration".
func (s *Store) Migrate(ctx context.Context) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()
	l := namedLock{wait: migrateLockWait}
	if err := l.SessionLock(ctx, conn); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer func() {
		err = errors.Join(err, l.SessionUnlock(context.WithoutCancel(ctx), conn))
	}()
	p, err := s.newProvider(false)
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

// provider is a goose provider that takes the migration lock itself.
func (s *Store) provider() (*goose.Provider, error) { return s.newProvider(true) }

// newProvider makes a goose provider of the embedded migrations; locked
// makes it take the migration lock (Migrate holds it already).
func (s *Store) newProvider(locked bool) (*goose.Provider, error) {
	files, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if locked {
		opts = append(opts, goose.WithSessionLocker(namedLock{wait: migrateLockWait}))
	}
	p, err := goose.NewProvider(goose.DialectMySQL, s.db, files, opts...)
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
