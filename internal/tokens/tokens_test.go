package tokens

import (
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPairRoundTripsThroughASecret(t *testing.T) {
	exp := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "acme-tokens"}}
	Pair{AccessToken: "a", RefreshToken: "r", ExpiresAt: exp}.Store(s)
	if string(s.Data[KeyExpiresAt]) != "2026-03-04T05:06:07Z" {
		t.Fatalf("expires_at = %q", s.Data[KeyExpiresAt])
	}
	p, err := FromSecret(s)
	if err != nil || p.AccessToken != "a" || p.RefreshToken != "r" || !p.ExpiresAt.Equal(exp) {
		t.Fatalf("FromSecret = %+v, %v", p, err)
	}
	if !p.Refreshable() || p.ExpiredAt(exp.Add(-time.Second)) || !p.ExpiredAt(exp) {
		t.Fatal("Refreshable/ExpiredAt wrong")
	}

	// A long-lived token: no refresh token, unknown expiry.
	Pair{AccessToken: "b"}.Store(s)
	p, err = FromSecret(s)
	if err != nil || p.Refreshable() || !p.ExpiresAt.IsZero() || p.ExpiredAt(time.Now().Add(1000*time.Hour)) {
		t.Fatalf("long-lived = %+v, %v", p, err)
	}
}

func TestFromSecretRefusesEmptyAndMalformed(t *testing.T) {
	if _, err := FromSecret(&corev1.Secret{}); err != ErrNoToken {
		t.Fatalf("empty Secret: %v", err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Data: map[string][]byte{KeyAccessToken: []byte("sekret-access"), KeyExpiresAt: []byte("tomorrow")}}
	_, err := FromSecret(s)
	if err == nil || strings.Contains(err.Error(), "sekret") {
		t.Fatalf("malformed expiry: %v", err)
	}
}

func TestParseClaim(t *testing.T) {
	c := Claim{Holder: "pod-a-1f2e", Deadline: time.Date(2026, 1, 1, 0, 0, 1, 500, time.UTC)}
	got, ok := ParseClaim(c.String())
	if !ok || got.Holder != c.Holder || !got.Deadline.Equal(c.Deadline) {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	// A holder with a slash still parses: the deadline is after the last one.
	got, ok = ParseClaim("ns/pod/2026-01-01T00:00:00Z")
	if !ok || got.Holder != "ns/pod" {
		t.Fatalf("slash in holder: %+v %v", got, ok)
	}
	for _, bad := range []string{"", "holder", "/2026-01-01T00:00:00Z", "h/yesterday"} {
		if _, ok := ParseClaim(bad); ok {
			t.Errorf("ParseClaim(%q) accepted", bad)
		}
	}
	if !c.LiveAt(c.Deadline.Add(-time.Nanosecond)) || c.LiveAt(c.Deadline) {
		t.Fatal("LiveAt wrong at the deadline")
	}
}

func TestCallbackState(t *testing.T) {
	state := CallbackState("team-a", "acme.prod", "client-secret-1")
	key, err := ParseCallbackState(state)
	if err != nil || key.Namespace != "team-a" || key.Name != "acme.prod" {
		t.Fatalf("ParseCallbackState(%q) = %v, %v", state, key, err)
	}
	if strings.Contains(state, "client-secret-1") {
		t.Fatal("state contains the client secret")
	}
	if !VerifyCallbackState(state, "client-secret-1") {
		t.Fatal("own state refused")
	}
	if VerifyCallbackState(state, "client-secret-2") {
		t.Fatal("state verified with another client secret")
	}
	other := CallbackState("team-a", "acme", "client-secret-1")
	if other == state {
		t.Fatal("two integrations share a state")
	}
	// The tag of one integration does not vouch for another name.
	forged := "team-a.evil." + state[strings.LastIndexByte(state, '.')+1:]
	if VerifyCallbackState(forged, "client-secret-1") {
		t.Fatal("forged state verified")
	}
	for _, bad := range []string{"", "nodots", "ns.name", ".name." + strings.Repeat("a", stateTagLen), "ns.." + strings.Repeat("a", stateTagLen), "ns.name.short"} {
		if _, err := ParseCallbackState(bad); err == nil {
			t.Errorf("ParseCallbackState(%q) accepted", bad)
		}
		if VerifyCallbackState(bad, "client-secret-1") {
			t.Errorf("VerifyCallbackState(%q) accepted", bad)
		}
	}
}

func TestAuthorizationURL(t *testing.T) {
	cases := []struct{ base, host string }{
		{"https://acme.kommo.com", "www.kommo.com"},
		{"https://acme.amocrm.ru", "www.amocrm.ru"},
		{"https://acme.amocrm.com/", "www.amocrm.com"},
		{"http://127.0.0.1:8080/_acct/acme", "www.kommo.com"},
	}
	for _, tc := range cases {
		u, err := url.Parse(AuthorizationURL(tc.base, "cid", "ns.n.tag"))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if u.Scheme != "https" || u.Host != tc.host || u.Path != "/oauth" ||
			q.Get("client_id") != "cid" || q.Get("state") != "ns.n.tag" || q.Get("mode") == "" {
			t.Errorf("AuthorizationURL(%s) = %s", tc.base, u)
		}
	}
}
