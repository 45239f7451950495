// Package queue is the durable hand-off between the webhook server and the
// workers: a beanstalkd producer (a pool of connections; Put returns only
// once beanstalkd answered INSERTED) and a consumer (one connection per
// reserving goroutine), plus the job envelope both sides agree on.
//
// go-beanstalk's Conn is neither safe for concurrent use nor aware of
// contexts or deadlines; this package adds both by owning the net.Conn
// underneath and setting its deadline for every command. A command that
// fails on the connection (rather than with a server reply such as
// NOT_FOUND) leaves the protocol state unknown, so that connection is
// dropped and the next call dials a fresh one.
package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/beanstalkd/go-beanstalk"
)

// ErrUnavailable reports that beanstalkd could not be reached or the
// connection broke: the command may be retried later. The webhook server
// answers 503 for it.
var ErrUnavailable = errors.New("queue: beanstalkd unavailable")

// ErrBadTube reports a tube name beanstalkd would refuse.
var ErrBadTube = errors.New("queue: invalid tube name")

// ErrNotFound is beanstalkd's NOT_FOUND: the job does not exist or, for
// release/bury/touch, is not reserved by this connection (after a reconnect
// the server has already put the job back for another worker).
var ErrNotFound = errors.New("queue: job not found or not reserved by this connection")

const (
	defaultDialTimeout = 3 * time.Second
	defaultOpTimeout   = 5 * time.Second
	keepAlive          = 15 * time.Second
)

// conn is one beanstalkd connection with per-command deadlines.
type conn struct {
	net net.Conn
	bs  *beanstalk.Conn
}

func dial(ctx context.Context, addr string, timeout time.Duration) (*conn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: keepAlive}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnavailable, addr, err)
	}
	return &conn{net: nc, bs: beanstalk.NewConn(nc)}, nil
}

// do runs one command with a deadline of opTimeout (or ctx's, if sooner);
// a cancelled ctx interrupts it at once. It reports whether the connection
// is still usable.
func (c *conn) do(ctx context.Context, opTimeout time.Duration, cmd func(*beanstalk.Conn) error) (usable bool, err error) {
	deadline := time.Now().Add(opTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.net.SetDeadline(deadline); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.net.SetDeadline(time.Unix(1, 0)) })
	err = cmd(c.bs)
	interrupted := !stop()
	if err == nil {
		if interrupted {
			// The reply arrived, but the cancellation may have raced with
			// it; do not trust this connection's deadline state.
			return false, nil
		}
		return true, nil
	}
	if isServerReply(err) && !interrupted {
		return true, translate(err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return false, fmt.Errorf("queue: %w", ctxErr)
	}
	return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (c *conn) close() { _ = c.net.Close() }

// serverReplies are the errors go-beanstalk makes of beanstalkd's error
// replies; after one of them the connection is still in step.
var serverReplies = []error{
	beanstalk.ErrBadFormat, beanstalk.ErrBuried, beanstalk.ErrDeadline, beanstalk.ErrDraining,
	beanstalk.ErrInternal, beanstalk.ErrJobTooBig, beanstalk.ErrNoCRLF, beanstalk.ErrNotFound,
	beanstalk.ErrNotIgnored, beanstalk.ErrOOM, beanstalk.ErrTimeout, beanstalk.ErrUnknown,
}

func isServerReply(err error) bool {
	for _, r := range serverReplies {
		if errors.Is(err, r) {
			return true
		}
	}
	return false
}

// translate maps the replies callers act on to this package's errors.
func translate(err error) error {
	switch {
	case errors.Is(err, beanstalk.ErrNotFound):
		return fmt.Errorf("%w (%w)", ErrNotFound, err)
	case errors.Is(err, beanstalk.ErrDraining):
		// A draining server takes no new jobs: as good as down for a producer.
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	default:
		return fmt.Errorf("queue: %w", err)
	}
}

// tubeChars are the characters beanstalkd allows in names. (go-beanstalk's
// NameChars also lets a backslash through, which the server refuses.)
const tubeChars = "-+/;.$_()0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// CheckTube reports whether beanstalkd accepts name as a tube name: 1 to 199
// bytes of letters, digits and -+/;.$_() not starting with a hyphen.
// Names are checked before they reach go-beanstalk, which would otherwise
// refuse them half-way through writing a command.
func CheckTube(name string) error {
	if len(name) == 0 || len(name) >= 200 || name[0] == '-' {
		return fmt.Errorf("%w %q: want 1-199 bytes not starting with '-'", ErrBadTube, name)
	}
	for _, r := range name {
		if !strings.ContainsRune(tubeChars, r) {
			return fmt.Errorf("%w %q: %q is not allowed", ErrBadTube, name, r)
		}
	}
	return nil
}
