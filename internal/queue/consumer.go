package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/beanstalkd/go-beanstalk"
)

// ErrTimeout is returned by Reserve when no job became ready in time.
var ErrTimeout = errors.New("queue: no job ready")

// ErrDeadlineSoon is returned by Reserve when a job this consumer holds is
// about to reach its TTR: touch it (or finish it) before reserving more.
var ErrDeadlineSoon = errors.New("queue: a reserved job's TTR is about to expire")

// ConsumerOptions tune a Consumer; the zero value is usable.
type ConsumerOptions struct {
	DialTimeout time.Duration // default 3s
	OpTimeout   time.Duration // per command other than the reserve wait; default 5s
	MaxBackoff  time.Duration // cap of the wait between failed dials; default 5s
}

func (o ConsumerOptions) withDefaults() ConsumerOptions {
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultDialTimeout
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = defaultOpTimeout
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	return o
}

// Job is a reserved job with its beanstalkd statistics.
type Job struct {
	ID   uint64
	Body []byte
	Tube string
	Pri  uint32
	TTR  time.Duration
	Age  time.Duration
	// Reserves counts reservations including this one; Releases, Timeouts
	// (TTR expiries), Buries and Kicks count what happened before. A worker
	// sizes its backoff from Releases and spots a job that keeps killing
	// workers from Timeouts.
	Reserves, Releases, Timeouts, Buries, Kicks uint32
}

// Consumer reserves and settles jobs on one beanstalkd connection. Jobs
// reserved through it can be released, buried or touched only through it,
// so each reserving goroutine needs its own Consumer. Its methods may still
// be called from several goroutines (a heartbeat touching while the main
// loop reserves, say): calls are serialized.
//
// When the connection breaks, the failing call returns an error wrapping
// ErrUnavailable and beanstalkd puts the jobs this connection held back in
// their tubes; the next call dials again, waiting out a backoff after
// failed dials.
type Consumer struct {
	addr  string
	tubes []string
	opts  ConsumerOptions

	mu       sync.Mutex
	c        *conn
	closed   bool
	failures int       // consecutive failed dials
	nextDial time.Time // no dial before this
}

// reserveSlice bounds each server-side wait of Reserve, so a cancelled ctx
// is noticed within it without closing the connection, which would make
// beanstalkd release every job this consumer holds.
const reserveSlice = time.Second

// NewConsumer returns a Consumer that watches tubes on the beanstalkd at
// addr. It connects on first use.
func NewConsumer(addr string, tubes []string, opts ConsumerOptions) (*Consumer, error) {
	if len(tubes) == 0 {
		return nil, errors.New("queue: a consumer needs at least one tube")
	}
	for _, t := range tubes {
		if err := CheckTube(t); err != nil {
			return nil, err
		}
	}
	return &Consumer{addr: addr, tubes: append([]string(nil), tubes...), opts: opts.withDefaults()}, nil
}

// Reserve waits up to timeout for a job from the watched tubes. beanstalkd
// counts in whole seconds: timeout is rounded up, and timeout <= 0 takes a
// ready job if there is one and returns at once otherwise. It returns
// ErrTimeout when none came, ErrDeadlineSoon (see there), or ctx's error
// within about a second of ctx ending; a job reserved just as ctx ended is
// released again rather than returned.
func (r *Consumer) Reserve(ctx context.Context, timeout time.Duration) (*Job, error) {
	deadline := time.Now().Add(timeout)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("queue: reserve: %w", err)
		}
		wait := min(ceilSeconds(time.Until(deadline)), reserveSlice)
		job, err := r.reserveOnce(ctx, wait)
		switch {
		case errors.Is(err, ErrTimeout) && time.Now().Before(deadline):
			continue
		case err != nil:
			return nil, err
		case ctx.Err() != nil:
			return nil, errors.Join(fmt.Errorf("queue: reserve: %w", ctx.Err()),
				r.Release(context.WithoutCancel(ctx), job.ID, job.Pri, 0))
		default:
			return job, nil
		}
	}
}

func ceilSeconds(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// reserveOnce issues one reserve-with-timeout and reads the job's stats.
// The reserve runs without ctx's cancellation (see reserveSlice).
func (r *Consumer) reserveOnce(ctx context.Context, wait time.Duration) (*Job, error) {
	var job *Job
	err := r.run(ctx, wait, true, func(c *beanstalk.Conn) error {
		id, body, err := beanstalk.NewTubeSet(c, r.tubes...).Reserve(wait)
		if err != nil {
			return err
		}
		stats, err := c.StatsJob(id)
		if err != nil {
			return err
		}
		job = jobFromStats(id, body, stats)
		return nil
	})
	switch {
	case errors.Is(err, beanstalk.ErrTimeout):
		return nil, ErrTimeout
	case errors.Is(err, beanstalk.ErrDeadline):
		return nil, ErrDeadlineSoon
	case err != nil:
		return nil, fmt.Errorf("reserve: %w", err)
	}
	return job, nil
}

func jobFromStats(id uint64, body []byte, s map[string]string) *Job {
	u := func(k string) uint32 { n, _ := strconv.ParseUint(s[k], 10, 32); return uint32(n) }
	sec := func(k string) time.Duration { return time.Duration(u(k)) * time.Second }
	return &Job{
		ID: id, Body: body, Tube: s["tube"], Pri: u("pri"), TTR: sec("ttr"), Age: sec("age"),
		Reserves: u("reserves"), Releases: u("releases"), Timeouts: u("timeouts"),
		Buries: u("buries"), Kicks: u("kicks"),
	}
}

// Delete removes a job: one reserved by this consumer, or one that is
// ready, delayed or buried. ErrNotFound if it is gone or reserved by
// another consumer.
func (r *Consumer) Delete(ctx context.Context, id uint64) error {
	return r.command(ctx, "delete", func(c *beanstalk.Conn) error { return c.Delete(id) })
}

// Release puts a job this consumer reserved back, ready after delay (whole
// seconds) with priority pri.
func (r *Consumer) Release(ctx context.Context, id uint64, pri uint32, delay time.Duration) error {
	return r.command(ctx, "release", func(c *beanstalk.Conn) error { return c.Release(id, pri, delay) })
}

// Bury sets a job this consumer reserved aside until it is kicked.
func (r *Consumer) Bury(ctx context.Context, id uint64, pri uint32) error {
	return r.command(ctx, "bury", func(c *beanstalk.Conn) error { return c.Bury(id, pri) })
}

// Touch restarts the TTR of a job this consumer reserved.
func (r *Consumer) Touch(ctx context.Context, id uint64) error {
	return r.command(ctx, "touch", func(c *beanstalk.Conn) error { return c.Touch(id) })
}

// Kick moves up to n jobs of tube back to ready: buried ones if the tube
// has any, otherwise delayed ones (beanstalkd's kick). It returns how many.
func (r *Consumer) Kick(ctx context.Context, tube string, n int) (int, error) {
	if err := CheckTube(tube); err != nil {
		return 0, err
	}
	var kicked int
	err := r.command(ctx, "kick", func(c *beanstalk.Conn) error {
		var err error
		kicked, err = (&beanstalk.Tube{Conn: c, Name: tube}).Kick(n)
		return err
	})
	return kicked, err
}

// KickBuried moves every buried job of tube back to ready, leaving delayed
// jobs (retries waiting out their backoff) alone. It returns how many.
func (r *Consumer) KickBuried(ctx context.Context, tube string) (int, error) {
	if err := CheckTube(tube); err != nil {
		return 0, err
	}
	kicked := 0
	for {
		var id uint64
		err := r.command(ctx, "peek-buried", func(c *beanstalk.Conn) error {
			var err error
			id, _, err = (&beanstalk.Tube{Conn: c, Name: tube}).PeekBuried()
			return err
		})
		if errors.Is(err, ErrNotFound) {
			return kicked, nil
		}
		if err != nil {
			return kicked, err
		}
		err = r.command(ctx, "kick-job", func(c *beanstalk.Conn) error { return c.KickJob(id) })
		switch {
		case err == nil:
			kicked++
		case !errors.Is(err, ErrNotFound): // NOT_FOUND: someone else kicked or deleted it
			return kicked, err
		}
	}
}

// TubeStats are the job counts of a tube.
type TubeStats struct {
	Ready, Reserved, Delayed, Buried, Urgent int
	Watching, Waiting                        int // connections watching it, and waiting in reserve on it
	TotalJobs                                int64
}

// StatsTube returns tube's job counts; a tube that does not exist (no jobs
// and nobody using or watching it) has all zeros.
func (r *Consumer) StatsTube(ctx context.Context, tube string) (TubeStats, error) {
	if err := CheckTube(tube); err != nil {
		return TubeStats{}, err
	}
	var s map[string]string
	err := r.command(ctx, "stats-tube", func(c *beanstalk.Conn) error {
		var err error
		s, err = (&beanstalk.Tube{Conn: c, Name: tube}).Stats()
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return TubeStats{}, nil
	}
	if err != nil {
		return TubeStats{}, err
	}
	n := func(k string) int { v, _ := strconv.Atoi(s[k]); return v }
	total, _ := strconv.ParseInt(s["total-jobs"], 10, 64)
	return TubeStats{
		Ready: n("current-jobs-ready"), Reserved: n("current-jobs-reserved"),
		Delayed: n("current-jobs-delayed"), Buried: n("current-jobs-buried"),
		Urgent: n("current-jobs-urgent"), Watching: n("current-watching"),
		Waiting: n("current-waiting"), TotalJobs: total,
	}, nil
}

// Close closes the connection; beanstalkd releases the jobs it held.
func (r *Consumer) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.c != nil {
		r.c.close()
		r.c = nil
	}
	return nil
}

func (r *Consumer) command(ctx context.Context, name string, cmd func(*beanstalk.Conn) error) error {
	if err := r.run(ctx, 0, false, cmd); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// run executes cmd on the connection, dialling it first if needed. extra
// lengthens the command's deadline by a server-side wait. A detached
// command ignores ctx (it is bounded by OpTimeout+extra alone), so that
// cancelling never closes the connection in the middle of a reserve.
func (r *Consumer) run(ctx context.Context, extra time.Duration, detach bool, cmd func(*beanstalk.Conn) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.connect(ctx)
	if err != nil {
		return err
	}
	cmdCtx := ctx
	if detach {
		cmdCtx = context.WithoutCancel(ctx)
	}
	usable, err := c.do(cmdCtx, r.opts.OpTimeout+extra, cmd)
	if !usable {
		c.close()
		r.c = nil
	}
	return err
}

// connect returns the live connection or dials one, first waiting out the
// backoff that failed dials have built up (1/8 s doubling to MaxBackoff,
// with jitter so that a fleet of workers does not reconnect in step).
func (r *Consumer) connect(ctx context.Context) (*conn, error) {
	if r.closed {
		return nil, ErrClosed
	}
	if r.c != nil {
		return r.c, nil
	}
	if wait := time.Until(r.nextDial); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("queue: waiting to reconnect: %w", ctx.Err())
		}
	}
	c, err := dial(ctx, r.addr, r.opts.DialTimeout)
	if err != nil {
		r.failures++
		backoff := min(time.Second/8<<min(r.failures-1, 10), r.opts.MaxBackoff)
		r.nextDial = time.Now().Add(backoff/2 + rand.N(backoff/2+1))
		return nil, err
	}
	r.failures = 0
	r.c = c
	return c, nil
}

// NextReadyAge returns how long the job reserve would hand out next from
// tube has been in beanstalkd (with equal priorities, the oldest ready
// job); ok is false when the tube has no ready job.
func (r *Consumer) NextReadyAge(ctx context.Context, tube string) (age time.Duration, ok bool, err error) {
	if err := CheckTube(tube); err != nil {
		return 0, false, err
	}
	var s map[string]string
	err = r.command(ctx, "peek-ready", func(c *beanstalk.Conn) error {
		id, _, err := (&beanstalk.Tube{Conn: c, Name: tube}).PeekReady()
		if err != nil {
			return err
		}
		s, err = c.StatsJob(id)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil // no ready job, or it was reserved between the two commands
	}
	if err != nil {
		return 0, false, err
	}
	sec, _ := strconv.ParseInt(s["age"], 10, 64)
	return time.Duration(sec) * time.Second, true, nil
}
