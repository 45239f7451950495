package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestTenantLockExcludesOtherSessions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	first, ok, err := s.LockTenant(ctx, tenantA, 0)
	if err != nil || !ok {
		t.Fatalf("first lock: ok=%v err=%v", ok, err)
	}
	if _, ok, err := s.LockTenant(ctx, tenantA, 0); err != nil || ok {
		t.Fatalf("second lock of a held tenant: ok=%v err=%v; want busy", ok, err)
	}
	other, ok, err := s.LockTenant(ctx, "acme/other", 0)
	if err != nil || !ok {
		t.Fatalf("another tenant: ok=%v err=%v; want it free", ok, err)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A waiter gets the lock as soon as the holder lets go.
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = first.Release(ctx)
	}()
	second, ok, err := s.LockTenant(ctx, tenantA, 5*time.Second)
	if err != nil || !ok {
		t.Fatalf("waiting lock: ok=%v err=%v; want it once released", ok, err)
	}
	if err := second.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := second.Release(ctx); err == nil {
		t.Fatal("releasing twice must fail: the connection went back to the pool")
	}
}

// Databases sharing a server do not share tenant locks.
func TestTenantLockIsPerDatabase(t *testing.T) {
	a, b := newStore(t), newStore(t)
	ctx := context.Background()
	la, ok, err := a.LockTenant(ctx, tenantA, 0)
	if err != nil || !ok {
		t.Fatalf("lock in the first database: ok=%v err=%v", ok, err)
	}
	defer func() { _ = la.Release(ctx) }()
	lb, ok, err := b.LockTenant(ctx, tenantA, 0)
	if err != nil || !ok {
		t.Fatalf("the same tenant in another database: ok=%v err=%v; want it free", ok, err)
	}
	_ = lb.Release(ctx)
}

// A lock whose session dies is freed by the server; a connection that could
// not release its lock is never handed to the next user of the pool.
func TestTenantLockDroppedWithItsSession(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	lock, ok, err := s.LockTenant(ctx, tenantA, 0)
	if err != nil || !ok {
		t.Fatalf("lock: ok=%v err=%v", ok, err)
	}
	discard(lock.conn)
	again, ok, err := s.LockTenant(ctx, tenantA, 2*time.Second)
	if err != nil || !ok {
		t.Fatalf("after the session died: ok=%v err=%v; want the lock free", ok, err)
	}
	_ = again.Release(ctx)
}

func TestTenantLockNameFitsMySQL(t *testing.T) {
	short := TenantLockName("operator", "acme/main")
	if !strings.HasPrefix(short, "kus:") || !strings.HasSuffix(short, ":acme/main") ||
		short == TenantLockName("staging", "acme/main") {
		t.Fatalf("short name = %q: want the tenant readable and the database told apart", short)
	}
	long := "ns/" + strings.Repeat("a", 250)
	name := TenantLockName("operator", long)
	if len(name) > maxLockNameLen || name == TenantLockName("operator", long+"b") {
		t.Fatalf("long name %q (%d bytes): want at most %d and distinct per tenant", name, len(name), maxLockNameLen)
	}
	s := newStore(t)
	lock, ok, err := s.LockTenant(context.Background(), long, 0)
	if err != nil || !ok {
		t.Fatalf("lock of a long tenant: ok=%v err=%v", ok, err)
	}
	_ = lock.Release(context.Background())
}
