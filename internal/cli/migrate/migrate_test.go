package migrate

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

func runOut(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("migrate %v: %v", args, err)
	}
	return out.String()
}

func TestMigrateThenStatus(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	before := runOut(t, "--dsn", dsn, "--status")
	if strings.Contains(before, "applied") || !strings.Contains(before, "pending") {
		t.Fatalf("status of a fresh database:\n%s", before)
	}
	pending := strings.Count(before, "pending")

	first := runOut(t, "--dsn", dsn)
	if !strings.Contains(first, "migrated from version 0 to") {
		t.Fatalf("first run: %q", first)
	}
	// The manager's flag name works too, and a second run has nothing to do.
	second := runOut(t, "--mysql-dsn", dsn)
	if !strings.Contains(second, "already at version") {
		t.Fatalf("second run: %q", second)
	}

	after := runOut(t, "--dsn", dsn, "--status")
	if strings.Contains(after, "pending") || strings.Count(after, "applied") != pending {
		t.Fatalf("status after migrating:\n%s", after)
	}
}

func TestMigrateRefusesBadInvocations(t *testing.T) {
	t.Setenv("MYSQL_DSN", "")
	for name, args := range map[string][]string{
		"no DSN":                 nil,
		"extra args":             {"--dsn", "u:p@tcp(127.0.0.1:1)/db", "up"},
		"unknown flag":           {"--force"},
		"DSN without a database": {"--dsn", "u:p@tcp(127.0.0.1:1)/"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, &out); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
