package queue

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/beanstalkd/go-beanstalk"
	"github.com/go-logr/logr"
)

// ErrJobTooBig is returned when one item alone encodes to a job larger than
// beanstalkd's max-job-size.
var ErrJobTooBig = errors.New("queue: job larger than beanstalkd's max-job-size")

// DefaultMaxJobSize is beanstalkd's own default max-job-size (its -z).
const DefaultMaxJobSize = 65535

// SmallestContactsJobBound is the size of the largest contacts job naming
// a single contact: the longest tenant id Kubernetes names allow (a
// 63-character namespace and a 253-character binding), the largest ids and
// the longest time stamp. A beanstalkd whose max-job-size is below it
// could refuse some webhook's every job.
var SmallestContactsJobBound = func() int {
	tenantID := strings.Repeat("n", 63) + "/" + strings.Repeat("b", 253)
	at := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	body, err := AppendContactsJob(nil, tenantID, math.MaxInt64, at, []ContactRef{{ID: math.MaxInt64, Action: "update"}})
	if err != nil {
		panic(err)
	}
	return len(body)
}()

// PutWithin puts items as jobs whose bodies stay within maxBytes: encode's
// body of all items is put when it fits, otherwise each half of the items
// is put the same way. encode's body is only used until put returns, so it
// may reuse a buffer. An item too big alone wraps ErrJobTooBig.
func PutWithin[T any](items []T, maxBytes int, encode func([]T) ([]byte, error), put func([]byte) error) error {
	body, err := encode(items)
	if err != nil {
		return err
	}
	if len(body) <= maxBytes {
		return put(body)
	}
	if len(items) == 1 {
		return fmt.Errorf("%w: one item makes %d bytes, max-job-size is %d", ErrJobTooBig, len(body), maxBytes)
	}
	half := len(items) / 2
	if err := PutWithin(items[:half], maxBytes, encode, put); err != nil {
		return err
	}
	return PutWithin(items[half:], maxBytes, encode, put)
}

// MaxJobSize returns beanstalkd's max-job-size (its -z option): the
// largest body it stores; a larger put is refused (JOB_TOO_BIG).
func (p *Producer) MaxJobSize(ctx context.Context) (int, error) {
	var n int
	err := p.withConn(ctx, func(c *beanstalk.Conn) error {
		st, err := c.Stats()
		if err != nil {
			return err
		}
		if n, err = strconv.Atoi(st["max-job-size"]); err != nil || n <= 0 {
			return fmt.Errorf("beanstalkd stats: max-job-size %q is not a size", st["max-job-size"])
		}
		return nil
	})
	return n, err
}

// WaitMaxJobSize reads beanstalkd's max-job-size at a process's start-up,
// retrying while beanstalkd cannot be reached (it may start after us) until
// ctx ends.
func WaitMaxJobSize(ctx context.Context, p *Producer, log logr.Logger) (int, error) {
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		n, err := p.MaxJobSize(ctx)
		if err == nil || !errors.Is(err, ErrUnavailable) {
			return n, err
		}
		log.Info("waiting for beanstalkd to read its max-job-size", "error", err.Error(), "retryIn", wait)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
	}
}
