// Package memlimit gives the Go runtime a soft memory limit (GOMEMLIMIT)
// from the container's memory limit, so that the garbage collector works
// harder as the process nears the limit instead of the kernel killing it
// (GOGC alone lets the heap double between collections).
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Share is the part of the container's limit given to the Go heap: the
// rest is for what the runtime does not count (stacks of cgo threads, the
// binary's mappings) and for the collector's reaction time.
const Share = 0.9

// cgroupFiles are where a container sees its memory limit: cgroup v2,
// then v1. Both are the container's own cgroup under its cgroup namespace.
var cgroupFiles = []string{"memory.max", "memory/memory.limit_in_bytes"}

// unlimitedV1 is where cgroup v1 reports no limit (a page-rounded
// MaxInt64); anything from here on means none.
const unlimitedV1 = 1 << 62

// FromCgroup sets the runtime's memory limit to Share of the cgroup's
// memory limit read under root (/sys/fs/cgroup in a container) and returns
// it. It does nothing (0, nil) when GOMEMLIMIT is set — the operator's
// choice wins — or when there is no limit.
func FromCgroup(root string) (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	limit, err := cgroupLimit(root)
	if err != nil || limit == 0 {
		return 0, err
	}
	soft := int64(float64(limit) * Share)
	debug.SetMemoryLimit(soft)
	return soft, nil
}

// cgroupLimit reads the memory limit in bytes, 0 for none.
func cgroupLimit(root string) (int64, error) {
	for _, name := range cgroupFiles {
		b, err := os.ReadFile(filepath.Join(root, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("memory limit %q in %s is not a size", v, name)
		}
		if n >= unlimitedV1 {
			return 0, nil
		}
		return n, nil
	}
	return 0, nil
}
