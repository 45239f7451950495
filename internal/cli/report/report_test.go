package report

import (
	"strings"
	"testing"
)

// The binding may come before or after the flags; bad input gets a clear
// error, never a half-run report.
func TestSyncHealthReportArguments(t *testing.T) {
	t.Setenv("MYSQL_DSN", "u:p@tcp(127.0.0.1:1)/db")
	for _, args := range [][]string{
		{"demo/acme", "--reason", "role_address", "-o", "json"},
		{"--reason", "role_address", "demo/acme", "-o", "json"},
	} {
		o, err := parse(args)
		if err != nil || o.tenant.String() != "demo/acme" || o.reason != "role_address" || o.output != "json" {
			t.Errorf("parse(%q) = %+v, %v", args, o, err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"demo/acme", "other/binding"}, "usage"},
		{[]string{"not-a-binding"}, "usage"},
		{[]string{"demo/acme", "-o", "yaml"}, "want table or json"},
		{[]string{"demo/acme", "--limit", "0"}, "want a positive number"},
	} {
		if _, err := parse(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse(%q) error %v; want one saying %q", tc.args, err, tc.want)
		}
	}
	t.Setenv("MYSQL_DSN", "")
	if _, err := parse([]string{"demo/acme"}); err == nil || !strings.Contains(err.Error(), "MYSQL_DSN") {
		t.Errorf("without a DSN: %v", err)
	}
}

// Text from Kommo or Unisender cannot move the terminal's cursor or break
// the table.
func TestSyncHealthReportCellsAreInert(t *testing.T) {
	if got := cell("evil\x1b[2J\nname\tx", 100); got != "evil?[2J name x" {
		t.Fatalf("cell = %q", got)
	}
	if got := cell(strings.Repeat("é", 10), 4); got != "éééé…" {
		t.Fatalf("cell = %q", got)
	}
}
