package sandboxtest

import (
	"sync"
	"time"
)

// Clock is a test's time: it stands still until the test moves it, and is
// safe to read from the goroutines of the code under test. Its Now is the
// Clock option of the emulators, the webhook server and the reconcilers.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d (backwards when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
