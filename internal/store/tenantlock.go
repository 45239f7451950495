package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
)

// TenantLock is a MySQL named lock (GET_LOCK) on one tenant, held by a
// connection taken out of the pool for as long as the lock is held. It
// serializes the work on a tenant across worker replicas: named locks
// belong to a session, so the server drops the lock the moment the session
// dies — a crashed worker never leaves the tenant locked.
//
// Each holder occupies one pooled connection besides the one its
// transaction uses, so a process should hold at most half of the pool's
// connections (maxOpenConns) as tenant locks at once.
type TenantLock struct {
	conn *sql.Conn
	name string
}

// maxLockNameLen is MySQL 8's limit on named-lock names.
const maxLockNameLen = 64

// TenantLockName is the lock name of a tenant in a database: "kus:", a
// short hash of the database name (named locks are server-wide, and
// installations or test databases sharing a server must not wait for each
// other), ":" and the tenant — or, when that is longer than MySQL allows,
// "#" and a hash of the tenant.
func TenantLockName(database, tenant string) string {
	db := sha256.Sum256([]byte(database))
	prefix := "kus:" + hex.EncodeToString(db[:4]) + ":"
	if name := prefix + tenant; len(name) <= maxLockNameLen {
		return name
	}
	sum := sha256.Sum256([]byte(tenant))
	name := prefix + "#" + hex.EncodeToString(sum[:])
	return name[:maxLockNameLen]
}

// LockTenant takes the tenant's lock, waiting up to wait for another
// session to release it (MySQL counts whole seconds: wait is rounded up;
// 0 does not wait). It returns ok=false, and no lock, when the tenant
// stayed locked by someone else. Release the lock with TenantLock.Release.
func (s *Store) LockTenant(ctx context.Context, tenant string, wait time.Duration) (lock *TenantLock, ok bool, err error) {
	if err := checkTenant(tenant); err != nil {
		return nil, false, err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("store: lock tenant: %w", err)
	}
	var database sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&database); err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("store: lock tenant: %w", err)
	}
	name := TenantLockName(database.String, tenant)
	seconds := int64(math.Ceil(max(wait, 0).Seconds()))
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, seconds).Scan(&got); err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("store: lock tenant: %w", err)
	}
	if !got.Valid || got.Int64 != 1 {
		// 0: timed out; NULL: an error such as the session being killed.
		_ = conn.Close()
		return nil, false, nil
	}
	return &TenantLock{conn: conn, name: name}, true, nil
}

// Release gives the lock up and returns the connection to the pool. If the
// lock cannot be released cleanly the connection is closed instead, which
// makes the server drop the lock: a pooled connection must never carry a
// lock to its next user.
func (l *TenantLock) Release(ctx context.Context) error {
	var released sql.NullInt64
	err := l.conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", l.name).Scan(&released)
	if err == nil && (!released.Valid || released.Int64 != 1) {
		err = errors.New("the session no longer held the lock")
	}
	if err != nil {
		discard(l.conn)
		return fmt.Errorf("store: release tenant lock: %w", err)
	}
	return l.conn.Close()
}

// discard closes conn's underlying connection rather than pooling it
// (database/sql drops a connection whose Raw callback reports ErrBadConn).
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
