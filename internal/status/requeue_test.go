package status

import (
	"testing"
	"time"
)

func TestJitterStaysWithinBoundsAndVaries(t *testing.T) {
	const d = 10 * time.Second
	seen := map[time.Duration]bool{}
	for range 1000 {
		j := Jitter(d, 0.2)
		if j < d || j >= d+2*time.Second {
			t.Fatalf("Jitter(%s, 0.2) = %s, outside [%s, %s)", d, j, d, d+2*time.Second)
		}
		seen[j] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct values in 1000 draws", len(seen))
	}
	for _, tc := range []struct {
		d time.Duration
		f float64
	}{{0, 0.5}, {-time.Second, 0.5}, {time.Second, 0}, {time.Second, -1}, {1, 0.1}} {
		if got := Jitter(tc.d, tc.f); got != tc.d {
			t.Errorf("Jitter(%s, %v) = %s, want unchanged", tc.d, tc.f, got)
		}
	}
}

func TestBackoff(t *testing.T) {
	const initial, maxDelay = 5 * time.Second, 10 * time.Minute
	cases := []struct {
		n    int32
		want time.Duration
	}{
		{0, 5 * time.Second},
		{1, 5 * time.Second},
		{2, 10 * time.Second},
		{3, 20 * time.Second},
		{7, 320 * time.Second},
		{8, maxDelay}, // 640 s capped
		{40, maxDelay},
		{1 << 30, maxDelay},
	}
	for _, tc := range cases {
		if got := Backoff(tc.n, initial, maxDelay); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
	if got := Backoff(3, time.Minute, 30*time.Second); got != 30*time.Second {
		t.Errorf("cap below initial: got %s", got)
	}
	if got := Backoff(3, 0, time.Minute); got != 0 {
		t.Errorf("zero initial: got %s", got)
	}
}
