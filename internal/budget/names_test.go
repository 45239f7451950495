package budget

import (
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// Bucket names fit the 64-byte column: a long namespace/name becomes a
// digest, distinct per integration, and the foreground and background
// buckets of one integration never meet.
func TestBucketNames(t *testing.T) {
	long := strings.Repeat("n", 63)
	longName := strings.Repeat("x", 253)
	for _, tc := range []struct{ ns, name, want string }{
		{"tenants", "acme", "kommo:tenants/acme"},
		{long, longName, ""},
		{long, longName + "y", ""},
		{long, "acme", ""},
	} {
		k := Kommo(&store.Store{}, tc.ns, tc.name, 7)
		fg, bg := k.fg.steps[0].bucket, k.bg.steps[0].bucket
		if tc.want != "" && fg != tc.want {
			t.Errorf("%s/%s: bucket %q, want %q", tc.ns, tc.name, fg, tc.want)
		}
		for _, b := range []string{fg, bg} {
			if len(b) > maxBucketLen || strings.Contains(b, long) {
				t.Errorf("%s/%s: bucket %q of %d bytes", tc.ns, tc.name, b, len(b))
			}
		}
		if fg == bg || k.bg.steps[1].bucket != fg {
			t.Errorf("%s/%s: foreground %q, background %v", tc.ns, tc.name, fg, k.bg.steps)
		}
	}
	a := Kommo(&store.Store{}, long, longName, 7).fg.steps[0].bucket
	b := Kommo(&store.Store{}, long, longName+"y", 7).fg.steps[0].bucket
	if a == b {
		t.Errorf("two long names share bucket %q", a)
	}
}
