// Package sleep waits without outliving a context: a retry's backoff or a
// pacer's spacing ends as soon as the caller gives up.
package sleep

import (
	"context"
	"time"
)

// For waits d, or less if ctx ends first: then it returns ctx.Err(). A d
// of zero or less returns at once, with ctx.Err().
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
