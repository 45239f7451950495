package webhookserver

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"time"
)

// UsedTokensAnnotation, on a widget-key Secret, records the widget tokens
// (hashed jti and expiry) whose request wrote it. Every replica of the
// webhook server reads it before writing the Secret, and the write carries
// the resourceVersion it read, so a token replayed to another replica is
// refused there too: the per-replica replay set alone cannot see that.
const UsedTokensAnnotation = "sync.kommo-unisender.io/used-widget-tokens" //nolint:gosec // an annotation name, not a credential

// maxUsedTokens bounds the annotation. Entries leave when their token
// expires; past the bound the soonest to expire go first (hundreds of key
// saves within a token's lifetime of at most an hour do not happen).
const maxUsedTokens = 256

// ErrTokenReused: the request's token already wrote this Secret, through
// this replica or another.
var ErrTokenReused = errors.New("the token was already used")

// TokenClaim is a one-time token's use, recorded with a Secret write.
type TokenClaim struct {
	ID      string    // the token's issuer-scoped id (client id and jti)
	Expires time.Time // after this the record may go
	At      time.Time // the request's time: records expired by then go
}

// record returns the annotation value with c added, or ErrTokenReused when
// the annotation already holds c's token. An unreadable annotation is
// started afresh: it only ever holds what this code wrote.
func (c TokenClaim) record(annotation string) (string, error) {
	used := map[string]int64{}
	if annotation != "" && json.Unmarshal([]byte(annotation), &used) != nil {
		used = map[string]int64{}
	}
	sum := sha256.Sum256([]byte(c.ID))
	id := hex.EncodeToString(sum[:16])
	if exp, ok := used[id]; ok && time.Unix(exp, 0).After(c.At) {
		return "", ErrTokenReused
	}
	maps.DeleteFunc(used, func(_ string, exp int64) bool { return !time.Unix(exp, 0).After(c.At) })
	for len(used) >= maxUsedTokens {
		delete(used, soonestToExpire(used))
	}
	used[id] = c.Expires.Unix() + 1 // rounded up: never forgotten early
	raw, err := json.Marshal(used)
	return string(raw), err
}

func soonestToExpire(used map[string]int64) string {
	ids := slices.Collect(maps.Keys(used))
	return slices.MinFunc(ids, func(a, b string) int { return cmp.Or(cmp.Compare(used[a], used[b]), cmp.Compare(a, b)) })
}
