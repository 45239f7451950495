package webhookserver

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// admission decides, after a webhook is authenticated and before its body
// is read, whether the server takes it on. Each tenant has a token bucket
// (one token per job it queues: a body naming more than
// queue.MaxContactsPerJob contacts costs more) and a bound on its requests
// in flight; the server has a bound on all webhook requests in flight,
// which bounds the memory held by bodies being read and parsed. A tenant
// over its bounds gets 429 and Retry-After, the server over its own 503:
// both are failures Kommo retries (any status outside 2xx is), and neither
// costs another tenant anything.
type admission struct {
	rate           rate.Limit
	burst          int
	tenantInFlight int
	// slots is the server-wide semaphore: one entry per request in flight.
	slots chan struct{}

	mu      sync.Mutex
	tenants map[string]*tenantGate
	// created counts the gates created, to prune idle ones now and then.
	created int
}

// tenantGate is one tenant's share of the admission.
type tenantGate struct {
	limiter *rate.Limiter
	// inFlight is read and raised under admission.mu, and lowered without
	// it when a request ends.
	inFlight atomic.Int32
}

// refusal says why a webhook was not admitted.
type refusal struct {
	status     int
	reason     string // answered to the caller and used as the metric label
	retryAfter time.Duration
}

// Refusal reasons, also the values of the metric's reason label.
const (
	reasonTenantRate     = "tenant_rate"
	reasonTenantInFlight = "tenant_in_flight"
	reasonServerBusy     = "server_in_flight"
)

// pruneEvery is how many gates are created between two prunes of the gates
// of tenants that are idle (a full bucket, nothing in flight): such a gate
// is the same as a new one, so dropping it forgets nothing.
const pruneEvery = 1024

func newAdmission(cfg Config) *admission {
	return &admission{
		rate: rate.Limit(cfg.TenantRate), burst: cfg.TenantBurst, tenantInFlight: cfg.TenantInFlight,
		slots: make(chan struct{}, cfg.MaxInFlight), tenants: map[string]*tenantGate{},
	}
}

// admitted is a webhook the admission took on.
type admitted struct {
	a *admission
	g *tenantGate
	// priority is the beanstalkd priority of its jobs (see priority).
	priority uint32
}

// release gives back the places the webhook held; call it once it is
// answered.
func (w admitted) release() {
	<-w.a.slots
	w.g.inFlight.Add(-1)
}

// admit takes one of the tenant's tokens, one of its in-flight places and
// one of the server's, and tells the priority of its jobs: everything under
// one hold of the admission's lock, the only one a webhook takes (issue
// 20: every goroutine waiting on a lock whose holder is descheduled joins
// the latency tail).
func (a *admission) admit(tenantID string, now time.Time) (admitted, *refusal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	g := a.gate(tenantID, now)
	if int(g.inFlight.Load()) >= a.tenantInFlight {
		return admitted{}, &refusal{http.StatusTooManyRequests, reasonTenantInFlight, time.Second}
	}
	r := g.limiter.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return admitted{}, &refusal{http.StatusTooManyRequests, reasonTenantRate, delay}
	}
	select {
	case a.slots <- struct{}{}:
	default:
		r.CancelAt(now) // the server's fault, not the tenant's: give the token back
		return admitted{}, &refusal{http.StatusServiceUnavailable, reasonServerBusy, time.Second}
	}
	g.inFlight.Add(1)
	return admitted{a: a, g: g, priority: a.priority(g, now)}, nil
}

// charge takes the tokens of the jobs beyond the first a request turned
// into. The request is already read, so it is not refused: the tenant goes
// into debt instead, and its next requests wait for it to be repaid. At
// most a burst is charged at once (a larger charge could never be repaid).
func (a *admission) charge(tenantID string, jobs int, now time.Time) {
	if jobs <= 1 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gate(tenantID, now).limiter.ReserveN(now, min(jobs-1, a.burst))
}

// Priorities of webhook jobs in beanstalkd (lower is reserved sooner): a
// tenant with most of its bucket left gets jobPriority, one that drained it
// up to priorityLevels steps later, so every worker replica takes a quiet
// tenant's events before a flooding tenant's backlog. Rechecks
// (worker.recheckPriority, 2048) still come after all of them.
const (
	jobPriority    = 1024
	priorityStep   = 128
	priorityLevels = 7
)

// priority is the beanstalkd priority of the tenant's next jobs, from how
// much of its bucket it has used (quarters of a burst; debt counts too).
// The caller holds a.mu.
func (a *admission) priority(g *tenantGate, now time.Time) uint32 {
	used := float64(a.burst) - g.limiter.TokensAt(now)
	level := int(math.Floor(4 * used / float64(a.burst)))
	return jobPriority + uint32(min(max(level, 0), priorityLevels))*priorityStep
}

// gate returns the tenant's gate, creating it with a full bucket. The
// caller holds a.mu. Only authenticated tenants get a gate, so their number
// is bounded by the bindings that exist.
func (a *admission) gate(tenantID string, now time.Time) *tenantGate {
	g := a.tenants[tenantID]
	if g == nil {
		if a.created++; a.created%pruneEvery == 0 {
			a.prune(now)
		}
		g = &tenantGate{limiter: rate.NewLimiter(a.rate, a.burst)}
		a.tenants[tenantID] = g
	}
	return g
}

// prune forgets the gates that are the same as new ones.
func (a *admission) prune(now time.Time) {
	for id, g := range a.tenants {
		if g.inFlight.Load() == 0 && g.limiter.TokensAt(now) >= float64(a.burst) {
			delete(a.tenants, id)
		}
	}
}

// retryAfterSeconds is a Retry-After value: whole seconds, at least one.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
