package tokens

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// TestCallbackState: a state names its integration, verifies only with
// its key, expires, and its tag vouches for nothing else.
func TestCallbackState(t *testing.T) {
	key1, key2 := []byte(strings.Repeat("k", 32)), []byte(strings.Repeat("j", 32))
	now := time.Unix(1_800_000_000, 0)
	who := types.NamespacedName{Namespace: "team-a", Name: "acme.prod"}
	state, err := NewCallbackState(key1, who, now.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	st, err := VerifyCallbackState(key1, state, now)
	if err != nil || st.Integration != who || !st.Expires.Equal(now.Add(30*time.Minute)) || st.Nonce == "" {
		t.Fatalf("VerifyCallbackState(%q) = %+v, %v", state, st, err)
	}
	if _, err := VerifyCallbackState(key2, state, now); !errors.Is(err, ErrBadState) {
		t.Fatalf("verified with another key: %v", err)
	}
	if _, err := VerifyCallbackState(key1, state, now.Add(30*time.Minute)); !errors.Is(err, ErrStateExpired) {
		t.Fatalf("at its expiry: %v", err)
	}
	again, _ := NewCallbackState(key1, who, now.Add(30*time.Minute))
	if again == state {
		t.Fatal("two states are equal: no nonce")
	}
	// The tag of one state vouches for no other name or expiry.
	i := strings.IndexByte(state, '.')
	for _, forged := range []string{
		"team-a.evil" + state[i+len(".acme.prod"):],
		strings.Replace(state, ".acme.prod.", ".acme.prod.zz", 1),
	} {
		if _, err := VerifyCallbackState(key1, forged, now); !errors.Is(err, ErrBadState) {
			t.Errorf("forged %q verified: %v", forged, err)
		}
	}
	for _, bad := range []string{"", "nodots", "ns.name", ".name.1.aaaaaaaaaaaaaaaa." + strings.Repeat("a", stateTagLen), "ns.name.short"} {
		if _, err := ParseCallbackState(bad); err == nil {
			t.Errorf("ParseCallbackState(%q) accepted", bad)
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
