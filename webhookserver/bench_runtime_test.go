package webhookserver_test

import (
	"fmt"
	"math"
	"runtime/metrics"
	"time"
)

// runtimeRound is what the Go runtime of the benchmark process did during
// one wrk round: both servers run in it, one at a time, so a round's
// figures are its server's.
type runtimeRound struct {
	gcCycles      uint64
	allocPerReq   float64       // bytes allocated per request
	gcPauseP99    time.Duration // stop-the-world pauses
	schedP99      time.Duration // time goroutines waited runnable for a P
	mutexWaitPerK time.Duration // time goroutines waited on sync mutexes, per 1,000 requests
}

func (r runtimeRound) String() string {
	return fmt.Sprintf("%d GC cycles, %.0f B allocated per request, GC pause p99 %v, scheduling latency p99 %v, mutex wait %v per 1k requests",
		r.gcCycles, r.allocPerReq, r.gcPauseP99, r.schedP99, r.mutexWaitPerK)
}

var runtimeSamples = []string{
	"/gc/cycles/total:gc-cycles",
	"/gc/heap/allocs:bytes",
	"/sched/pauses/total/gc:seconds",
	"/sched/latencies:seconds",
	"/sync/mutex/wait/total:seconds",
}

type runtimeStart struct{ before []metrics.Sample }

func startRuntimeRound() runtimeStart {
	s := make([]metrics.Sample, len(runtimeSamples))
	for i, name := range runtimeSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	return runtimeStart{before: s}
}

// end reads the runtime again and returns the round's differences.
func (rs runtimeStart) end(requests int64) runtimeRound {
	after := make([]metrics.Sample, len(runtimeSamples))
	for i, name := range runtimeSamples {
		after[i].Name = name
	}
	metrics.Read(after)
	n := float64(max(requests, 1))
	return runtimeRound{
		gcCycles:      after[0].Value.Uint64() - rs.before[0].Value.Uint64(),
		allocPerReq:   float64(after[1].Value.Uint64()-rs.before[1].Value.Uint64()) / n,
		gcPauseP99:    histP99(rs.before[2].Value.Float64Histogram(), after[2].Value.Float64Histogram()),
		schedP99:      histP99(rs.before[3].Value.Float64Histogram(), after[3].Value.Float64Histogram()),
		mutexWaitPerK: time.Duration((after[4].Value.Float64() - rs.before[4].Value.Float64()) / n * 1000 * float64(time.Second)),
	}
}

// histP99 is the 99th percentile of what a runtime histogram gained
// between two reads (the upper bound of its bucket).
func histP99(before, after *metrics.Float64Histogram) time.Duration {
	var total uint64
	diff := make([]uint64, len(after.Counts))
	for i := range after.Counts {
		diff[i] = after.Counts[i] - before.Counts[i]
		total += diff[i]
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(0.99 * float64(total)))
	var seen uint64
	for i, c := range diff {
		if seen += c; seen >= want {
			upper := after.Buckets[i+1]
			if math.IsInf(upper, 1) {
				upper = after.Buckets[i]
			}
			return time.Duration(upper * float64(time.Second))
		}
	}
	return 0
}
