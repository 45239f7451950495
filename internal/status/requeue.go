package status

import (
	"math/rand/v2"
	"time"
)

// Jitter returns d plus a random extra in [0, fraction·d), so that objects
// created together do not all come back at the same instant. It never
// returns less than d; fraction ≤ 0 (or d ≤ 0) returns d unchanged.
func Jitter(d time.Duration, fraction float64) time.Duration {
	extra := time.Duration(float64(d) * fraction)
	if d <= 0 || extra <= 0 {
		return d
	}
	return d + rand.N(extra) //nolint:gosec // spreading load needs no cryptographic randomness
}

// Backoff is cert-manager's retry delay after failedAttempts consecutive
// failures: initial·2^(n−1), capped at maxDelay. Zero or one failure gives
// initial.
func Backoff(failedAttempts int32, initial, maxDelay time.Duration) time.Duration {
	if initial <= 0 {
		return 0
	}
	d := initial
	for n := int32(1); n < failedAttempts; n++ {
		if d >= maxDelay/2 {
			return maxDelay
		}
		d *= 2
	}
	return min(d, maxDelay)
}
