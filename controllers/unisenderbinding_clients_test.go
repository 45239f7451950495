package controllers

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/budget"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// budgetEnv is the Kommo emulator with account "acme" and a store on a
// fresh database, for tests of which budget the manager's clients take
// from.
type budgetEnv struct {
	emu   *kommoemu.Server
	srv   *httptest.Server
	st    *store.Store
	token string
	ki    *v1alpha1.KommoIntegration
}

func newBudgetEnv(t *testing.T) *budgetEnv {
	t.Helper()
	emu, srv := sandboxtest.Kommo(t, kommoemu.Options{RateLimit: -1})
	if _, err := emu.AddAccount("acme"); err != nil {
		t.Fatal(err)
	}
	tok, err := emu.IssueLongLivedToken("acme", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), testenv.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ki := &v1alpha1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "acme"},
		Spec: v1alpha1.KommoIntegrationSpec{BaseURL: srv.URL + "/_acct/acme"}}
	return &budgetEnv{emu: emu, srv: srv, st: st, token: tok, ki: ki}
}

// exhaust takes a slot of the integration's budget as another process
// would, leaving the next one a long way off: in the background bucket
// only (background), or in the account bucket every request takes from.
func (e *budgetEnv) exhaust(t *testing.T, background bool) {
	t.Helper()
	k := budget.Kommo(e.st, e.ki.Namespace, e.ki.Name, e.ki.Spec.RequestsPerSecond(), budget.WithMargin(1e5))
	taker := k.Foreground()
	if background {
		k = budget.Kommo(e.st, e.ki.Namespace, e.ki.Name, e.ki.Spec.RequestsPerSecond(), budget.WithBackgroundShare(1e-5))
		taker = k.Background()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := taker.Take(ctx); err != nil {
		t.Fatal(err)
	}
}

// blocked: a call with a short deadline ends waiting for the budget, and
// Kommo saw nothing of it.
func (e *budgetEnv) blocked(t *testing.T, what string, c *kommo.Client) {
	t.Helper()
	before := len(e.emu.RequestLog())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Account(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: %v, want to wait for the exhausted budget until the deadline", what, err)
	}
	if n := len(e.emu.RequestLog()) - before; n != 0 {
		t.Errorf("%s: %d requests sent past the exhausted budget", what, n)
	}
}

func (e *budgetEnv) passes(t *testing.T, what string, c *kommo.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Account(ctx); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// The binding reconciler keeps one client per integration and lane:
// webhook registration takes from the integration's foreground budget, the
// import runs from its background share, and both from the budget other
// processes take from.
func TestBindingKommoClientsTakeFromTheSharedBudget(t *testing.T) {
	e := newBudgetEnv(t)
	built := 0
	r := &UnisenderBindingReconciler{
		Store: e.st,
		NewKommoClient: func(base string, rps int, _ kommo.TokenSource, b kommo.Budget) *kommo.Client {
			built++
			return kommo.NewClient(base, kommo.WithRateLimit(float64(rps), 1), kommo.WithBudget(b),
				kommo.WithTokenSource(kommo.StaticToken(e.token)))
		},
	}
	fg, bg := r.kommoClientFor(e.ki, laneForeground), r.kommoClientFor(e.ki, laneBackground)
	if fg == bg || r.kommoClientFor(e.ki, laneForeground) != fg || r.kommoClientFor(e.ki, laneBackground) != bg || built != 2 {
		t.Fatalf("want two cached clients, one per lane; built %d", built)
	}

	// A foreground request first: background work keeps to its share
	// only while the foreground has asked recently (budget.DefaultForegroundQuiet).
	e.passes(t, "foreground lane", fg)
	e.exhaust(t, true)
	e.blocked(t, "background lane, background share exhausted while the foreground asks", bg)
	e.passes(t, "foreground lane, background share exhausted", fg)
	e.exhaust(t, false)
	e.blocked(t, "foreground lane, budget exhausted", fg)
}

// The KommoIntegration reconciler's clients (token endpoint, account
// checks) take from the integration's foreground budget when it has a
// store, and from none without one.
func TestIntegrationKommoClientTakesFromTheSharedBudget(t *testing.T) {
	e := newBudgetEnv(t)
	r := &KommoIntegrationReconciler{Store: e.st}
	e.exhaust(t, true)
	e.passes(t, "background share exhausted", r.kommoClient(e.ki, kommo.StaticToken(e.token)))
	e.exhaust(t, false)
	e.blocked(t, "budget exhausted", r.kommoClient(e.ki, kommo.StaticToken(e.token)))
	r.Store = nil
	e.passes(t, "no store", r.kommoClient(e.ki, kommo.StaticToken(e.token)))
}
