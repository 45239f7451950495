package controllers

import (
	"hash/fnv"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// refreshSpread is how far into the first half of its refresh window an
// integration's refresh falls: a fraction fixed per integration (hashed
// from its UID). Tokens issued together — many tenants applied at once —
// are then refreshed spread over half the window instead of in one herd,
// and each keeps its place in the window across refreshes and restarts
// (a random draw would change at each reconcile, and refreshDue would not
// see it). The latest refresh still leaves half the window of validity.
func refreshSpread(uid types.UID, window time.Duration) time.Duration {
	if window <= 1 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(uid)) // a hash.Hash never fails to write
	return time.Duration(h.Sum64() % uint64(window/2))
}
