package kommoemu

import (
	"context"
	"net/http"
	"time"
)

// FaultSettings are the fault knobs. They apply to every account's OAuth
// and API requests (not to the admin API), after the block check and
// before the rate limit.
type FaultSettings struct {
	Latency      time.Duration // added (real time) before every answer
	ErrorRate    float64       // probability (0..1) of answering HTTP 500
	Pending429   int           // the next N requests answer 429 (not counted toward a block)
	Pending5xx   int           // the next N requests answer 503 with an HTML body, like a proxy
	PendingHangs int           // the next N requests hang until the client gives up
	// Fail429Until and Fail5xxUntil open windows of wall time: every
	// request that arrives before them answers 429 (not counted toward a
	// block), or 503 with an HTML body, however many come. The admin API
	// does not carry them.
	Fail429Until time.Time
	Fail5xxUntil time.Time
}

type faultState FaultSettings

// SetLatency delays every request by d before it is answered.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Latency = max(d, 0)
}

// SetErrorRate makes each request fail with HTTP 500 with probability p,
// drawn from the seeded RNG.
func (s *Server) SetErrorRate(p float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.ErrorRate = min(max(p, 0), 1)
}

// Force429 makes the next n requests (after any already forced) answer 429.
func (s *Server) Force429(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Pending429 += max(n, 0)
}

// Force5xx makes the next n requests answer 503.
func (s *Server) Force5xx(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Pending5xx += max(n, 0)
}

// Force429For makes every request answer 429 for the next d of wall time
// (a window, where Force429 counts requests).
func (s *Server) Force429For(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Fail429Until = time.Now().Add(max(d, 0))
}

// Force5xxFor makes every request answer 503 for the next d of wall time.
func (s *Server) Force5xxFor(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.Fail5xxUntil = time.Now().Add(max(d, 0))
}

// HangNext makes the next n requests hang until the client gives up, the
// server is closed, or Options.MaxHang passes (then HTTP 504).
func (s *Server) HangNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.PendingHangs += max(n, 0)
}

// SetFaults replaces every knob at once.
func (s *Server) SetFaults(f FaultSettings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.Latency = max(f.Latency, 0)
	f.ErrorRate = min(max(f.ErrorRate, 0), 1)
	f.Pending429, f.Pending5xx, f.PendingHangs = max(f.Pending429, 0), max(f.Pending5xx, 0), max(f.PendingHangs, 0)
	s.faults = faultState(f)
}

// ClearFaults turns every knob off.
func (s *Server) ClearFaults() { s.SetFaults(FaultSettings{}) }

// Faults returns the current knobs.
func (s *Server) Faults() FaultSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return FaultSettings(s.faults)
}

type faultOutcome int

const (
	faultNone faultOutcome = iota
	faultHang
	fault429
	fault503
	fault500
)

// drawFault consumes one pending fault, answers the open fault window, or
// draws against the error rate.
func (s *Server) drawFault() (time.Duration, faultOutcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.faults
	switch {
	case f.PendingHangs > 0:
		f.PendingHangs--
		return f.Latency, faultHang
	case f.Pending429 > 0:
		f.Pending429--
		return f.Latency, fault429
	case f.Pending5xx > 0:
		f.Pending5xx--
		return f.Latency, fault503
	case time.Now().Before(f.Fail429Until):
		return f.Latency, fault429
	case time.Now().Before(f.Fail5xxUntil):
		return f.Latency, fault503
	case f.ErrorRate > 0 && s.rng.Float64() < f.ErrorRate:
		return f.Latency, fault500
	}
	return f.Latency, faultNone
}

// applyFaults sleeps the latency and answers a fault if one is due. It
// returns true when it has answered (or the client has gone).
func (s *Server) applyFaults(ctx context.Context, w http.ResponseWriter) bool {
	latency, outcome := s.drawFault()
	if latency > 0 {
		s.wait(ctx, latency)
		if ctx.Err() != nil {
			return true
		}
	}
	switch outcome {
	case faultHang:
		s.wait(ctx, s.opts.MaxHang)
		if ctx.Err() == nil {
			writeProblem(w, http.StatusGatewayTimeout, "Gateway Timeout", "hung by the fault knob", "")
		}
		return true
	case fault429:
		s.mu.Lock()
		s.stats.RateLimited++
		s.mu.Unlock()
		s.writeTooManyRequests(w)
		return true
	case fault503:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>\n"))
		return true
	case fault500:
		writeProblem(w, http.StatusInternalServerError, "Internal Server Error", "injected by the error rate knob", "")
		return true
	}
	return false
}

// wait sleeps d, or less if the client goes away or the server closes.
func (s *Server) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
}
