// Package store is the operator's MySQL state: import checkpoints, the
// per-tenant contact map that the sync rules diff against, event
// de-duplication and dead letters. The schema is versioned with goose and
// embedded in the binary (see Migrate).
//
// Every statement is written to run unchanged on MySQL 8 and MariaDB 10.11:
// no RETURNING, no JSON column type (JSON lives in TEXT), no VALUES() in
// ON DUPLICATE KEY UPDATE (parameters are repeated instead), no
// MySQL-8-only FOR SHARE/SKIP LOCKED. The tests run against MariaDB only.
//
// A tenant is the "namespace/name" string of its UnisenderBinding
// (internal/tenant.Key.String()).
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// ErrNotFound is returned by the Get methods when no row matches.
var ErrNotFound = errors.New("store: not found")

// Pool sizes: the webhook server does not use the store, a worker runs a
// handful of reserving goroutines and the manager a few reconciles, so a
// small pool per process keeps a fleet of replicas well under MySQL's
// default max_connections (151).
const (
	maxOpenConns    = 16
	maxIdleConns    = 8
	connMaxLifetime = 5 * time.Minute
	connMaxIdleTime = time.Minute
	dialTimeout     = 5 * time.Second
)

// Store is a handle on the operator's database. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// Open connects to the database named in dsn (go-sql-driver syntax,
// "user:pass@tcp(host:3306)/db") and checks that it answers. It forces the
// settings the store relies on: parseTime, UTC for DATETIME values and the
// session time zone, and affected-rows (not found-rows) counting.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's message never echoes the DSN, so the password stays out.
		return nil, fmt.Errorf("store: parse MySQL DSN: %w", err)
	}
	if cfg.DBName == "" {
		return nil, errors.New("store: the MySQL DSN names no database")
	}
	cfg.ParseTime = true
	// Client-side interpolation saves a prepare/close round trip per
	// statement (about twice the throughput of the worker); safe with the
	// utf8mb4 connection charset.
	cfg.InterpolateParams = true
	cfg.Loc = time.UTC
	cfg.ClientFoundRows = false
	if cfg.Timeout == 0 {
		cfg.Timeout = dialTimeout
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxIdleConns)
	db.SetConnMaxLifetime(connMaxLifetime)
	db.SetConnMaxIdleTime(connMaxIdleTime)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to MySQL at %s: %w", cfg.Addr, err)
	}
	return &Store{db: db}, nil
}

// Close releases the connection pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers (for readiness probes).
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Tx is a transaction opened by InTx. Its methods are the store operations
// that may need to commit together with something else.
type Tx struct {
	tx *sql.Tx
}

// InTx runs fn in a transaction and commits it if fn returns nil; otherwise,
// or if fn panics, it rolls back. fn may do slow work, such as the Unisender
// call that an ApplyContact result asks for: committing only after that call
// succeeded means a crash or a failed call leaves the stored state as it was,
// so the retried job computes the same changes again. Row locks are held
// meanwhile, which costs nothing when jobs of one tenant are serialized.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	return s.inTx(ctx, nil, fn)
}

// InTenantTx is InTx at READ COMMITTED, for a caller that holds the
// tenant's lock and reads no other tenant's rows (its list is not
// shared). The tenant's lock already serializes its transactions, so the
// gap locks of REPEATABLE READ protect nothing there; and where a key the
// tenant lacks (a new contact, an address no contact holds) lies past the
// tenant's last row, its gap lock reaches into the next tenant's keys and
// holds that tenant's inserts for as long as this transaction waits on
// Unisender (issue 20: one tenant's slow Unisender stalled the others, and
// the workers saw deadlocks across tenants). READ COMMITTED locks the rows
// found and no gaps. (With MySQL's binlog, binlog_format must be ROW or
// MIXED for it, the defaults.)
func (s *Store) InTenantTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.inTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, fn)
}

func (s *Store) inTx(ctx context.Context, opts *sql.TxOptions, fn func(tx *Tx) error) (err error) {
	sqlTx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = sqlTx.Rollback()
			panic(p)
		}
	}()
	if err := fn(&Tx{tx: sqlTx}); err != nil {
		return errors.Join(err, ignoreDone(sqlTx.Rollback()))
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// IsTransient reports whether err is worth retrying later: the database is
// unreachable or restarting, the connection broke, or InnoDB chose this
// transaction as a deadlock victim or timed out waiting for a lock.
// Constraint violations, bad data and cancelled contexts are not transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1040, // too many connections
			1053, // server shutdown in progress
			1205, // lock wait timeout
			1213, // deadlock
			1927, // MariaDB: connection killed
			4031: // MySQL 8: disconnected by the server for inactivity
			return true
		}
	}
	return false
}

// maxTenantLen is the longest "namespace/name": a 63-byte DNS label, a
// slash and a 253-byte DNS subdomain. Tenant columns are ASCII, so a
// tenant is checked before it reaches them.
const maxTenantLen = 63 + 1 + 253

func checkTenant(tenant string) error {
	if tenant == "" || len(tenant) > maxTenantLen {
		return fmt.Errorf("store: invalid tenant %q: want a non-empty \"namespace/name\" of at most %d bytes", truncate.Text(tenant, 80), maxTenantLen)
	}
	for i := 0; i < len(tenant); i++ {
		if c := tenant[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("store: invalid tenant %q: only printable ASCII is allowed", truncate.Text(tenant, 80))
		}
	}
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// now is the store's clock: microseconds, as DATETIME(6) keeps them.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
