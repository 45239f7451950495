package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// Invariant 5: a refresh token is used once. Two managers without leader
// election reconcile the same integration, hammered by forced reconciles,
// with a 3-second token lifetime, and each crashes once between a refresh
// and its persist (a panic in the hook, the claim left behind). Kommo —
// the emulator — must never see a spent refresh token again, the crashes
// must have been recovered through the grace, and the integration must end
// authorized with a working stored token.
func TestKommoIntegrationRotationSafetyTwoManagersAndCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for about 20 s")
	}
	ctx := context.Background()
	c := directClient(t)
	ns := newNamespace(t, c, "ki-rotation")
	sb := newKommoSandbox(t, kommoemu.Options{AccessTokenTTL: 3 * time.Second})

	var crashes atomic.Int32
	// Crash once per manager, on a refresh (a crash after a code exchange
	// loses the code for good: codes have no grace).
	crashOnce := func() func(context.Context, client.ObjectKey, string) error {
		var done atomic.Bool
		return func(_ context.Context, _ client.ObjectKey, grant string) error {
			if grant == "refresh_token" && done.CompareAndSwap(false, true) {
				crashes.Add(1)
				panic("injected crash between refresh and persist")
			}
			return nil
		}
	}
	tune := func(holder string) func(*KommoIntegrationReconciler) {
		return func(r *KommoIntegrationReconciler) {
			r.HolderID = holder
			r.ClaimTTL = 2 * time.Second
			r.BeforePersist = crashOnce()
		}
	}
	ma := startManager(t, ns, tune("manager-a"))
	mb := startManager(t, ns, tune("manager-b"))

	code := sb.code(t)
	createSecret(t, c, ns, "kommo-client", map[string]string{"secret": testClientSecret})
	createSecret(t, c, ns, "kommo-code", map[string]string{"code": code})
	obj := integration(ns, "acme", sb, withCodeRef)
	obj.Spec.RefreshBefore = &metav1.Duration{Duration: 2 * time.Second}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, c, ns, "acme", v1alpha1.ConditionAuthorized, metav1.ConditionTrue, "", waitReady)

	// Hammer: forced reconciles make both managers reconcile at once.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				requestReconcile(t, c, ns, "acme")
			}
		}
	}()
	const wantRefreshes = 16
	eventually(t, 60*time.Second, func() (bool, string) {
		s := sb.emu.Stats()
		return s.Refreshes >= wantRefreshes && crashes.Load() == 2,
			fmt.Sprintf("%d refreshes (want %d), %d crashes (want 2)", s.Refreshes, wantRefreshes, crashes.Load())
	})
	close(stop)
	wg.Wait()

	obj = waitCondition(t, c, ns, "acme", v1alpha1.ConditionReady, metav1.ConditionTrue, "", waitReady)
	if !status.IsTrue(obj, v1alpha1.ConditionAuthorized) || obj.Status.AccountID != sb.acct.ID {
		t.Fatalf("status = %+v", obj.Status)
	}
	_, pair := tokenSecret(t, c, ns, "acme")
	if a, err := sb.accountWith(ctx, pair.AccessToken); err != nil || a.ID != sb.acct.ID {
		t.Fatalf("the stored access token does not work: %v", err)
	}
	s := sb.emu.Stats()
	t.Logf("emulator: %d refreshes, %d grace refreshes, %d reused refresh tokens, %d token calls, %d account calls; manager a %v ok / b %v ok",
		s.Refreshes, s.GraceRefreshes, s.ReusedRefreshTokens, s.Requests["POST /oauth2/access_token"], s.Requests["GET /api/v4/account"],
		counterValue(t, ma, "kommo_unisender_token_refreshes_total", map[string]string{"grant": "refresh_token", "result": "success"}),
		counterValue(t, mb, "kommo_unisender_token_refreshes_total", map[string]string{"grant": "refresh_token", "result": "success"}))
	contended := strings.Count(ma.logs.String(), "another writer is at the data") + strings.Count(mb.logs.String(), "another writer is at the data")
	t.Logf("reconciles that found the token claimed or lost a write race: %d", contended)
	if contended == 0 {
		t.Fatal("the managers never contended: the test does not test rotation safety")
	}
	if s.ReusedRefreshTokens != 0 {
		t.Fatalf("%d refresh tokens were spent twice", s.ReusedRefreshTokens)
	}
	if s.GraceRefreshes < 1 {
		t.Fatalf("no refresh went through the grace: the crashes did not lose a pair (%d grace refreshes)", s.GraceRefreshes)
	}
	if s.CodeExchanges != 1 {
		t.Fatalf("%d code exchanges, want 1", s.CodeExchanges)
	}
	assertNoSecretLeak(t, c, ns, []*testManager{ma, mb}, testClientSecret, code, pair.AccessToken, pair.RefreshToken)
}

// metricValue finds one series of a manager's registry by its labels.
func metricValue(t testing.TB, m *testManager, name string, labels map[string]string) (*dto.Metric, bool) {
	t.Helper()
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			return metric, true
		}
	}
	return nil, false
}

func counterValue(t testing.TB, m *testManager, name string, labels map[string]string) float64 {
	t.Helper()
	metric, ok := metricValue(t, m, name, labels)
	if !ok {
		return 0
	}
	return metric.GetCounter().GetValue()
}

func gaugeValue(t testing.TB, m *testManager, name string, labels map[string]string) float64 {
	t.Helper()
	metric, ok := metricValue(t, m, name, labels)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return metric.GetGauge().GetValue()
}

// A manager stopped while its refresh waits for the shared budget has sent
// nothing, so it must release its claim: its successor refreshes at once
// instead of waiting out the claim (two minutes by default) with the token
// expiring meanwhile.
func TestKommoIntegrationStoppedManagerReleasesAnUnsentRefreshClaim(t *testing.T) {
	c := directClient(t)
	ns := newNamespace(t, c, "ki-release")
	sb := newKommoSandbox(t, kommoemu.Options{AccessTokenTTL: 4 * time.Second})
	gate := &gateBudget{}
	first := startManager(t, ns, func(r *KommoIntegrationReconciler) {
		r.HolderID = "manager-first"
		r.KommoOptions = append(r.KommoOptions, kommo.WithBudget(gate))
	})
	// With a 4-second token, a refresh is due 2 s after each one.
	createReadyIntegration(t, c, ns, sb)

	// The next refresh claims the Secret and then waits for the budget.
	gate.close()
	eventually(t, 20*time.Second, func() (bool, string) {
		sec, _ := tokenSecret(t, c, ns, "acme")
		claim, ok := tokens.ClaimOf(sec)
		return ok && claim.Holder == "manager-first", fmt.Sprintf("claim %+v", claim)
	})
	first.stop()
	sec, _ := tokenSecret(t, c, ns, "acme")
	if claim, ok := tokens.ClaimOf(sec); ok {
		t.Fatalf("the stopped manager left its claim %+v though its refresh was never sent", claim)
	}

	before := sb.emu.Stats().Refreshes
	startManager(t, ns, func(r *KommoIntegrationReconciler) { r.HolderID = "manager-second" })
	eventually(t, 20*time.Second, func() (bool, string) {
		n := sb.emu.Stats().Refreshes - before
		return n >= 1, fmt.Sprintf("%d refreshes by the second manager", n)
	})
}

// gateBudget lets every request through until closed, then holds each
// refresh until its context ends, as a spent shared budget would. It tells
// a refresh by its context: a refresh's call ends at its claim's call
// deadline (half the 2-minute claim), the account checks' at the 2-minute
// kommoCallTimeout, and those pass, so that one of them running when the
// gate closes does not keep the refresh from starting.
type gateBudget struct{ closed atomic.Bool }

func (g *gateBudget) close() { g.closed.Store(true) }

func (g *gateBudget) Take(ctx context.Context) error {
	dl, ok := ctx.Deadline()
	if !g.closed.Load() || !ok || time.Until(dl) > kommoCallTimeout-30*time.Second {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}
