package testenv

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Beanstalkd is a private beanstalkd with its binlog in its own directory.
type Beanstalkd struct {
	daemon
	Dir  string
	Port int
}

// StartBeanstalkd starts beanstalkd on a free loopback port with the binlog
// (-b) under dir, so jobs survive a kill -9 and restart.
func StartBeanstalkd(ctx context.Context, dir string) (*Beanstalkd, error) {
	if err := EnsureBinaries("beanstalkd"); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "binlog"), 0o700); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	b := &Beanstalkd{Dir: dir, Port: port}
	return b, b.Start(ctx)
}

// Start (re)starts beanstalkd on the same port and binlog directory and waits
// until it accepts connections.
func (b *Beanstalkd) Start(ctx context.Context) error {
	bin, err := FindBinary("beanstalkd")
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(b.Dir, "beanstalkd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	b.daemon = daemon{name: bin, log: logFile, args: []string{
		"-l", "127.0.0.1", "-p", strconv.Itoa(b.Port), "-b", filepath.Join(b.Dir, "binlog"),
		"-z", strconv.Itoa(1 << 20),
	}}
	if err := b.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return waitFor(ctx, &b.daemon, func() error {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

// Addr is host:port of the server.
func (b *Beanstalkd) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.Port) }

// Stop shuts beanstalkd down cleanly.
func (b *Beanstalkd) Stop() { b.stop(syscall.SIGTERM, 10*time.Second) }

// Kill ends beanstalkd with SIGKILL, as a crash would.
func (b *Beanstalkd) Kill() { b.stop(syscall.SIGKILL, 10*time.Second) }
