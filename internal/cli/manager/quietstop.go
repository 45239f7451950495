package manager

import (
	"context"
	"errors"

	"github.com/go-logr/logr"
)

// The line controller-runtime (v0.25) logs when, during its stop sequence,
// it cancels its own leader election: the elector's OnStoppedLeading then
// reports "leader election lost" although nothing was lost
// (kubernetes-sigs/controller-runtime#3535). A lease really lost while the
// manager runs arrives before any stop sequence: Start returns that error,
// and so does Run (exit status 1).
const (
	stopSequenceLine   = "error received after stop sequence was engaged"
	leaderElectionLost = "leader election lost"
)

// quietStop returns log with the errors a requested stop causes turned into
// info lines, so that a stop (SIGTERM, Ctrl-C) logs no error: that one
// line, and errors that are context.Canceled — only the stop cancels the
// manager's contexts (the leader elector's last renewal, for one, fails
// with it).
func quietStop(log logr.Logger) logr.Logger {
	sink := log.GetSink()
	if sink == nil {
		return log
	}
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		sink = cd.WithCallDepth(1) // callers are reported past this wrapper
	}
	return log.WithSink(quietStopSink{sink})
}

// quietStopSink wraps every logging call in exactly one frame (hence the
// call depth of one in quietStop).
type quietStopSink struct{ logr.LogSink }

func (s quietStopSink) Info(level int, msg string, keysAndValues ...any) {
	s.LogSink.Info(level, msg, keysAndValues...)
}

func (s quietStopSink) Error(err error, msg string, keysAndValues ...any) {
	if errors.Is(err, context.Canceled) || (msg == stopSequenceLine && err != nil && err.Error() == leaderElectionLost) {
		if s.Enabled(0) {
			s.LogSink.Info(0, msg+" (stopping)", append(keysAndValues, "error", err.Error())...)
		}
		return
	}
	s.LogSink.Error(err, msg, keysAndValues...)
}

func (s quietStopSink) WithValues(keysAndValues ...any) logr.LogSink {
	return quietStopSink{s.LogSink.WithValues(keysAndValues...)}
}

func (s quietStopSink) WithName(name string) logr.LogSink {
	return quietStopSink{s.LogSink.WithName(name)}
}

func (s quietStopSink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := s.LogSink.(logr.CallDepthLogSink); ok {
		return quietStopSink{cd.WithCallDepth(depth)}
	}
	return s
}
