package emailaddr

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Ann@Example.COM":     "ann@example.com",
		"  bob@example.com\t": "bob@example.com",
		"":                    "",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
