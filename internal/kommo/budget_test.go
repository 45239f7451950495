package kommo_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

// countingBudget counts takes, and the requests the emulator had logged at
// each take, and fails when err is set.
type countingBudget struct {
	mu     sync.Mutex
	emu    *kommoemu.Server
	takes  int
	before []int // len(emu.RequestLog()) at each take
	err    error
}

func (b *countingBudget) Take(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	b.takes++
	b.before = append(b.before, len(b.emu.RequestLog()))
	return ctx.Err()
}

// Every attempt takes from the budget before it is sent: first tries,
// retries after 429 and 5xx, and token endpoint calls.
func TestBudgetIsTakenBeforeEveryAttempt(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	b := &countingBudget{emu: e.emu}
	c := e.client(t, kommo.WithBudget(b))
	e.emu.Force429(2)
	e.emu.Force5xx(1)
	if _, err := c.Account(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.takes != 4 || len(e.emu.RequestLog()) != 4 {
		t.Fatalf("%d takes for %d requests, want 4 for 4 (429, 429, 5xx, served)", b.takes, len(e.emu.RequestLog()))
	}
	for i, n := range b.before {
		if n != i {
			t.Errorf("take %d came after %d requests, want each take before its own request", i, n)
		}
	}

	code, err := e.emu.IssueAuthCode("acme", clientID)
	if err != nil {
		t.Fatal(err)
	}
	tc := kommo.NewClient(e.base, kommo.WithHTTPClient(e.srv.Client()), kommo.WithRateLimit(0, 1), kommo.WithBudget(b))
	if _, err := tc.ExchangeCode(context.Background(), creds, code); err != nil {
		t.Fatal(err)
	}
	if b.takes != 5 {
		t.Errorf("code exchange: %d takes in all, want 5", b.takes)
	}
}

// A budget that fails stops the call before anything is sent, at once
// (no retry), with the budget's error.
func TestBudgetFailureSendsNothing(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	broken := errors.New("store unreachable")
	c := e.client(t, kommo.WithBudget(&countingBudget{emu: e.emu, err: broken}))
	_, err := c.GetContact(context.Background(), 1)
	if !errors.Is(err, broken) || !strings.Contains(err.Error(), "budget") || !errors.Is(err, kommo.ErrNotSent) {
		t.Fatalf("err %v, want the budget's error, marked not sent", err)
	}
	if n := len(e.emu.RequestLog()); n != 0 {
		t.Errorf("%d requests sent without the budget", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c = e.client(t, kommo.WithBudget(&countingBudget{emu: e.emu}))
	if _, err := c.GetContact(ctx, 1); !errors.Is(err, context.Canceled) || !errors.Is(err, kommo.ErrNotSent) {
		t.Errorf("ended context: err %v, want context.Canceled, marked not sent", err)
	}
	if n := len(e.emu.RequestLog()); n != 0 {
		t.Errorf("%d requests sent after the context ended", n)
	}
}

// A call whose requests reached Kommo is never marked not sent, even when
// it fails before an answer: Kommo may have acted on it.
func TestSentCallIsNotMarkedNotSent(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	e.emu.Force5xx(1)
	c := e.client(t, kommo.WithMaxRetries(0))
	_, err := c.GetContact(context.Background(), 1)
	if !errors.Is(err, kommo.ErrServer) || errors.Is(err, kommo.ErrNotSent) {
		t.Fatalf("err %v, want a server error not marked not sent", err)
	}
}
