package namespaces

import (
	"flag"
	"strings"
	"testing"
)

func TestListFlag(t *testing.T) {
	parse := func(args ...string) (List, error) {
		var l List
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		fs.Var(&l, "namespaces", FlagUsage)
		return l, fs.Parse(args)
	}
	l, err := parse("--namespaces", " shop-a, shop-b,,")
	if err != nil || strings.Join(l, "|") != "shop-a|shop-b" {
		t.Fatalf("parsed %q, %v", l, err)
	}
	cfg := CacheConfig(l)
	_, a := cfg["shop-a"]
	_, b := cfg["shop-b"]
	if len(cfg) != 2 || !a || !b {
		t.Fatalf("cache config %v, want shop-a and shop-b", cfg)
	}
	if l, err := parse(); err != nil || CacheConfig(l) != nil {
		t.Fatalf("no flag: %q, %v; want every namespace (nil config)", l, err)
	}
	// A typo must stop the process, not make it watch a namespace that
	// cannot exist.
	for _, bad := range []string{"Shop", "shop_a", "a,-b", strings.Repeat("a", 64)} {
		if _, err := parse("--namespaces", bad); err == nil || !strings.Contains(err.Error(), "is not a namespace name") {
			t.Errorf("--namespaces=%s: %v, want a refusal naming it", bad, err)
		}
	}
}
