package manager

import "testing"

func TestParseFlagsMaxConcurrentReconciles(t *testing.T) {
	o, err := ParseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxConcurrentReconciles != DefaultMaxConcurrentReconciles {
		t.Fatalf("default = %d, want %d", o.MaxConcurrentReconciles, DefaultMaxConcurrentReconciles)
	}
	if o, err = ParseFlags([]string{"--max-concurrent-reconciles", "3"}); err != nil || o.MaxConcurrentReconciles != 3 {
		t.Fatalf("--max-concurrent-reconciles 3: %d, %v", o.MaxConcurrentReconciles, err)
	}
	for _, v := range []string{"0", "-1"} {
		if _, err := ParseFlags([]string{"--max-concurrent-reconciles", v}); err == nil {
			t.Errorf("--max-concurrent-reconciles %s accepted", v)
		}
	}
}
