package writeback

import (
	"crypto/md5" //nolint:gosec // Unisender's digest is MD5; it is what the sender signs with.
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/kommo-unisender/kommo-unisender/internal/emailaddr"
	"regexp"
	"slices"
	"strings"
)

// ErrUnauthenticated: the hook body carries no auth digest, more than one,
// or one that the tenant's API key does not produce.
var ErrUnauthenticated = errors.New("unisender hook: body not signed with the tenant's API key")

// authField finds the auth value in the raw body. The digest's definition
// (unverified for this API; Unisender Go's) is the MD5 of the body with the
// auth value replaced by the API key, so the raw bytes are verified, never
// a re-encoding.
var authField = regexp.MustCompile(`"auth"\s*:\s*"([0-9a-fA-F]{32})"`)

// Verify checks body's auth digest with the API key.
func Verify(body []byte, apiKey string) error {
	found := authField.FindAllSubmatchIndex(body, 2)
	if len(found) != 1 || apiKey == "" {
		return ErrUnauthenticated
	}
	at := found[0]
	signed := slices.Concat(body[:at[2]], []byte(apiKey), body[at[3]:])
	sum := md5.Sum(signed) //nolint:gosec // see the import
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(string(body[at[2]:at[3]]))), []byte(want)) != 1 {
		return ErrUnauthenticated
	}
	return nil
}

// MaxAddressesPerDelivery bounds the addresses one delivery may name.
const MaxAddressesPerDelivery = 1000

// Addresses are the e-mail addresses a verified hook body names: every
// string under a key "email", wherever the (unverified) shape puts it.
// What happened to them is not taken from the body: the worker reads each
// from Unisender.
func Addresses(body []byte) ([]string, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, errors.New("unisender hook: body is not JSON")
	}
	var out []string
	collectEmails(v, &out)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxAddressesPerDelivery {
		return nil, errors.New("unisender hook: body names too many addresses")
	}
	return out, nil
}

func collectEmails(v any, out *[]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if s, ok := x.(string); ok && k == "email" && strings.Contains(s, "@") && len(s) <= 320 {
				*out = append(*out, emailaddr.Normalize(s))
				continue
			}
			collectEmails(x, out)
		}
	case []any:
		for _, x := range t {
			collectEmails(x, out)
		}
	}
}
