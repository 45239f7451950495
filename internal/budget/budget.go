// Package budget keeps request budgets that every process shares: the
// manager and each worker replica take their Kommo requests from the same
// rows of MySQL's call_budgets table (store.TakeCall), so an account's rate
// limit holds across all of them. The database's clock is the only clock:
// the pods' clocks may disagree.
package budget

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// Defaults of a Kommo budget.
const (
	// DefaultMargin widens the spacing of an integration's requests by
	// 10% beyond 1s/rps. The budget spaces the moments requests are taken,
	// on the database's clock; Kommo counts the moments they arrive. Between
	// the two lie the database's answer, the scheduler, connection set-up
	// and the network, and that delay differs from request to request. With
	// spacing exactly 1s/rps, rps+1 requests taken over exactly 1 s arrive
	// within one second as soon as the first is delayed a little more than
	// the last. With 10%, any rps+1 takes span at least 1.1 s, whatever the
	// rps, so that takes 100 ms more delay on the first than on the last,
	// far beyond what a healthy path shows, for 9% less throughput. The
	// no-burst spacing also means a stalled process never sends a burst:
	// a slot not taken when due is lost, not saved up.
	DefaultMargin = 0.10
	// DefaultBackgroundShare is the share of the integration's budget that
	// background work (initial import, resync, sweep) may take, so that
	// webhook-driven reads always find slots: they are guaranteed the rest.
	DefaultBackgroundShare = 0.70
	// DefaultRequestsPerSecond is Kommo's limit per integration, used when
	// rps is not positive.
	DefaultRequestsPerSecond = 7
	// DefaultForegroundQuiet is how long the foreground must have asked
	// for nothing before background work may take every slot instead of
	// its share: a budget nobody waits on is not left idle, so the import
	// of an account whose contacts are not changing runs at Kommo's full
	// rate (issue 20: 61% of it with the share alone). A foreground
	// request marks itself before it takes its slot, so the background's
	// next take already leaves it the rest.
	DefaultForegroundQuiet = 5 * time.Second
)

// Bucket name prefixes. call_budgets holds other kinds of budgets too
// (internal/invitations uses "subscribe:").
const (
	kommoPrefix      = "kommo:"    // every request of an integration
	kommoBackPrefix  = "kommo-bg:" // its background requests
	kommoForePrefix  = "kommo-fg:" // when its foreground last asked (a mark)
	maxBucketLen     = 64          // the call_budgets.bucket column
	bucketDigestHexs = 40          // 160 bits of SHA-256 when a name is too long
)

// Option tunes a Kommo budget.
type Option func(*config)

type config struct {
	margin, share float64
}

// WithMargin sets the safety margin added to the spacing 1s/rps of an
// integration's requests (DefaultMargin); 0 spaces them exactly 1s/rps.
// Negative values are ignored.
func WithMargin(m float64) Option {
	return func(c *config) {
		if m >= 0 {
			c.margin = m
		}
	}
}

// WithBackgroundShare sets the share, in (0, 1], of the integration's
// budget that background requests may take (DefaultBackgroundShare).
// Values outside (0, 1] are ignored.
func WithBackgroundShare(s float64) Option {
	return func(c *config) {
		if s > 0 && s <= 1 {
			c.share = s
		}
	}
}

// KommoBudget is the request budget of one KommoIntegration, shared by
// every process through the store.
//
// Every request of the integration takes one slot of its account bucket,
// which allows one request per interval (1s/rps plus the margin) with no
// burst: no sliding second ever holds more than rps takes. Background
// requests first take a slot of a second bucket, spaced interval/share, so
// that they never take more than that share of the account bucket's slots,
// whatever their number; foreground requests always find the rest. While
// the foreground has asked for nothing for the quiet time, the second
// bucket is spaced like the first: the background may take every slot.
type KommoBudget struct {
	fg, bg *Taker
}

// Kommo returns the budget of the integration namespace/integration with
// rps requests per second (DefaultRequestsPerSecond when rps <= 0). st must
// not be nil: a Taker without a store fails every Take, so that a missing
// store never passes for an unlimited budget.
func Kommo(st *store.Store, namespace, integration string, rps int, opts ...Option) *KommoBudget {
	cfg := config{margin: DefaultMargin, share: DefaultBackgroundShare}
	for _, o := range opts {
		o(&cfg)
	}
	if rps <= 0 {
		rps = DefaultRequestsPerSecond
	}
	id := namespace + "/" + integration
	account := step{
		bucket:   bucketName(kommoPrefix, id),
		interval: ceilMillis(float64(time.Second) * (1 + cfg.margin) / float64(rps)),
	}
	background := step{
		bucket:   bucketName(kommoBackPrefix, id),
		interval: ceilMillis(float64(account.interval) / cfg.share),
	}
	mark := bucketName(kommoForePrefix, id)
	background.quiet = &quietRule{mark: mark, after: DefaultForegroundQuiet, interval: account.interval}
	return &KommoBudget{
		fg: &Taker{store: st, steps: []step{account}, mark: mark},
		// The background bucket first: a request waiting for its share
		// holds no slot of the account bucket meanwhile.
		bg: &Taker{store: st, steps: []step{background, account}},
	}
}

// KommoForeground is the foreground taker of the integration's budget with
// the default margin and share, for processes that only serve webhooks
// (the worker): pass it to kommo.WithBudget.
func KommoForeground(st *store.Store, namespace, integration string, rps int) *Taker {
	return Kommo(st, namespace, integration, rps).Foreground()
}

// Foreground is the taker for requests someone waits on: the worker's
// webhook-driven reads, token exchange and refresh, account checks and
// webhook registration.
func (k *KommoBudget) Foreground() *Taker { return k.fg }

// Background is the taker for bulk work: the initial import, resyncs and
// sweeps. It never takes more than the background share of the budget.
func (k *KommoBudget) Background() *Taker { return k.bg }

// Taker takes requests from one or more buckets in turn. It is safe for
// concurrent use and satisfies kommo.Budget.
type Taker struct {
	store *store.Store
	steps []step
	// mark, if set, is recorded before every take: the foreground's, which
	// the background's quiet rule reads.
	mark string
}

type step struct {
	bucket   string
	interval time.Duration
	quiet    *quietRule // nil: always interval
}

// quietRule spaces a step by interval instead of its own while mark has
// not been recorded for after.
type quietRule struct {
	mark     string
	after    time.Duration
	interval time.Duration
}

// ErrNoStore is returned by Take on a Taker built without a store.
var ErrNoStore = errors.New("budget: no store to keep the shared budget in")

// Take blocks until one request may be sent: it takes a slot from each of
// its buckets in turn, sleeping until the next slot when another process
// (or goroutine) took the last one. It returns the context's error when
// ctx ends first, or the store's error; a slot taken before a failure is
// not given back, which only makes the budget stricter.
func (t *Taker) Take(ctx context.Context) error {
	if t.store == nil {
		return ErrNoStore
	}
	if t.mark != "" {
		if err := t.store.MarkCall(ctx, t.mark); err != nil {
			return fmt.Errorf("budget: %w", err)
		}
	}
	for _, s := range t.steps {
		if err := t.take(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (t *Taker) take(ctx context.Context, s step) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		interval, err := t.interval(ctx, s)
		var wait time.Duration
		if err == nil {
			wait, err = t.store.TakeCall(ctx, s.bucket, interval)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("budget: %w", err)
		}
		if wait <= 0 {
			return nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// interval is the step's spacing now: the quiet rule's while the
// foreground has not asked for its time (or ever), the step's own
// otherwise.
func (t *Taker) interval(ctx context.Context, s step) (time.Duration, error) {
	if s.quiet == nil {
		return s.interval, nil
	}
	since, marked, err := t.store.SinceMark(ctx, s.quiet.mark)
	if err != nil {
		return 0, err
	}
	if !marked || since >= s.quiet.after {
		return s.quiet.interval, nil
	}
	return s.interval, nil
}

// Intervals reports the spacing of the taker's buckets, in the order they
// are taken, while the foreground asks (for logs and tests).
func (t *Taker) Intervals() []time.Duration {
	out := make([]time.Duration, len(t.steps))
	for i, s := range t.steps {
		out[i] = s.interval
	}
	return out
}

// bucketName is prefix+id when that fits the column, otherwise prefix and a
// digest of id. Kubernetes names are ASCII, as the column requires; the id
// holds names only, never a secret.
func bucketName(prefix, id string) string {
	if len(prefix)+len(id) <= maxBucketLen {
		return prefix + id
	}
	sum := sha256.Sum256([]byte(id))
	return prefix + hex.EncodeToString(sum[:])[:bucketDigestHexs]
}

// ceilMillis rounds up to whole milliseconds, the store's resolution:
// rounding down would let rps+1 takes fit in one second.
func ceilMillis(ns float64) time.Duration {
	d := time.Duration(ns)
	if r := d % time.Millisecond; r != 0 {
		d += time.Millisecond - r
	}
	return d
}
