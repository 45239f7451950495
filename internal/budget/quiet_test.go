package budget_test

import (
	"context"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/budget"
)

// While the foreground asks for nothing, the background takes every slot
// of the budget (spaced like the account bucket, not over its share); once
// a foreground request has asked, the background is back to its share
// until the foreground has been quiet for the quiet time.
func TestKommoBackgroundTakesEverySlotWhileForegroundIsQuiet(t *testing.T) {
	const (
		fastRPS = 20 // account slots every 55 ms, background's share every 79 ms
		takes   = 30
	)
	st := processes(t, 1)[0]
	k := budget.Kommo(st, namespace, name, fastRPS)
	account, share := k.Foreground().Intervals()[0], k.Background().Intervals()[0]
	ctx := context.Background()
	run := func() time.Duration {
		start := time.Now()
		for range takes {
			if err := k.Background().Take(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start)
	}
	quiet := run()
	// A share-spaced run cannot be shorter than this: the budget's own
	// spacing, whatever the machine's load.
	shareFloor := (takes - 1) * share
	t.Logf("%d background takes with the foreground quiet: %v (account spacing %v, share spacing %v: at least %v)",
		takes, quiet.Round(time.Millisecond), account, share, shareFloor)
	if quiet >= shareFloor {
		t.Errorf("with the foreground quiet, %d background takes took %v, no faster than the share allows (%v)", takes, quiet, shareFloor)
	}
	if err := k.Foreground().Take(ctx); err != nil {
		t.Fatal(err)
	}
	busy := run() // takes·79 ms ≈ 2.4 s, within the 5 s quiet time
	if busy < shareFloor {
		t.Errorf("right after a foreground request, %d background takes took %v, faster than the share allows (%v)", takes, busy, shareFloor)
	}
}
