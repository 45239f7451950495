// Package e2e drives the whole system through real processes: the sandbox
// changes Kommo contacts and delivers webhooks to the webhook server, which
// queues them in beanstalkd; a worker applies them to the sandbox's Unisender
// with its state in MariaDB — while tokens are refreshed, a worker is killed
// with SIGKILL and restarted, and the manager is restarted.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// system starts everything from the binary `make test-binaries` built from
// this checkout.
func system(t *testing.T, ctx context.Context) *devenv.Env {
	t.Helper()
	env := devtest.Start(t, ctx, devenv.Options{
		Sandbox: true, SandboxAccessTokenTTL: 8 * time.Second, SeedContacts: 300,
	})
	return env
}

func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	env := system(t, ctx)
	if err := env.ApplySampleTenant(ctx); err != nil {
		t.Fatal(err)
	}
	waitImported(t, ctx, env)
	listID := sampleListID(t, ctx, env)
	sb := sandbox{env: env, listID: listID}
	watch := newLatencyWatch(sb)
	go watch.run(ctx)

	// Live changes, with a worker killed and restarted and the manager
	// restarted in the middle of them.
	ids := map[int]int64{}
	for i := 0; i < 60; i++ {
		email := fmt.Sprintf("live-%03d@example.com", i)
		watch.expect(email)
		ids[i] = sb.createContact(t, fmt.Sprintf("Live %d", i), email)
		switch i {
		case 20:
			env.Processes["worker"].Kill()
			if err := env.Processes["worker"].Start(); err != nil {
				t.Fatal(err)
			}
		case 40:
			if err := env.Processes["manager"].Restart(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 0; i < 60; i += 3 {
		sb.updateContact(t, ids[i], fmt.Sprintf("Live %d changed", i), fmt.Sprintf("changed-%03d@example.com", i))
	}
	for i := 1; i < 60; i += 5 {
		sb.deleteContact(t, ids[i])
	}

	waitConverged(t, ctx, sb)

	// The sandbox token lives 8 s: wait for two refreshes, then show the
	// chain still works on the rotated tokens.
	waitRefreshes(t, ctx, env, 2)
	for i := 60; i < 70; i++ {
		email := fmt.Sprintf("live-%03d@example.com", i)
		watch.expect(email)
		sb.createContact(t, fmt.Sprintf("Live %d", i), email)
	}
	waitConverged(t, ctx, sb)
	assertAuthorized(t, ctx, env)
	p50, p99, n := watch.percentiles()
	t.Logf("end-to-end latency (contact created in Kommo → in the Unisender list) over %d contacts: p50 %v, p99 %v", n, p50, p99)
	fmt.Printf("e2e latency: p50=%v p99=%v (n=%d)\n", p50, p99, n)
}

// waitImported waits for the initial import; that it imported everything is
// shown by the convergence check at the end.
func waitImported(t *testing.T, ctx context.Context, env *devenv.Env) {
	t.Helper()
	var last v1alpha1.UnisenderBindingStatus
	for ctx.Err() == nil {
		st, err := env.SampleBindingStatus(ctx)
		if err == nil {
			last = st
			if st.Import != nil && st.Import.Phase == v1alpha1.ImportCompleted {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("the initial import did not complete: %+v", last)
}

func sampleListID(t *testing.T, ctx context.Context, env *devenv.Env) int64 {
	st, err := env.SampleBindingStatus(ctx)
	if err != nil || st.ListID == 0 {
		t.Fatalf("no list id in the binding status (%v)", err)
	}
	return st.ListID
}

// waitConverged waits until the Unisender list holds exactly the e-mails of
// Kommo's live contacts.
func waitConverged(t *testing.T, ctx context.Context, sb sandbox) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var want, got []string
	for time.Now().Before(deadline) && ctx.Err() == nil {
		want, got = sb.kommoEmails(t), sb.listEmails(t)
		if slices.Equal(want, got) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the Unisender list did not converge on Kommo:\n  only in Kommo: %v\n  only in Unisender: %v",
		devtest.Minus(want, got), devtest.Minus(got, want))
}

type kommoStats struct {
	ReusedRefreshTokens int `json:"reused_refresh_tokens"`
	Refreshes           int `json:"refreshes"`
}

// waitRefreshes waits until the sandbox granted n token refreshes.
func waitRefreshes(t *testing.T, ctx context.Context, env *devenv.Env, n int) {
	t.Helper()
	var stats kommoStats
	// Up to 150 s: a manager restarted while its predecessor held a
	// refresh claim waits for the claim to expire (DefaultClaimTTL, 2 min)
	// before it refreshes. Full-suite runs of make test have shown a
	// restarted manager not refreshing within 60 s (see integrationState
	// for what the failure reports).
	for deadline := time.Now().Add(150 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(500 * time.Millisecond) {
		getJSON(t, env.KommoURL+"/_admin/stats", &stats)
		if stats.Refreshes >= n {
			return
		}
	}
	t.Fatalf("the sandbox granted %d token refreshes, want at least %d; %s", stats.Refreshes, n, integrationState(ctx, env))
}

// integrationState describes the sample integration's status and the
// namespace's events (both free of secrets), for a failure message.
func integrationState(ctx context.Context, env *devenv.Env) string {
	var ki v1alpha1.KommoIntegration
	if err := env.Client.Get(ctx, keyOf(devenv.SampleNamespace, devenv.SampleIntegration), &ki); err != nil {
		return "integration: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "integration: tokenExpiresAt %v, lastRefreshTime %v, failedAttempts %d, lastFailureTime %v; conditions:",
		ki.Status.TokenExpiresAt, ki.Status.LastRefreshTime, ki.Status.FailedAttempts, ki.Status.LastFailureTime)
	for _, c := range ki.Status.Conditions {
		fmt.Fprintf(&b, " [%s=%s %s: %s]", c.Type, c.Status, c.Reason, c.Message)
	}
	var sec corev1.Secret
	if err := env.Client.Get(ctx, keyOf(devenv.SampleNamespace, ki.Status.TokenSecretName), &sec); err == nil {
		fmt.Fprintf(&b, "; token Secret claim %q, obtained-at %q", sec.Annotations[tokens.ClaimAnnotation], sec.Annotations[tokens.ObtainedAtAnnotation])
	}
	var events corev1.EventList
	if err := env.Client.List(ctx, &events, client.InNamespace(devenv.SampleNamespace)); err == nil {
		b.WriteString("; events:")
		for _, e := range events.Items {
			fmt.Fprintf(&b, " [%s %s/%s %s ×%d: %s]", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Count, e.Message)
		}
	}
	return b.String()
}

// assertAuthorized checks that the integration stayed authorized and that
// no refresh token was ever used twice.
func assertAuthorized(t *testing.T, ctx context.Context, env *devenv.Env) {
	var ki v1alpha1.KommoIntegration
	if err := env.Client.Get(ctx, keyOf(devenv.SampleNamespace, devenv.SampleIntegration), &ki); err != nil {
		t.Fatal(err)
	}
	for _, c := range ki.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady && c.Status != "True" {
			t.Fatalf("the integration is not Ready at the end: %s: %s", c.Reason, c.Message)
		}
	}
	var stats kommoStats
	getJSON(t, env.KommoURL+"/_admin/stats", &stats)
	if stats.ReusedRefreshTokens != 0 {
		t.Fatalf("the sandbox saw %d reused refresh tokens", stats.ReusedRefreshTokens)
	}
	t.Logf("token refreshes during the run: %d, reused refresh tokens: 0", stats.Refreshes)
}

// latencyWatch records when each expected address first shows up in the list.
type latencyWatch struct {
	sb      sandbox
	mu      sync.Mutex
	sent    map[string]time.Time
	arrived map[string]time.Duration
}

func newLatencyWatch(sb sandbox) *latencyWatch {
	return &latencyWatch{sb: sb, sent: map[string]time.Time{}, arrived: map[string]time.Duration{}}
}

func (w *latencyWatch) expect(email string) {
	w.mu.Lock()
	w.sent[email] = time.Now()
	w.mu.Unlock()
}

func (w *latencyWatch) run(ctx context.Context) {
	for ctx.Err() == nil {
		members, err := w.sb.members()
		if err == nil {
			now := time.Now()
			w.mu.Lock()
			for _, m := range members {
				if at, ok := w.sent[m]; ok {
					if _, seen := w.arrived[m]; !seen {
						w.arrived[m] = now.Sub(at)
					}
				}
			}
			w.mu.Unlock()
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (w *latencyWatch) percentiles() (p50, p99 time.Duration, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var d []time.Duration
	for _, v := range w.arrived {
		d = append(d, v)
	}
	if len(d) == 0 {
		return 0, 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[(len(d)*99)/100], len(d)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := devenv.SandboxJSON(http.MethodGet, url, nil, v); err != nil {
		t.Fatal(err)
	}
}
