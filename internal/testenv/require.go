package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Environment variables through which hack/testenv (or a developer) hands
// running services to the tests.
const (
	EnvMySQLDSN       = "MYSQL_DSN"
	EnvBeanstalkdAddr = "BEANSTALKD_ADDR"
	EnvKubeAssets     = "KUBEBUILDER_ASSETS"
)

// require returns the value of env, or ends the test: a skip only under
// `go test -short`, a failure otherwise, because a test missing its service
// must never pass silently.
func require(t testing.TB, env, what string) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: this test needs %s; run it with `make test` (or `go run ./hack/testenv -- go test ./...`)", env, what)
	if testing.Short() {
		t.Skip(msg)
	}
	t.Fatal(msg)
	return ""
}

// MySQLDSN returns a DSN for a fresh database that only this test uses; the
// database is dropped when the test ends.
func MySQLDSN(t testing.TB) string {
	t.Helper()
	base := require(t, EnvMySQLDSN, "a MySQL/MariaDB server")
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("%s is not a valid DSN: %v", EnvMySQLDSN, err)
	}
	name := "t_" + randomHex(6)
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name)
		admin.Close()
	})
	cfg.DBName = name
	cfg.ParseTime = true
	cfg.MultiStatements = true
	return cfg.FormatDSN()
}

// BeanstalkdAddr returns the address of the shared beanstalkd. Tests must use
// their own tube names (see Tube) so that parallel packages do not meet.
func BeanstalkdAddr(t testing.TB) string {
	t.Helper()
	return require(t, EnvBeanstalkdAddr, "a beanstalkd server")
}

// Tube returns a tube name unique to this test.
func Tube(prefix string) string { return prefix + "-" + randomHex(6) }

// KubeAssets returns the directory with kube-apiserver, etcd and kubectl.
func KubeAssets(t testing.TB) string {
	t.Helper()
	return require(t, EnvKubeAssets, "kube-apiserver and etcd (`make test-tools` builds them)")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Environment variables naming the tools the tests run. `make test-tools`
// builds or installs every one of them before the first test starts, and
// `make test-run` exports these; no test builds or installs a tool itself.
const (
	EnvHelm      = "HELM"                // the pinned helm
	EnvBinary    = "KOMMO_UNISENDER_BIN" // the operator binary built from this checkout
	EnvWidgetZip = "WIDGETZIP"           // hack/widgetzip, built from this checkout
)

// ToolPath returns the executable named by the environment variable env, or
// an error that says how to get it.
func ToolPath(env string) (string, error) {
	p := os.Getenv(env)
	if p == "" {
		return "", fmt.Errorf("%s is not set: the tests run prebuilt tools; run `make test-tools` once, then the tests through `make test-run` (or `make test`)", env)
	}
	// The path comes from the developer's own environment, set by make.
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 { //nolint:gosec // G703: see above
		return "", fmt.Errorf("%s=%s is not an executable file: run `make test-tools`", env, p)
	}
	return p, nil
}

// Tool returns the executable named by env, or ends the test at once: a skip
// only under `go test -short`, a failure otherwise.
func Tool(t testing.TB, env string) string {
	t.Helper()
	p, err := ToolPath(env)
	if err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	return p
}
