package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
)

// childEnv switches the test binary into a worker process (see TestMain),
// so that tests can kill a real worker process with SIGKILL or SIGTERM.
const childEnv = "WORKER_TEST_CHILD"

// childSpec is what a child worker process runs with.
type childSpec struct {
	Addr          string
	DSN           string
	Tube          string
	UnisenderURL  string
	Tenants       []tenantSpec
	Concurrency   int
	MaxEvents     int
	ShutdownGrace time.Duration
	RecheckDelay  time.Duration // default 1s
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild is the main of a child worker process: it stops on SIGTERM as
// the worker subcommand does.
func runChild(specJSON string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	st, err := store.Open(ctx, spec.DSN)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer st.Close()
	resolver := newStaticResolver(spec.UnisenderURL, st)
	for _, ts := range spec.Tenants {
		resolver.add(ts)
	}
	log := funcr.New(func(prefix, args string) { fmt.Fprintln(os.Stderr, prefix, args) }, funcr.Options{Verbosity: 1})
	w, err := worker.New(worker.Config{
		BeanstalkdAddr: spec.Addr, Tube: spec.Tube, Store: st, Resolver: resolver,
		Concurrency: spec.Concurrency, MaxEvents: spec.MaxEvents, ShutdownGrace: spec.ShutdownGrace,
		RecheckDelay: max(spec.RecheckDelay, time.Second), Log: log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// child is a worker process started by a test.
type child struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startChild runs a worker process for the harness's tube and tenants.
func (h *harness) startChild(spec childSpec) *child {
	h.t.Helper()
	spec.Addr, spec.DSN, spec.Tube, spec.UnisenderURL = h.addr, h.dsn, h.tube, h.emuURL
	for _, ts := range h.resolver.tenants {
		spec.Tenants = append(spec.Tenants, ts)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		h.t.Fatal(err)
	}
	logPath := filepath.Join(h.t.TempDir(), "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	c := &child{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
		if h.t.Failed() {
			out, _ := os.ReadFile(logPath)
			h.t.Logf("child worker log:\n%s", out)
		}
	})
	return c
}

// signal sends sig and waits up to timeout for the process to exit.
func (c *child) signal(t testing.TB, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
		return c.err
	case <-time.After(timeout):
		t.Fatalf("the worker process did not exit within %v of %v", timeout, sig)
		return nil
	}
}
