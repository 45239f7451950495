package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// The /oauth/callback flow: the reconciler publishes an authorization URL
// whose state names the KommoIntegration, expires, carries a nonce and a
// tag only holders of the operator's state key can compute; Kommo sends
// the admin back to the redirect URI with code and state; the callback
// route checks the state (VerifyCallbackState), records its nonce as used
// in the code Secret and writes the code into
// OAuthCodeSecretName(integration), which the reconciler spends.
//
// The state is published in status, which the namespace's view role
// reads, so it must not outlive its purpose: it expires, works once, and
// its key lives in the operator's namespace (StateKeySecretName), out of
// every tenant's reach.
//
// State is "<namespace>.<name>.<expiry>.<nonce>.<tag>": a namespace is a
// DNS label (no dot), a name may hold dots, the expiry is Unix seconds in
// base 36, nonce and tag are unpadded base64url (no dot).

const (
	stateTagLen   = 22 // 132 bits of the HMAC
	stateNonceLen = 16 // 96 random bits
)

// Errors of VerifyCallbackState.
var (
	// ErrBadState means a callback's state is malformed or its tag does
	// not verify.
	ErrBadState = errors.New("malformed or forged OAuth state")
	// ErrStateExpired means the state verifies but its time is over.
	ErrStateExpired = errors.New("the OAuth state has expired")
)

// CallbackState is a verified (or freshly issued) state.
type CallbackState struct {
	Integration types.NamespacedName
	Expires     time.Time
	// Nonce makes each state unique; the callback records it as used.
	Nonce string
}

// NewCallbackState issues a state for the integration, valid until expires.
func NewCallbackState(key []byte, integration types.NamespacedName, expires time.Time) (string, error) {
	n := make([]byte, 12)
	if _, err := rand.Read(n); err != nil {
		return "", err
	}
	body := integration.Namespace + "." + integration.Name + "." +
		strconv.FormatInt(expires.Unix(), 36) + "." + base64.RawURLEncoding.EncodeToString(n)
	return body + "." + stateTag(key, body), nil
}

func stateTag(key []byte, body string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kommo-unisender oauth state v2\x00" + body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))[:stateTagLen]
}

// ParseCallbackState reads a state without checking its tag or expiry.
func ParseCallbackState(state string) (CallbackState, error) {
	ns, rest, ok := strings.Cut(state, ".")
	parts := strings.Split(rest, ".")
	if !ok || ns == "" || len(parts) < 4 {
		return CallbackState{}, ErrBadState
	}
	n := len(parts)
	name := strings.Join(parts[:n-3], ".")
	exp, err := strconv.ParseInt(parts[n-3], 36, 64)
	if name == "" || err != nil || len(parts[n-2]) != stateNonceLen || len(parts[n-1]) != stateTagLen {
		return CallbackState{}, ErrBadState
	}
	return CallbackState{Integration: types.NamespacedName{Namespace: ns, Name: name},
		Expires: time.Unix(exp, 0), Nonce: parts[n-2]}, nil
}

// VerifyCallbackState checks the state's tag with key (constant time),
// then its expiry at now.
func VerifyCallbackState(key []byte, state string, now time.Time) (CallbackState, error) {
	st, err := ParseCallbackState(state)
	if err != nil || len(key) == 0 {
		return CallbackState{}, ErrBadState
	}
	i := strings.LastIndexByte(state, '.')
	if !hmac.Equal([]byte(state[i+1:]), []byte(stateTag(key, state[:i]))) {
		return CallbackState{}, ErrBadState
	}
	if !now.Before(st.Expires) {
		return st, ErrStateExpired
	}
	return st, nil
}
