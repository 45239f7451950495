package sleep

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestForWaitsTheDuration(t *testing.T) {
	start := time.Now()
	if err := For(context.Background(), 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("waited %v, want at least 20ms", waited)
	}
}

func TestForEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := For(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("For = %v, want the context's error", err)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Fatalf("waited %v after the context ended", waited)
	}
	// An ended context wins over a wait of zero too, every time.
	for range 100 {
		if err := For(ctx, 0); err == nil {
			t.Fatal("For(ended, 0) = nil")
		}
	}
}
