// Command testenv runs a command (normally `go test ./...`) inside a private
// test environment: a MariaDB server, a beanstalkd with its binlog on, and the
// envtest assets, all exported through environment variables. Everything it
// starts lives under one temporary directory and is torn down at the end —
// after success, failure or Ctrl-C.
//
//	go run ./hack/testenv -- go test ./...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: testenv [-- ] command [args...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(flag.Args()))
}

func run(args []string) int {
	tmp, err := os.MkdirTemp("", "kommo-unisender-testenv-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	env := &environment{dir: tmp}
	defer env.teardown()

	// Interrupts during start-up cancel it; during the command they are
	// forwarded to the command's process group.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		sig := <-sigs
		cancel()
		env.interrupt(sig.(syscall.Signal))
		for sig := range sigs {
			env.interrupt(sig.(syscall.Signal))
		}
	}()

	if err := env.setUp(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	return env.runCommand(ctx, args)
}

// environment is what one run started; teardown undoes all of it.
type environment struct {
	dir        string
	vars       []string
	mariadb    *testenv.MariaDB
	beanstalkd *testenv.Beanstalkd
	child      *exec.Cmd
}

func (e *environment) setUp(ctx context.Context) error {
	assets, err := kubeAssets(ctx)
	if err != nil {
		return err
	}
	tmpDir := filepath.Join(e.dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return err
	}
	// TMPDIR points inside our directory so that every temp dir the tests
	// make (envtest's included) goes away with it.
	e.vars = []string{testenv.EnvKubeAssets + "=" + assets, "TMPDIR=" + tmpDir, "KOMMO_UNISENDER_TESTENV=1"}

	// One apt-get run for whatever is missing, rather than one per service.
	if err := testenv.EnsureBinaries("mariadbd", "mariadb-install-db", "beanstalkd"); err != nil {
		return err
	}
	if dsn := os.Getenv(testenv.EnvMySQLDSN); dsn == "" {
		if e.mariadb, err = testenv.StartMariaDB(ctx, mkdir(e.dir, "mariadb")); err != nil {
			return err
		}
		e.vars = append(e.vars, testenv.EnvMySQLDSN+"="+e.mariadb.DSN())
		fmt.Fprintf(os.Stderr, "testenv: MariaDB on 127.0.0.1:%d\n", e.mariadb.Port)
	}
	if addr := os.Getenv(testenv.EnvBeanstalkdAddr); addr == "" {
		if e.beanstalkd, err = testenv.StartBeanstalkd(ctx, mkdir(e.dir, "beanstalkd")); err != nil {
			return err
		}
		e.vars = append(e.vars, testenv.EnvBeanstalkdAddr+"="+e.beanstalkd.Addr())
		fmt.Fprintf(os.Stderr, "testenv: beanstalkd on %s (binlog on)\n", e.beanstalkd.Addr())
	}
	return ctx.Err()
}

// kubeAssets returns KUBEBUILDER_ASSETS, building the binaries when needed.
func kubeAssets(ctx context.Context) (string, error) {
	if dir := os.Getenv(testenv.EnvKubeAssets); dir != "" {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, "bash", "hack/envtest-assets.sh")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest-assets.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

func (e *environment) runCommand(ctx context.Context, args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), e.vars...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	e.child = cmd
	if ctx.Err() != nil { // interrupted between set-up and start
		e.interrupt(syscall.SIGTERM)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
}

// interrupt forwards a signal to the command's whole process group.
func (e *environment) interrupt(sig syscall.Signal) {
	if e.child != nil && e.child.Process != nil {
		_ = syscall.Kill(-e.child.Process.Pid, sig)
	}
}

func (e *environment) teardown() {
	if e.child != nil && e.child.Process != nil {
		_ = syscall.Kill(-e.child.Process.Pid, syscall.SIGKILL)
	}
	if e.mariadb != nil {
		e.mariadb.Stop()
	}
	if e.beanstalkd != nil {
		e.beanstalkd.Stop()
	}
	// envtest puts kube-apiserver and etcd in process groups of their own,
	// and tests start private servers: anything still running from our
	// directory is a leftover of the run.
	killProcessesUsing(e.dir)
	if err := os.RemoveAll(e.dir); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: cleanup:", err)
	}
}

func mkdir(parent, name string) string {
	dir := filepath.Join(parent, name)
	_ = os.MkdirAll(dir, 0o700)
	return dir
}
