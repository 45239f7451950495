package kommoemu

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/time/rate"
)

// newLimiter is a token bucket of Options.RateLimit per second whose burst
// is one second's worth, so a client pacing itself at the limit never
// draws a 429.
func (s *Server) newLimiter() *rate.Limiter {
	if s.opts.RateLimit < 0 {
		return rate.NewLimiter(rate.Inf, 1)
	}
	burst := max(int(math.Ceil(s.opts.RateLimit)), 1)
	return rate.NewLimiter(rate.Limit(s.opts.RateLimit), burst)
}

// allowRate takes a token from the account's bucket. A refusal is counted
// toward the block: BlockAfter429s refusals within BlockWindow block the
// account for good (until SetBlocked lifts it).
func (s *Server) allowRate(a *account) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.limiter.AllowN(now, 1) {
		return true
	}
	s.stats.RateLimited++
	if s.opts.BlockAfter429s <= 0 {
		return false
	}
	cutoff := now.Add(-s.opts.BlockWindow)
	kept := a.recent429[:0]
	for _, t := range a.recent429 {
		if t.After(cutoff) {
			kept = append(kept, t)
		}
	}
	a.recent429 = append(kept, now)
	if len(a.recent429) >= s.opts.BlockAfter429s {
		a.blocked = true
	}
	return false
}

func (s *Server) isBlocked(a *account) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return a.blocked
}

// writeTooManyRequests answers 429, with Retry-After only if configured.
func (s *Server) writeTooManyRequests(w http.ResponseWriter) {
	if s.opts.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(s.opts.RetryAfter))
	}
	writeProblem(w, http.StatusTooManyRequests, "Too Many Requests", "request rate limit exceeded", "")
}
