package webhookserver

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// widgetClaims are the claims of the one-time JWT Kommo's $authorizedAjax
// adds as X-Auth-Token: HS256 over the integration's client secret.
type widgetClaims struct {
	jwt.RegisteredClaims
	AccountID  int64  `json:"account_id"`
	UserID     int64  `json:"user_id"`
	ClientUUID string `json:"client_uuid"`
	Subdomain  string `json:"subdomain"`
	IsAdmin    bool   `json:"is_admin"`
}

// widgetCaller is a verified token: who called, and the integrations whose
// client secret signed it.
type widgetCaller struct {
	claims       widgetClaims
	integrations []v1alpha1.KommoIntegration
}

// tokenError is a refused token. Its message is shown to the caller, so it
// distinguishes only what a forger cannot learn from: a time window or a
// replay is reported only for a correctly signed token.
type tokenError struct {
	msg    string
	detail error // for the log; never holds the token or a key
	status int   // 0: 401
}

func (e *tokenError) Error() string { return e.msg }

var errInvalidToken = "the Kommo token (X-Auth-Token) is missing, invalid or not for this server" //nolint:gosec // a message shown to callers, not a credential

// hs256 is the only algorithm accepted: Kommo signs with HS256, and
// accepting any other (none, or RS256 with the secret as a "public key")
// would let a caller choose how the signature is checked.
var hs256 = []string{jwt.SigningMethodHS256.Alg()}

// verifyWidgetToken checks Kommo's token: HS256 signature with the client
// secret of a KommoIntegration whose spec.clientID is the token's
// client_uuid and whose status.accountID is its account_id; aud equal to
// the scheme and host of that integration's redirect URI; exp, nbf and iat
// within the leeway; a lifetime no longer than MaxTokenLifetime; and a jti
// not seen before (recorded only once everything else holds).
func (s *Server) verifyWidgetToken(ctx context.Context, raw string) (*widgetCaller, error) {
	if raw == "" {
		return nil, &tokenError{msg: errInvalidToken, detail: errors.New("no X-Auth-Token header")}
	}
	var unverified widgetClaims
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &unverified)
	if err != nil {
		return nil, &tokenError{msg: errInvalidToken, detail: fmt.Errorf("unparsable token: %w", err)}
	}
	if alg, _ := tok.Header["alg"].(string); alg != jwt.SigningMethodHS256.Alg() {
		return nil, &tokenError{msg: errInvalidToken, detail: fmt.Errorf("alg %q refused", truncate.Text(alg, 20))}
	}
	if unverified.ClientUUID == "" || unverified.AccountID <= 0 {
		return nil, &tokenError{msg: errInvalidToken, detail: errors.New("no client_uuid or account_id")}
	}
	candidates, err := s.cluster.IntegrationsByClientID(ctx, unverified.ClientUUID)
	if err != nil {
		return nil, err
	}
	caller := &widgetCaller{}
	lastErr := errors.New("no integration with that client_uuid and account_id")
	for i := range candidates {
		ki := &candidates[i]
		if ki.Status.AccountID != unverified.AccountID || !ki.DeletionTimestamp.IsZero() {
			continue
		}
		claims, err := s.checkSignedBy(ctx, raw, ki)
		if err != nil {
			lastErr = err
			continue
		}
		caller.claims = *claims
		caller.integrations = append(caller.integrations, *ki)
	}
	if len(caller.integrations) == 0 {
		return nil, classifyTokenError(lastErr)
	}
	if err := refuseSharedSecret(candidates, caller); err != nil {
		return nil, err
	}
	if err := s.checkLifetimeAndReplay(&caller.claims); err != nil {
		return nil, err
	}
	return caller, nil
}

// refuseSharedSecret: when integrations in several namespaces declare the
// client id with their own copies of the secret (no KommoApp), whoever
// reads one copy can sign tokens for the others' accounts, so a valid
// signature does not prove Kommo issued the token. A token verified with
// a KommoApp's secret, which no tenant reads, is trusted whatever else
// declares its client id.
func refuseSharedSecret(candidates []v1alpha1.KommoIntegration, caller *widgetCaller) error {
	for i := range caller.integrations {
		if caller.integrations[i].Spec.AppRef != nil {
			return nil
		}
	}
	var namespaces []string
	for i := range candidates {
		ki := &candidates[i]
		if ki.Spec.AppRef == nil && ki.DeletionTimestamp.IsZero() && !slices.Contains(namespaces, ki.Namespace) {
			namespaces = append(namespaces, ki.Namespace)
		}
	}
	if len(namespaces) < 2 {
		return nil
	}
	return &tokenError{status: http.StatusForbidden,
		msg: "this Kommo integration's client secret is shared by several namespaces, so the operator cannot tell which tenant signed this request; " +
			"the cluster admin must declare it as a KommoApp (cluster-scoped, its secret in the operator's namespace) and the KommoIntegrations must use spec.appRef",
		detail: fmt.Errorf("client id %s is declared with namespaced secrets in %d namespaces", truncate.Text(caller.claims.ClientUUID, 64), len(namespaces))}
}

// checkSignedBy verifies raw against one integration.
func (s *Server) checkSignedBy(ctx context.Context, raw string, ki *v1alpha1.KommoIntegration) (*widgetClaims, error) {
	oc, err := s.cluster.OAuthClient(ctx, ki)
	if err != nil {
		return nil, err
	}
	aud, err := audienceOf(oc.RedirectURI)
	if err != nil {
		return nil, err
	}
	secret := oc.Secret
	parser := jwt.NewParser(
		jwt.WithValidMethods(hs256), jwt.WithAudience(aud), jwt.WithLeeway(s.cfg.TokenLeeway),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.now),
	)
	var claims widgetClaims
	_, err = parser.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		return nil, err
	}
	if claims.ClientUUID != oc.ClientID || claims.AccountID != ki.Status.AccountID {
		return nil, errors.New("claims changed between parses")
	}
	return &claims, nil
}

// classifyTokenError turns the last verification failure into what the
// caller is told. jwt verifies the signature before the times, so a time
// error means the token was correctly signed.
func classifyTokenError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return &tokenError{msg: "the Kommo token has expired; reload the page and try again", detail: err}
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return &tokenError{msg: "the Kommo token is not valid yet: check the server's clock", detail: err}
	}
	return &tokenError{msg: errInvalidToken, detail: err}
}

// checkLifetimeAndReplay refuses tokens living longer than Kommo's issue
// and records the jti, refusing one already seen.
func (s *Server) checkLifetimeAndReplay(c *widgetClaims) error {
	now := s.now()
	exp := c.ExpiresAt.Time
	if exp.After(now.Add(s.cfg.MaxTokenLifetime + s.cfg.TokenLeeway)) {
		return &tokenError{msg: errInvalidToken, detail: fmt.Errorf("token lives until %s, longer than %s", exp.UTC().Format(time.RFC3339), s.cfg.MaxTokenLifetime)}
	}
	if c.ID == "" || len(c.ID) > 256 {
		return &tokenError{msg: errInvalidToken, detail: errors.New("no usable jti")}
	}
	if !s.replays.add(tokenID(c), exp.Add(s.cfg.TokenLeeway), now) {
		return &tokenError{msg: errTokenReused, detail: errors.New("replayed jti")}
	}
	return nil
}

const errTokenReused = "the Kommo token was already used; each request needs a fresh one" //nolint:gosec // a message shown to callers, not a credential

// tokenID names a token for replay checks: jti is unique per issuer, and
// each integration (client id) issues its own.
func tokenID(c *widgetClaims) string { return c.ClientUUID + "\x00" + c.ID }

// tokenClaim is the cluster-wide record of c's use, kept in the Secrets the
// request writes: the replay set above is per replica, and a state-changing
// request must not be replayable to another one.
func (s *Server) tokenClaim(c *widgetClaims) *TokenClaim {
	return &TokenClaim{ID: tokenID(c), Expires: c.ExpiresAt.Add(s.cfg.TokenLeeway), At: s.now()}
}

// audienceOf is the aud Kommo puts in the token: the scheme and host of the
// integration's redirect URI.
func audienceOf(redirectURI string) (string, error) {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", errors.New("the integration has no usable spec.redirectURI")
	}
	return u.Scheme + "://" + u.Host, nil
}

// replaySet remembers the jti of every accepted token until it expires.
// It is per replica: within one replica a jti is accepted once. The one
// state-changing route, POST /widget, also records the token in the
// Secrets it writes (TokenClaim), which every replica checks; a GET
// /widget/status replayed to another replica is answered (it only reads).
// When full, the entry closest to expiry is dropped.
type replaySet struct {
	mu    sync.Mutex
	limit int
	seen  map[string]time.Time
	order expiryHeap
}

func newReplaySet(limit int) *replaySet {
	if limit <= 0 {
		limit = 100_000
	}
	return &replaySet{limit: limit, seen: map[string]time.Time{}}
}

// add records key until expires; false if it is already recorded.
func (r *replaySet) add(key string, expires, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.order) > 0 && !r.order[0].expires.After(now) {
		r.popOldest()
	}
	if _, dup := r.seen[key]; dup {
		return false
	}
	for len(r.order) >= r.limit {
		r.popOldest()
	}
	r.seen[key] = expires
	heap.Push(&r.order, expiryEntry{key: key, expires: expires})
	return true
}

// popOldest forgets the entry nearest expiry.
func (r *replaySet) popOldest() {
	e := heap.Pop(&r.order).(expiryEntry)
	delete(r.seen, e.key)
}

type expiryEntry struct {
	key     string
	expires time.Time
}

type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
