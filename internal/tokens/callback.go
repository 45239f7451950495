package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// The /oauth/callback flow: the reconciler publishes an authorization URL
// whose state names the KommoIntegration and carries a tag only holders of
// the integration's client secret can compute; Kommo sends the admin back
// to the redirect URI with code and state; the callback route checks the
// state (VerifyCallbackState) and writes the code into
// OAuthCodeSecretName(integration), which the reconciler spends.
//
// State is "<namespace>.<name>.<tag>": a namespace is a DNS label (no dot),
// a name may hold dots, and the tag is unpadded base64url (no dot).

const stateTagLen = 22 // 132 bits of the HMAC

// CallbackState is the OAuth state for the integration namespace/name.
func CallbackState(namespace, name, clientSecret string) string {
	return namespace + "." + name + "." + stateTag(namespace, name, clientSecret)
}

func stateTag(namespace, name, clientSecret string) string {
	m := hmac.New(sha256.New, []byte(clientSecret))
	m.Write([]byte("kommo-unisender oauth state\x00" + namespace + "/" + name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:stateTagLen]
}

// ErrBadState means a callback's state is malformed.
var ErrBadState = errors.New("malformed OAuth state")

// ParseCallbackState returns the integration a state names, without
// checking its tag (the caller needs the integration to find the client
// secret that VerifyCallbackState checks it with).
func ParseCallbackState(state string) (types.NamespacedName, error) {
	ns, rest, ok := strings.Cut(state, ".")
	if !ok {
		return types.NamespacedName{}, ErrBadState
	}
	i := strings.LastIndexByte(rest, '.')
	if ns == "" || i <= 0 || len(rest)-i-1 != stateTagLen {
		return types.NamespacedName{}, ErrBadState
	}
	return types.NamespacedName{Namespace: ns, Name: rest[:i]}, nil
}

// VerifyCallbackState reports whether state was issued for the integration
// it names with this client secret (constant-time comparison).
func VerifyCallbackState(state, clientSecret string) bool {
	key, err := ParseCallbackState(state)
	if err != nil {
		return false
	}
	want := CallbackState(key.Namespace, key.Name, clientSecret)
	return hmac.Equal([]byte(state), []byte(want))
}

// AuthorizationURL is where an admin of the Kommo account grants the
// integration access: Kommo's consent page for the account's region
// (www.amocrm.ru for amocrm.ru accounts, www.kommo.com otherwise).
func AuthorizationURL(apiBaseURL, clientID, state string) string {
	consent := "https://www.kommo.com/oauth"
	if u, err := url.Parse(apiBaseURL); err == nil {
		switch h := u.Hostname(); {
		case strings.HasSuffix(h, ".amocrm.ru"):
			consent = "https://www.amocrm.ru/oauth"
		case strings.HasSuffix(h, ".amocrm.com"):
			consent = "https://www.amocrm.com/oauth"
		}
	}
	q := url.Values{"client_id": {clientID}, "state": {state}, "mode": {"post_message"}}
	return consent + "?" + q.Encode()
}
