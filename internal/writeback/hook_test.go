package writeback

import (
	"crypto/md5" //nolint:gosec // the digest under test
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

// sign is the sender's side: the MD5 of the body with the key where the
// digest goes.
func sign(template, key string) string {
	sum := md5.Sum([]byte(strings.Replace(template, "AUTH", key, 1))) //nolint:gosec // see the import
	return strings.Replace(template, "AUTH", hex.EncodeToString(sum[:]), 1)
}

const hookTemplate = `{"auth":"AUTH","events_by_user":[{"events":[{"event_name":"unsubscribe","event_data":{"email":"Ann@Example.com","status":"unsubscribed"}},{"event_name":"email_status","event_data":{"email":"bob@example.com"}}]}]}`

// TestVerifyChecksTheRawBodyWithTheKey: a body signed with the tenant's key
// verifies; another key, a changed byte, no digest or two digests do not.
func TestVerifyChecksTheRawBodyWithTheKey(t *testing.T) {
	const key = "tenant-key-0123456789"
	good := sign(hookTemplate, key)
	if err := Verify([]byte(good), key); err != nil {
		t.Fatalf("a body signed with the key: %v", err)
	}
	bad := map[string]string{
		"another key":  sign(hookTemplate, "someone-else"),
		"changed body": strings.Replace(good, "bob@", "eve@", 1),
		"no digest":    strings.Replace(hookTemplate, `"auth":"AUTH",`, "", 1),
		"two digests":  strings.Replace(good, `"events_by_user"`, `"auth":"`+strings.Repeat("0", 32)+`","events_by_user"`, 1),
	}
	for name, body := range bad {
		if err := Verify([]byte(body), key); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s: %v, want ErrUnauthenticated", name, err)
		}
	}
	if err := Verify([]byte(good), ""); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("an empty key verified a body: %v", err)
	}
}

// TestAddressesAreEveryEmailOnce: the addresses come from every "email"
// key, normalized and each once; a body that is not JSON is refused.
func TestAddressesAreEveryEmailOnce(t *testing.T) {
	got, err := Addresses([]byte(sign(hookTemplate, "k")))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ann@example.com", "bob@example.com"}; !slices.Equal(got, want) {
		t.Errorf("addresses %v, want %v", got, want)
	}
	if _, err := Addresses([]byte("email=a@b.c")); err == nil {
		t.Error("a form body was read as JSON")
	}
}
