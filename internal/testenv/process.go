package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// daemon is a child process that is killed with its parent (Pdeathsig), so a
// crashed test binary never leaves a server behind.
type daemon struct {
	name string
	args []string
	log  *os.File
	cmd  *exec.Cmd
	done chan struct{}
}

func (d *daemon) start() error {
	cmd := exec.Command(d.name, d.args...)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", d.name, err)
	}
	d.cmd = cmd
	d.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(d.done) }()
	return nil
}

// running reports whether the process has not exited yet.
func (d *daemon) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// stop sends sig and waits up to grace for the exit, then kills.
func (d *daemon) stop(sig syscall.Signal, grace time.Duration) {
	if !d.running() {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(grace):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// PID returns the process id of the running daemon, or 0.
func (d *daemon) PID() int {
	if !d.running() {
		return 0
	}
	return d.cmd.Process.Pid
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls ready until it succeeds, the process dies, or ctx ends.
func waitFor(ctx context.Context, d *daemon, ready func() error) error {
	var last error
	for {
		if last = ready(); last == nil {
			return nil
		}
		if !d.running() {
			return fmt.Errorf("%s exited during start-up (see %s): %w", d.name, d.log.Name(), last)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
