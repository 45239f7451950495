package tenant

import "testing"

func TestRoundTrips(t *testing.T) {
	k := Key{Namespace: "acme", Name: "main.list"}
	if got, err := ParseURLSegment(k.URLSegment()); err != nil || got != k {
		t.Fatalf("ParseURLSegment(%q) = %v, %v", k.URLSegment(), got, err)
	}
	if got, err := Parse(k.String()); err != nil || got != k {
		t.Fatalf("Parse(%q) = %v, %v", k.String(), got, err)
	}
}

func TestRejectsMalformed(t *testing.T) {
	for _, s := range []string{"", "acme", ".name", "acme.", "ACME.x", "a b.c", "acme.UPPER", "acme./x"} {
		if _, err := ParseURLSegment(s); err == nil {
			t.Errorf("ParseURLSegment(%q) accepted", s)
		}
	}
	for _, s := range []string{"", "acme", "/name", "acme/", "ac.me/x"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}
