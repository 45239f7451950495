package kommo_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

func TestHostPolicyAllowsKommoDomainsOverHTTPSOnly(t *testing.T) {
	var kommoOnly kommo.HostPolicy
	var widened kommo.HostPolicy
	if err := widened.Set("http://127.0.0.1, *.crm.example.com"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url              string
		kommoOnly, widen bool
	}{
		{"https://acme.kommo.com", true, true},
		{"https://ACME.Kommo.com./", true, true},
		{"https://acme.amocrm.ru/api", true, true},
		{"https://acme.amocrm.com:443", true, true},
		{"https://a.b.kommo.com", true, true},
		{"http://acme.kommo.com", false, false},                    // plain http leaks the secret on the way
		{"https://kommo.com", false, false},                        // the bare domain is no account's API
		{"https://acme.kommo.com.evil.example", false, false},      // a suffix, not a subdomain
		{"https://evilkommo.com", false, false},                    // not a subdomain either
		{"https://acme.kommo.com@evil.example", false, false},      // the host is evil.example
		{"https://user:pw@acme.kommo.com", false, false},           // user information is refused
		{"https://169.254.169.254/latest/meta-data", false, false}, // cloud metadata
		{"http://kube-apiserver.default.svc", false, false},
		{"http://127.0.0.1:8080/_acct/acme", false, true},
		{"https://127.0.0.1:8443", false, true},
		{"http://127.0.0.2:8080", false, false},
		{"https://eu.crm.example.com", false, true},
		{"http://eu.crm.example.com", false, false}, // widened for https only
		{"ftp://acme.kommo.com", false, false},
		{"acme.kommo.com", false, false},
	} {
		for _, p := range []struct {
			name   string
			policy kommo.HostPolicy
			want   bool
		}{{"Kommo only", kommoOnly, tc.kommoOnly}, {"widened", widened, tc.widen}} {
			err := p.policy.Check(tc.url)
			if (err == nil) != p.want {
				t.Errorf("%s: Check(%q) = %v, want allowed=%t", p.name, tc.url, err, p.want)
			}
			if err != nil && !errors.Is(err, kommo.ErrHostNotAllowed) {
				t.Errorf("%s: Check(%q) = %v, not ErrHostNotAllowed", p.name, tc.url, err)
			}
		}
	}
	err := kommoOnly.Check("https://169.254.169.254/latest/meta-data?token=s3cret")
	if err == nil || !strings.Contains(err.Error(), "--"+kommo.HostsFlagName) || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "meta-data") {
		t.Errorf("refusal %q: want the flag named and neither the path nor the query", err)
	}
	if got := widened.String(); got != "http://127.0.0.1,*.crm.example.com" {
		t.Errorf("String() = %q", got)
	}
	for _, bad := range []string{"*", "*.", "http://", "example.com/path", "host:80", "a b"} {
		var p kommo.HostPolicy
		if err := p.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted a malformed pattern", bad)
		}
	}
}
