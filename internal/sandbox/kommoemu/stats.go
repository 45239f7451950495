package kommoemu

import (
	"maps"
	"slices"
	"time"
)

// LogEntry is one account request as the emulator saw it.
type LogEntry struct {
	Time    time.Time `json:"time"`    // wall time of arrival
	Account string    `json:"account"` // subdomain as addressed ("" if none)
	Method  string    `json:"method"`
	Route   string    `json:"route"`  // "GET /api/v4/contacts/{id}"
	Query   string    `json:"query"`  // raw query string (Kommo queries carry no secrets)
	Status  int       `json:"status"` // 0: the client went away before an answer
	// UserAgent is the request's User-Agent header, which tells the
	// operator's processes apart ("kommo-unisender-manager",
	// "kommo-unisender-worker").
	UserAgent string `json:"user_agent,omitempty"`
}

// Stats are counters since New or the last ResetStats.
type Stats struct {
	Requests            map[string]int `json:"requests"` // by LogEntry.Route
	Statuses            map[int]int    `json:"statuses"`
	CodeExchanges       int            `json:"code_exchanges"`
	Refreshes           int            `json:"refreshes"`             // successful refresh grants
	GraceRefreshes      int            `json:"grace_refreshes"`       // refreshes with an already-rotated token still in its grace
	ReusedRefreshTokens int            `json:"reused_refresh_tokens"` // refused attempts with a rotated token past its grace
	RateLimited         int            `json:"rate_limited"`          // 429 answers, forced ones included
	Deliveries          int            `json:"deliveries"`            // webhook POSTs attempted
	DeliveryFailures    int            `json:"delivery_failures"`
	DeliveredEvents     int            `json:"delivered_events"` // contact events in successful POSTs
	LogDropped          int            `json:"log_dropped"`      // entries dropped from the front of the log
}

type statsState struct {
	Stats
	log []LogEntry
}

func newStatsState() statsState {
	return statsState{Stats: Stats{Requests: map[string]int{}, Statuses: map[int]int{}}}
}

// record appends to the request log, trimming its front in chunks so the
// bound costs little per request.
func (s *Server) record(t time.Time, acct, method, route, query, userAgent string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.stats
	st.Requests[route]++
	st.Statuses[status]++
	st.log = append(st.log, LogEntry{Time: t, Account: acct, Method: method, Route: route, Query: query, Status: status, UserAgent: userAgent})
	if limit := s.opts.MaxLogEntries; len(st.log) > limit+limit/10 {
		drop := len(st.log) - limit
		st.log = slices.Clone(st.log[drop:])
		st.LogDropped += drop
	}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats.Stats
	out.Requests = maps.Clone(out.Requests)
	out.Statuses = maps.Clone(out.Statuses)
	return out
}

// RequestLog returns a copy of the request log, oldest first.
func (s *Server) RequestLog() []LogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.stats.log)
}

// ResetStats zeroes the counters and empties the log.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = newStatsState()
}

// BusiestWindow slides a window of length d over the arrival times of the
// log's entries (in any order) and returns the most entries one window
// holds, and where that window starts. Kommo's "7 requests per second" is
// such a sliding window: BusiestWindow(log, time.Second) must not exceed it.
func BusiestWindow(log []LogEntry, d time.Duration) (int, time.Time) {
	times := make([]time.Time, len(log))
	for i, e := range log {
		times[i] = e.Time
	}
	slices.SortFunc(times, time.Time.Compare)
	best, at := 0, time.Time{}
	j := 0
	for i := range times {
		for j < len(times) && times[j].Sub(times[i]) < d {
			j++
		}
		if n := j - i; n > best {
			best, at = n, times[i]
		}
	}
	return best, at
}
