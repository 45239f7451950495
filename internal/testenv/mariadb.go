package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mysqlUser is the account the tests log in with; root stays socket-only.
const (
	mysqlUser     = "kommo"
	mysqlPassword = "kommo-test"
)

// MariaDB is a private mariadbd with its own data directory on a free
// loopback port.
type MariaDB struct {
	daemon
	Dir  string
	Port int
	// sockDir holds the unix socket: a short path of its own, because a
	// socket path may not exceed 108 bytes and test directories can.
	sockDir string
}

// StartMariaDB initialises a fresh data directory under dir and starts
// mariadbd on a free port, ready for TCP logins by the test user.
func StartMariaDB(ctx context.Context, dir string) (*MariaDB, error) {
	if err := EnsureBinaries("mariadbd", "mariadb-install-db"); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := installDB(data, filepath.Join(dir, "install.log")); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	sockDir, err := os.MkdirTemp("", "mdb")
	if err != nil {
		return nil, err
	}
	m := &MariaDB{Dir: dir, Port: port, sockDir: sockDir}
	if err := m.Start(ctx); err != nil {
		return nil, err
	}
	if err := m.createTestUser(ctx); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

func installDB(data, logPath string) error {
	bin, _ := FindBinary("mariadb-install-db")
	out, err := exec.Command(bin, "--user=root", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		_ = os.WriteFile(logPath, out, 0o600)
		return fmt.Errorf("mariadb-install-db failed (log in %s): %w", logPath, err)
	}
	return nil
}

// Start (re)starts mariadbd on the same data directory and port and waits
// until it answers.
func (m *MariaDB) Start(ctx context.Context) error {
	bin, err := FindBinary("mariadbd")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(m.sockDir, 0o700); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(m.Dir, "mariadbd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	m.daemon = daemon{name: bin, log: logFile, args: []string{
		"--no-defaults", "--user=root",
		"--datadir=" + filepath.Join(m.Dir, "data"),
		"--socket=" + m.socket(),
		"--pid-file=" + filepath.Join(m.Dir, "mariadbd.pid"),
		"--port=" + strconv.Itoa(m.Port), "--bind-address=127.0.0.1",
		"--skip-log-bin", "--skip-name-resolve",
		"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
		"--innodb-flush-log-at-trx-commit=2", "--max-connections=500",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
	}}
	if err := m.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return waitFor(ctx, &m.daemon, func() error { return ping(ctx, m.rootDSN()) })
}

// Stop shuts mariadbd down cleanly and removes its socket directory
// (Start makes it again).
func (m *MariaDB) Stop() {
	m.stop(syscall.SIGTERM, 30*time.Second)
	_ = os.RemoveAll(m.sockDir)
}

// Kill ends mariadbd with SIGKILL, as a crash would.
func (m *MariaDB) Kill() { m.stop(syscall.SIGKILL, 10*time.Second) }

// DSN is the go-sql-driver DSN of the test user, without a database.
func (m *MariaDB) DSN() string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = mysqlUser, mysqlPassword
	cfg.Net, cfg.Addr = "tcp", "127.0.0.1:"+strconv.Itoa(m.Port)
	return cfg.FormatDSN()
}

func (m *MariaDB) socket() string { return filepath.Join(m.sockDir, "mariadbd.sock") }

func (m *MariaDB) rootDSN() string {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "unix", m.socket()
	return cfg.FormatDSN()
}

// createTestUser adds the TCP test account. The anonymous ”@'localhost'
// accounts would shadow it, so they go.
func (m *MariaDB) createTestUser(ctx context.Context) error {
	db, err := sql.Open("mysql", m.rootDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	for _, stmt := range []string{
		"DELETE FROM mysql.global_priv WHERE User = ''",
		"FLUSH PRIVILEGES",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", mysqlUser, mysqlPassword),
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'localhost' IDENTIFIED BY '%s'", mysqlUser, mysqlPassword),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION", mysqlUser),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'localhost' WITH GRANT OPTION", mysqlUser),
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("mariadb setup %q: %w", stmt, err)
		}
	}
	return ping(ctx, m.DSN())
}

func ping(ctx context.Context, dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return db.PingContext(pctx)
}
