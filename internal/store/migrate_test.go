package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// newStore opens a store on a fresh database and migrates it.
func newStore(t *testing.T) *Store {
	t.Helper()
	s := openStore(t, testenv.MySQLDSN(t))
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var wantTables = []string{"call_budgets", "contact_emails", "contact_leads", "contact_state", "dead_letters", "import_checkpoints", "invitations", "refusals", "resync_requests", "sync_latency", "writeback_marks"}

func tablesOf(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.db.Query(`SELECT table_name FROM information_schema.tables
		WHERE table_schema = DATABASE() AND table_name <> 'goose_db_version' ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return names
}

// appliedCounts returns, per version, how many times goose recorded it.
func appliedCounts(t *testing.T, s *Store) map[int64]int {
	t.Helper()
	rows, err := s.db.Query(`SELECT version_id, COUNT(*) FROM goose_db_version
		WHERE version_id > 0 AND is_applied GROUP BY version_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[int64]int{}
	for rows.Next() {
		var v int64
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		counts[v] = n
	}
	return counts
}

func TestMigrateAppliesEveryVersionAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testenv.MySQLDSN(t))
	status, err := s.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(status) == 0 {
		t.Fatal("no embedded migrations")
	}
	for _, m := range status {
		if m.Applied {
			t.Fatalf("fresh database reports %s applied", m.Name)
		}
	}
	for range 2 {
		if err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	current, latest, err := s.SchemaVersion(ctx)
	if err != nil || current != latest || latest != status[len(status)-1].Version {
		t.Fatalf("SchemaVersion = %d, %d, %v; want both %d", current, latest, err, status[len(status)-1].Version)
	}
	if got := strings.Join(tablesOf(t, s), ","); got != strings.Join(wantTables, ",") {
		t.Fatalf("tables = %s; want %s", got, strings.Join(wantTables, ","))
	}
	for v, n := range appliedCounts(t, s) {
		if n != 1 {
			t.Errorf("version %d recorded %d times", v, n)
		}
	}
	status, err = s.MigrationStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range status {
		if !m.Applied || m.AppliedAt.IsZero() || !strings.HasSuffix(m.Name, ".sql") {
			t.Errorf("after Migrate: %+v", m)
		}
	}
}

// Replicas starting together each call Migrate; all must succeed and each
// migration must run once.
func TestConcurrentMigrateFromSeveralStores(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	const replicas = 4
	stores := make([]*Store, replicas)
	for i := range stores {
		stores[i] = openStore(t, dsn)
	}
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i, s := range stores {
		wg.Go(func() { errs[i] = s.Migrate(context.Background()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
	current, latest, err := stores[0].SchemaVersion(context.Background())
	if err != nil || current != latest {
		t.Fatalf("SchemaVersion = %d, %d, %v", current, latest, err)
	}
	counts := appliedCounts(t, stores[0])
	if int64(len(counts)) != latest {
		t.Errorf("versions recorded: %v; want 1..%d", counts, latest)
	}
	for v, n := range counts {
		if n != 1 {
			t.Errorf("version %d applied %d times", v, n)
		}
	}
}

// While another session holds the migration lock, Migrate waits rather than
// running alongside it.
func TestMigrateWaitsForTheLock(t *testing.T) {
	s := openStore(t, testenv.MySQLDSN(t))
	ctx := context.Background()
	holder, err := s.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	name, err := lockName(ctx, holder)
	if err != nil {
		t.Fatal(err)
	}
	var got int
	if err := holder.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", name).Scan(&got); err != nil || got != 1 {
		t.Fatalf("GET_LOCK = %d, %v", got, err)
	}
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if err := s.Migrate(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Migrate while locked = %v; want a deadline error", err)
	}
	if tables := tablesOf(t, s); len(tables) != 0 {
		t.Fatalf("tables created while another session held the lock: %v", tables)
	}
	if _, err := holder.ExecContext(ctx, "DO RELEASE_LOCK(?)", name); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate after release: %v", err)
	}
}

// Every Down migration is valid SQL and undoes its Up.
func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	p, err := s.provider()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	if tables := tablesOf(t, s); len(tables) != 0 {
		t.Fatalf("tables left after going down: %v", tables)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if got := strings.Join(tablesOf(t, s), ","); got != strings.Join(wantTables, ",") {
		t.Fatalf("tables = %s", got)
	}
}

// columnType returns a column's type, nullability and default, or ok false
// when the table has no such column.
func columnType(t *testing.T, s *Store, table, column string) (typ, nullable string, def sql.NullString, ok bool) {
	t.Helper()
	err := s.db.QueryRow(`SELECT column_type, is_nullable, column_default FROM information_schema.columns
		WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?`, table, column).Scan(&typ, &nullable, &def)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", def, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return typ, nullable, def, true
}

// Migration 8 adds contact_state.read_at. Rows written before it count as
// read at 0, so any read replaces them: even a contact pinned by the old
// rules with Kommo's largest updated_at (a forged webhook's 2^63-1) takes
// the next version read. Down drops the column and keeps the rows.
func TestMigration8AddsReadAtAndOldRowsLoseToAnyRead(t *testing.T) {
	s := openStore(t, testenv.MySQLDSN(t))
	ctx := context.Background()
	p, err := s.provider()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok := columnType(t, s, "contact_state", "read_at"); ok {
		t.Fatal("read_at exists before migration 8")
	}
	const pinned = int64(1<<63 - 1)
	if _, err := s.db.Exec(`INSERT INTO contact_state (tenant, contact_id, updated_at, deleted, name, phone, tags, fields, synced_at)
		VALUES ('shop/main', 42, ?, FALSE, 'pinned', '', '[]', '{}', NOW(6))`, pinned); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`INSERT INTO contact_emails (tenant, contact_id, email) VALUES ('shop/main', 42, 'old@example.com')`); err != nil {
		t.Fatal(err)
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	typ, nullable, def, ok := columnType(t, s, "contact_state", "read_at")
	if !ok || !strings.HasPrefix(typ, "bigint") || nullable != "NO" || def.String != "0" {
		t.Fatalf("read_at column: %q nullable %q default %v (present %v); want bigint NOT NULL DEFAULT 0", typ, nullable, def, ok)
	}
	old, err := s.GetContact(ctx, "shop/main", 42)
	if err != nil || old.ReadAt != 0 || old.UpdatedAt != pinned || old.Name != "pinned" || !slices.Equal(old.Emails, []string{"old@example.com"}) {
		t.Fatalf("the row written before the migration reads %+v, %v; want it kept, read at 0", old, err)
	}
	res, err := s.ApplyContact(ctx, "shop/main", ContactState{ID: 42, ReadAt: 1, UpdatedAt: 1_700_000_000,
		Name: "edited", Emails: []string{"new@example.com"}})
	if err != nil || !res.Applied || !slices.Equal(res.OrphanedEmails, []string{"old@example.com"}) {
		t.Fatalf("the first read after the migration = %+v, %v; want it applied over the pinned row", res, err)
	}
	if got, _ := s.GetContact(ctx, "shop/main", 42); got.Name != "edited" || got.ReadAt != 1 || got.UpdatedAt != 1_700_000_000 {
		t.Fatalf("stored %+v; want the version read after the migration", got)
	}

	if _, err := p.DownTo(ctx, 7); err != nil {
		t.Fatalf("down to 7: %v", err)
	}
	if _, _, _, ok := columnType(t, s, "contact_state", "read_at"); ok {
		t.Fatal("read_at still exists after migration 8 went down")
	}
	var name string
	if err := s.db.QueryRow(`SELECT name FROM contact_state WHERE tenant = 'shop/main' AND contact_id = 42`).Scan(&name); err != nil || name != "edited" {
		t.Fatalf("after going down the row reads %q, %v; want it kept", name, err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if got, err := s.GetContact(ctx, "shop/main", 42); err != nil || got.ReadAt != 0 || got.Name != "edited" {
		t.Fatalf("after going up again: %+v, %v; want the row read at 0", got, err)
	}
}

func TestOpenRefusesBadDSNsWithoutEchoingThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	for _, dsn := range []string{
		"not a dsn at all s3cret-pw",
		"user:s3cret-pw@tcp(127.0.0.1:3306)/",
		"user:s3cret-pw@tcp(127.0.0.1:" + strconv.Itoa(port) + ")/db",
	} {
		s, err := Open(ctx, dsn)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("error echoes the password: %v", err)
		}
	}
}

// IsTransient must call a stopped database transient, so that workers
// release and retry instead of burying.
func TestIsTransientWhenTheDatabaseGoesAway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private MariaDB")
	}
	ctx := context.Background()
	// A short directory: mariadbd's unix socket lives in it, and socket
	// paths are limited to 108 bytes, which t.TempDir() under a long test
	// name exceeds.
	dir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db, err := testenv.StartMariaDB(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Kill)
	admin, err := sql.Open("mysql", db.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE DATABASE app"); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	s := openStore(t, strings.Replace(db.DSN(), ")/", ")/app", 1))
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	c := ContactState{ID: 1, ReadAt: 10, Emails: []string{"a@example.com"}}
	if _, err := s.ApplyContact(ctx, "ns/b", c); err != nil {
		t.Fatal(err)
	}

	db.Kill()
	c.ReadAt, c.Emails = 11, []string{"b@example.com"}
	_, err = s.ApplyContact(ctx, "ns/b", c)
	if err == nil || !IsTransient(err) {
		t.Fatalf("ApplyContact with the server down = %v; want a transient error", err)
	}

	if err := db.Start(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.ApplyContact(ctx, "ns/b", c)
	if err != nil || !res.Applied {
		t.Fatalf("after restart: %+v, %v", res, err)
	}
	if IsTransient(errors.New("some bug")) || IsTransient(context.Canceled) {
		t.Error("plain errors and cancellations are not transient")
	}
}
