package unisenderemu

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// TransientMode chooses how a random transient error looks.
type TransientMode int

const (
	// TransientRetryLater answers {"error":…,"code":"retry_later"} in HTTP 200.
	TransientRetryLater TransientMode = iota
	// TransientHTTP503 answers HTTP 503 with no JSON body.
	TransientHTTP503
	// TransientMixed picks one of the two above at random for each error.
	TransientMixed
)

var transientModeNames = map[TransientMode]string{
	TransientRetryLater: "retry_later",
	TransientHTTP503:    "http503",
	TransientMixed:      "mixed",
}

// MarshalText names the mode in the admin API: retry_later, http503, mixed.
func (m TransientMode) MarshalText() ([]byte, error) {
	name, ok := transientModeNames[m]
	if !ok {
		return nil, fmt.Errorf("unknown transient mode %d", int(m))
	}
	return []byte(name), nil
}

// UnmarshalText reads the names MarshalText writes.
func (m *TransientMode) UnmarshalText(b []byte) error {
	for mode, name := range transientModeNames {
		if name == string(b) {
			*m = mode
			return nil
		}
	}
	return fmt.Errorf("unknown transient mode %q (want retry_later, http503 or mixed)", truncate.Text(string(b), 40))
}

// ForcedError is the answer forced on a coming call by ForceErrors.
type ForcedError struct {
	Code       string `json:"code"`        // API error code, e.g. retry_later, invalid_api_key
	Message    string `json:"message"`     // error message; empty means "Forced error"
	HTTPStatus int    `json:"http_status"` // if set, answer this status with no JSON body instead
	// AfterCall runs the call first and then answers the error: the state
	// changes but the client never learns it, as when an answer is lost.
	AfterCall bool `json:"after_call"`
}

// FaultSettings are the current fault knobs.
type FaultSettings struct {
	Latency            time.Duration `json:"latency"`
	TransientErrorRate float64       `json:"transient_error_rate"`
	TransientMode      TransientMode `json:"transient_mode"`
	PendingForced      []ForcedError `json:"pending_forced"`
	PendingHangs       int           `json:"pending_hangs"`
}

type faultState struct {
	latency       time.Duration
	transientRate float64
	transientMode TransientMode
	forced        []ForcedError
	hangs         int
}

// SetLatency delays every API call by d (real time) before it is answered.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.latency = max(d, 0)
}

// SetTransientErrorRate makes each API call fail with probability p (0..1),
// drawn from the seeded RNG, in the given mode.
func (s *Server) SetTransientErrorRate(p float64, mode TransientMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.transientRate = min(max(p, 0), 1)
	s.faults.transientMode = mode
}

// ForceErrors makes the next n API calls (after any already forced) answer e,
// before the key is even checked.
func (s *Server) ForceErrors(n int, e ForcedError) {
	if e.Code == "" && e.HTTPStatus == 0 {
		e.Code = "unspecified"
	}
	if e.Message == "" {
		e.Message = "Forced error"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults.forced = append(s.faults.forced, e)
	}
}

// HangNext makes the next n API calls hang until the client gives up, the
// server is closed, or Options.MaxHang passes (then HTTP 504).
func (s *Server) HangNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.hangs += max(n, 0)
}

// ClearFaults turns every fault knob off.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = faultState{}
}

// Faults returns the current fault knobs.
func (s *Server) Faults() FaultSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return FaultSettings{
		Latency:            s.faults.latency,
		TransientErrorRate: s.faults.transientRate,
		TransientMode:      s.faults.transientMode,
		PendingForced:      append([]ForcedError(nil), s.faults.forced...),
		PendingHangs:       s.faults.hangs,
	}
}

// faultDecision is what the knobs chose for one call.
type faultDecision struct {
	latency time.Duration
	hang    bool
	forced  *ForcedError
}

func (s *Server) decideFaults() faultDecision {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := faultDecision{latency: s.faults.latency}
	switch {
	case s.faults.hangs > 0:
		s.faults.hangs--
		d.hang = true
	case len(s.faults.forced) > 0:
		next := s.faults.forced[0]
		d.forced = &next
		s.faults.forced = s.faults.forced[1:]
	case s.faults.transientRate > 0 && s.rng.Float64() < s.faults.transientRate:
		d.forced = s.randomTransient()
	}
	return d
}

func (s *Server) randomTransient() *ForcedError {
	mode := s.faults.transientMode
	if mode == TransientMixed {
		mode = TransientRetryLater
		if s.rng.IntN(2) == 1 {
			mode = TransientHTTP503
		}
	}
	if mode == TransientHTTP503 {
		return &ForcedError{HTTPStatus: http.StatusServiceUnavailable}
	}
	return &ForcedError{Code: "retry_later", Message: "Temporary error, retry later"}
}

// applyFaults runs the knobs for one call. faulted reports that they decided
// the answer (status 0: the client left); after is an error to answer once
// the call has run.
func (s *Server) applyFaults(ctx context.Context) (status int, body any, faulted bool, after *ForcedError) {
	d := s.decideFaults()
	if d.forced != nil && d.forced.AfterCall {
		after = d.forced
	}
	if d.latency > 0 && !s.sleep(ctx, d.latency) {
		return 0, nil, true, nil
	}
	switch {
	case d.hang:
		if !s.sleep(ctx, s.opts.MaxHang) {
			return 0, nil, true, nil
		}
		return http.StatusGatewayTimeout, nil, true, nil
	case d.forced != nil && !d.forced.AfterCall:
		status, body := d.forced.answer()
		return status, body, true, nil
	}
	return 0, nil, false, after
}

// answer is the reply a forced error gives.
func (e *ForcedError) answer() (int, any) {
	if e.HTTPStatus != 0 {
		return e.HTTPStatus, nil
	}
	return http.StatusOK, errorEnvelope(&apiError{Code: e.Code, Message: e.Message})
}

// sleep waits d; false means the client left first. Close ends it early.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closed:
		return true
	case <-ctx.Done():
		return false
	}
}
