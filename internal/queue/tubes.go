package queue

import (
	"hash/fnv"
	"strconv"
)

// TubeForTenant spreads tenants over shards tubes named "<prefix>.<n>", so
// that each tenant's jobs always land in the same tube (FNV-1a of the
// tenant name, stable across processes and releases). With shards <= 1 it
// returns prefix itself. Changing shards moves tenants between tubes; drain
// the old tubes first if per-tenant ordering matters during the change.
func TubeForTenant(prefix, tenant string, shards int) string {
	if shards <= 1 {
		return prefix
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	return prefix + "." + strconv.FormatUint(uint64(h.Sum32()%uint32(shards)), 10)
}

// ShardTubes lists every tube TubeForTenant can return for prefix and
// shards, for a worker that serves them all.
func ShardTubes(prefix string, shards int) []string {
	if shards <= 1 {
		return []string{prefix}
	}
	tubes := make([]string, shards)
	for i := range tubes {
		tubes[i] = prefix + "." + strconv.Itoa(i)
	}
	return tubes
}
