package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// A requested stop (the context ends, as on SIGTERM) returns nil — exit
// status 0 — and logs no error line, controller-runtime's "leader election
// lost" after its own stop sequence included, but an info line saying the
// stop was requested.
func TestRequestedStopLogsNoError(t *testing.T) {
	l := startLeader(t, "stop-requested")
	l.cancel()
	if err := l.wait(t); err != nil {
		t.Fatalf("serve returned %v after a requested stop", err)
	}
	time.Sleep(time.Second) // controller-runtime's last lines may come just after Start returned
	out := l.logs.String()
	if lines := errorLines(t, out); len(lines) > 0 {
		t.Fatalf("a requested stop logged errors:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(out, `"msg":"stopped as requested"`) {
		t.Fatalf("no info line for the requested stop in:\n%s", out)
	}
}

// A lease really lost while running (another holder took it over) stays an
// error: serve returns it, and the subcommand exits with status 1.
func TestLostLeaseIsAnError(t *testing.T) {
	l := startLeader(t, "lease-lost")
	defer l.cancel()
	stealLease(t, l.c, l.ns)
	// client-go gives up renewing after controller-runtime's RenewDeadline (10 s).
	if err := l.wait(t); err == nil || !strings.Contains(err.Error(), leaderElectionLost) {
		t.Fatalf("serve returned %v after the lease was lost, want %q", err, leaderElectionLost)
	}
	if strings.Contains(l.logs.String(), `"msg":"stopped as requested"`) {
		t.Fatalf("a lost lease was logged as a requested stop:\n%s", l.logs.String())
	}
}

// leader is a manager built with the subcommand's options (no
// reconcilers: they are not what is tested) that holds its Lease.
type leader struct {
	c      client.Client
	ns     string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

func startLeader(t *testing.T, prefix string) *leader {
	t.Helper()
	c, err := client.New(kube.Config, client.Options{Scheme: mustScheme(t)})
	if err != nil {
		t.Fatal(err)
	}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Create(context.Background(), nsObj); err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	o, err := ParseFlags([]string{"--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--leader-election-namespace", ns, "--namespaces", ns})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	o.Zap.DestWriter = logs
	log := zap.New(zap.UseFlagOptions(&o.Zap))
	opts := managerOptions(mustScheme(t), o, log)
	mgr, err := ctrl.NewManager(kube.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &leader{c: c, ns: ns, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { l.done <- serve(ctx, mgr, log) }()
	select {
	case <-mgr.Elected():
	case err := <-l.done:
		t.Fatalf("manager stopped before it was elected: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("not elected within 30 s")
	}
	return l
}

func (l *leader) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-l.done:
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("the manager did not stop within 60 s; logs:\n%s", l.logs.String())
		return nil
	}
}

// stealLease makes another identity hold the manager's Lease, as a
// partitioned leader finds it after its lease expired and another replica
// took over.
func stealLease(t *testing.T, c client.Client, ns string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var lease coordinationv1.Lease
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: LeaderElectionID}, &lease); err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		lease.Spec.HolderIdentity = ptr.To("another-replica")
		lease.Spec.AcquireTime, lease.Spec.RenewTime = &now, &now
		lease.Spec.LeaseDurationSeconds = ptr.To[int32](3600)
		return c.Update(context.Background(), &lease)
	})
	if err != nil {
		t.Fatalf("taking over the Lease: %v", err)
	}
}

// errorLines returns the JSON log lines at level error.
func errorLines(t *testing.T, out string) []string {
	t.Helper()
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var entry struct {
			Level string `json:"level"`
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if entry.Level == "error" {
			lines = append(lines, line)
		}
	}
	return lines
}

// syncBuffer is a bytes.Buffer the manager's goroutines may write to while
// the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
