package devenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is one process of the operator's binary (or the sandbox), with its
// output prefixed by its name.
type Process struct {
	Name string
	bin  string
	args []string
	env  []string
	out  io.Writer

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start launches the process. It dies with its parent (Pdeathsig), so a
// crashed `make dev` or test leaves nothing behind.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	go prefixLines(p.out, p.Name, pr)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); pw.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// Pid is the process id of the running process, 0 before Start (the
// scale benchmarks read its memory and CPU time from /proc).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PID is the process's id while it runs (0 before Start), for a benchmark
// reading its memory in /proc.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, time.Second) }

// Stop asks the process to end (SIGTERM) and kills it after 10 s.
func (p *Process) Stop() { p.signal(syscall.SIGTERM, 10*time.Second) }

func (p *Process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Restart stops (SIGTERM) and starts the process again.
func (p *Process) Restart() error {
	p.Stop()
	return p.Start()
}

var outputMu sync.Mutex

// prefixLines copies r to w line by line as "name | line".
func prefixLines(w io.Writer, name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		outputMu.Lock()
		fmt.Fprintf(w, "%-13s| %s\n", name, sc.Text())
		outputMu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}
