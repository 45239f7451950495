package store

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// Two stores over one database stand for two worker replicas: racing for
// an hourly budget, exactly one of all their attempts gets the call.
func TestTakeCallIsSharedAcrossReplicas(t *testing.T) {
	dsn := testenv.MySQLDSN(t)
	a, b := openStore(t, dsn), openStore(t, dsn)
	if err := a.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var taken atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for range 5 {
				wait, err := s.TakeCall(ctx, "key-1", time.Hour)
				switch {
				case err != nil:
					t.Error(err)
				case wait == 0:
					taken.Add(1)
				case wait < 59*time.Minute || wait > time.Hour:
					t.Errorf("wait %v, want about an hour", wait)
				}
			}
		})
	}
	wg.Wait()
	if n := taken.Load(); n != 1 {
		t.Fatalf("%d of 40 racing attempts took the hourly call, want exactly 1", n)
	}
	if wait, err := b.TakeCall(ctx, "key-2", time.Hour); err != nil || wait != 0 {
		t.Fatalf("another budget: wait %v, %v; want its own call at once", wait, err)
	}
}

func TestTakeCallComesDueAfterTheInterval(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if wait, err := s.TakeCall(ctx, "key", 200*time.Millisecond); err != nil || wait != 0 {
		t.Fatalf("first call: wait %v, %v", wait, err)
	}
	wait, err := s.TakeCall(ctx, "key", 200*time.Millisecond)
	if err != nil || wait <= 0 || wait > 200*time.Millisecond {
		t.Fatalf("second call at once: wait %v, %v; want a wait within the interval", wait, err)
	}
	for range 5 { // a busy machine may take longer than the wait to come back
		time.Sleep(wait)
		if wait, err = s.TakeCall(ctx, "key", 200*time.Millisecond); err != nil || wait == 0 {
			break
		}
	}
	if err != nil || wait != 0 {
		t.Fatalf("after waiting: wait %v, %v; want the call", wait, err)
	}
	for _, name := range []string{"", strings.Repeat("k", 65)} {
		if _, err := s.TakeCall(ctx, name, time.Second); err == nil {
			t.Errorf("budget name of %d bytes accepted", len(name))
		}
	}
}
