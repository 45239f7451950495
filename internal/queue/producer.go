package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/beanstalkd/go-beanstalk"
)

// ErrClosed is returned by a Producer or Consumer after Close.
var ErrClosed = errors.New("queue: closed")

// ProducerOptions tune a Producer; the zero value is usable.
type ProducerOptions struct {
	// Conns is the pool size: how many Puts can be in flight at once.
	// Default 16: each put waits one round trip for INSERTED, so throughput
	// grows with connections until beanstalkd's single thread is busy
	// (BenchmarkProducerPut: about 11k puts/s on one connection, 15-26k on
	// 8-32, on the 2-core development machine).
	Conns int
	// DialTimeout bounds connecting; default 3s.
	DialTimeout time.Duration
	// OpTimeout bounds one command when ctx has no sooner deadline;
	// default 5s.
	OpTimeout time.Duration
}

func (o ProducerOptions) withDefaults() ProducerOptions {
	if o.Conns <= 0 {
		o.Conns = 16
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = defaultOpTimeout
	}
	return o
}

// Producer puts jobs into beanstalkd over a small pool of connections. It is
// safe for concurrent use. Connections are dialled on demand, so a Producer
// can be created while beanstalkd is down; Ping tells when it is reachable.
type Producer struct {
	addr string
	opts ProducerOptions
	// slots holds one entry per pool connection: a live connection, or nil
	// for a slot whose connection has not been dialled (or was dropped).
	// Taking an entry is the right to use that connection alone.
	slots chan *conn
	done  chan struct{}
}

// NewProducer returns a Producer for the beanstalkd at addr (host:port).
func NewProducer(addr string, opts ProducerOptions) *Producer {
	opts = opts.withDefaults()
	p := &Producer{addr: addr, opts: opts, slots: make(chan *conn, opts.Conns), done: make(chan struct{})}
	for range opts.Conns {
		p.slots <- nil
	}
	return p
}

// Put stores a job in tube and returns its id once beanstalkd has answered
// INSERTED, which with beanstalkd's binlog (-b) means the job is on disk
// (as far as beanstalkd's -f fsync policy guarantees). delay and ttr are
// whole seconds; a ttr under one second becomes one.
//
// If a pooled connection turns out to be broken (beanstalkd restarted since
// it was last used) Put retries once on a fresh connection. If the first
// attempt's INSERTED reply was lost on the way, that retry stores the job a
// second time: consumers must be idempotent, as they must be anyway for
// TTR expiries. When beanstalkd cannot be reached the error wraps
// ErrUnavailable; a DRAINING server counts as unavailable too.
func (p *Producer) Put(ctx context.Context, tube string, body []byte, pri uint32, delay, ttr time.Duration) (uint64, error) {
	if err := CheckTube(tube); err != nil {
		return 0, err
	}
	var id uint64
	err := p.withConn(ctx, func(c *beanstalk.Conn) error {
		var err error
		id, err = (&beanstalk.Tube{Conn: c, Name: tube}).Put(body, pri, delay, ttr)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put to %s: %w", tube, err)
	}
	return id, nil
}

// Ping checks that beanstalkd answers a command, for readiness probes.
func (p *Producer) Ping(ctx context.Context) error {
	return p.withConn(ctx, func(c *beanstalk.Conn) error {
		_, err := c.Stats()
		return err
	})
}

// Close closes the pool's connections, waiting for commands in flight.
// Later calls fail with ErrClosed.
func (p *Producer) Close() error {
	select {
	case <-p.done:
		return nil
	default:
		close(p.done)
	}
	for range p.opts.Conns {
		if c := <-p.slots; c != nil {
			c.close()
		}
	}
	return nil
}

// withConn runs cmd on a pooled connection, retrying once on a fresh
// connection when a pooled one fails at the connection level.
func (p *Producer) withConn(ctx context.Context, cmd func(*beanstalk.Conn) error) error {
	c, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { p.slots <- c }()
	for {
		fresh := c == nil
		if fresh {
			if c, err = dial(ctx, p.addr, p.opts.DialTimeout); err != nil {
				return err
			}
		}
		usable, err := c.do(ctx, p.opts.OpTimeout, cmd)
		if !usable {
			c.close()
			c = nil
		}
		if err == nil || usable || fresh || ctx.Err() != nil {
			return err
		}
	}
}

func (p *Producer) acquire(ctx context.Context) (*conn, error) {
	select {
	case <-p.done:
		return nil, ErrClosed
	default:
	}
	select {
	case c := <-p.slots:
		return c, nil
	case <-p.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, fmt.Errorf("queue: waiting for a connection: %w", ctx.Err())
	}
}
