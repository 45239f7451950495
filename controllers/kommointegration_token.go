package controllers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// tokenRun is one reconcile's work on the token of one integration.
type tokenRun struct {
	r     *KommoIntegrationReconciler
	obj   *v1alpha1.KommoIntegration
	sec   *corev1.Secret // the token Secret; every write updates it in place
	creds kommo.OAuthCredentials
	// obtained: this run stored a new pair (exchange, refresh, or a new
	// long-lived token), so a 401 on it cannot be cured by one more refresh.
	obtained bool
	// requested: this reconcile serves a new reconcile request.
	requested bool
}

// reconcileToken makes sure a usable token is persisted, refreshes it when
// due, confirms it with Kommo (reading the account id), and returns when to
// look again.
func (r *KommoIntegrationReconciler) reconcileToken(ctx context.Context, obj *v1alpha1.KommoIntegration, requested bool) (time.Duration, error) {
	if err := r.checkBaseURL(obj); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, kommoCallTimeout)
	defer cancel()
	sec, err := r.tokenSecret(ctx, obj)
	if err != nil {
		return 0, err
	}
	obj.Status.TokenSecretName = sec.Name
	run := &tokenRun{r: r, obj: obj, sec: sec, requested: requested}
	var pair tokens.Pair
	if obj.Spec.TokenSource() == v1alpha1.TokenSourceLongLivedToken {
		pair, err = run.longLivedToken(ctx)
	} else {
		pair, err = run.oauthToken(ctx)
	}
	if err != nil {
		return 0, err
	}
	acct, pair, err := run.confirmAccount(ctx, pair)
	if err != nil {
		return 0, err
	}
	run.markAuthorized(pair, acct)
	return run.nextCheck(pair), nil
}

// oauthToken: spend a new authorization code if there is one and the
// stored tokens do not work, else use the stored pair, refreshing it when
// due.
func (run *tokenRun) oauthToken(ctx context.Context) (tokens.Pair, error) {
	obj := run.obj
	if err := run.refusedAccountHeld(ctx); err != nil {
		return tokens.Pair{}, err
	}
	creds, err := run.r.oauthCredentials(ctx, obj)
	if err != nil {
		return tokens.Pair{}, err
	}
	run.creds = creds
	code, err := run.r.authorizationCode(ctx, obj)
	if err != nil {
		return tokens.Pair{}, err
	}
	hash := sha256Hex(code)
	fresh := code != "" && hash != run.sec.Annotations[tokens.CodeHashAnnotation]
	if err := run.publishAuthorizationURL(ctx, fresh); err != nil {
		return tokens.Pair{}, err
	}
	switch {
	case fresh && !run.workingTokens():
		return run.exchange(ctx, code, hash)
	case fresh:
		if err := run.ignoreCode(ctx, hash); err != nil {
			return tokens.Pair{}, err
		}
	case code != "":
		// Spent before; a leftover callback code can go.
		if err := run.r.clearCallbackCode(ctx, obj); err != nil {
			logf.FromContext(ctx).Info("could not clear the spent callback code", "error", err.Error())
		}
	}
	pair, err := tokens.FromSecret(run.sec)
	if errors.Is(err, tokens.ErrNoToken) {
		return tokens.Pair{}, run.noToken(code != "")
	}
	if err != nil {
		return tokens.Pair{}, err
	}
	if run.refreshDue(pair) {
		return run.refresh(ctx)
	}
	return pair, nil
}

// refusedAccountHeld keeps the AccountChanged stall until a reconcile
// request says to go on with the account on record.
func (run *tokenRun) refusedAccountHeld(ctx context.Context) error {
	if _, ok := run.sec.Annotations[RefusedAccountAnnotation]; !ok {
		return nil
	}
	if run.requested {
		return run.forgetRefusedAccount(ctx)
	}
	return run.accountChanged()
}

// noToken explains why nothing is stored and nothing can be obtained yet.
func (run *tokenRun) noToken(codeSpent bool) error {
	obj := run.obj
	switch {
	case codeSpent:
		return outcome.Stall(v1alpha1.ReasonAuthorizationCodeInvalid,
			"the authorization code on hand was already spent and no token is stored: %s", reauthorizeHint(obj))
	case obj.Spec.OAuthCallback != nil:
		return outcome.Wait(run.r.waitRecheck(), v1alpha1.ReasonWaitingForAuthorization,
			"waiting for an account admin to authorize the integration at status.authorizationURL")
	}
	ref := obj.Spec.AuthorizationCodeRef
	return outcome.Wait(run.r.waitRecheck(), v1alpha1.ReasonSecretNotFound,
		"waiting for an authorization code in Secret %q key %q (spec.authorizationCodeRef)", ref.Name, ref.Key)
}

// exchange trades a new authorization code for the first pair (or a new
// pair after the stored one stopped working). A pair for another account
// than the one on record is not persisted.
func (run *tokenRun) exchange(ctx context.Context, code, hash string) (tokens.Pair, error) {
	pair, err := run.spend(ctx, "exchange the authorization code", "authorization_code",
		func(ctx context.Context, c *kommo.Client) (*kommo.Token, error) {
			return c.ExchangeCode(ctx, run.creds, code)
		},
		run.sameAccount, map[string]string{tokens.CodeHashAnnotation: hash})
	var changed *accountChangedError
	if err == nil || errors.Is(err, kommo.ErrInvalidGrant) || errors.As(err, &changed) {
		// Used, refused or not wanted, the code is spent.
		if derr := run.r.clearCallbackCode(ctx, run.obj); derr != nil {
			logf.FromContext(ctx).Info("could not clear the spent callback code", "error", derr.Error())
		}
	}
	if changed != nil {
		return tokens.Pair{}, run.accountChanged()
	}
	if err == nil {
		run.r.event(run.obj, corev1.EventTypeNormal, v1alpha1.ReasonAuthorized, "Authorize",
			"Obtained the first token pair with the authorization code; stored in Secret %s", run.sec.Name)
	}
	return pair, err
}

// refresh spends the stored refresh token.
func (run *tokenRun) refresh(ctx context.Context) (tokens.Pair, error) {
	if cur, err := tokens.FromSecret(run.sec); err != nil || !cur.Refreshable() {
		return tokens.Pair{}, outcome.Stall(v1alpha1.ReasonTokenRevoked,
			"the stored token cannot be refreshed (no refresh token in Secret %s): authorize again: %s", run.sec.Name, reauthorizeHint(run.obj))
	}
	return run.spend(ctx, "refresh the access token", "refresh_token",
		func(ctx context.Context, c *kommo.Client) (*kommo.Token, error) {
			// After the claim, run.sec is the latest version: its
			// refresh token is the one to spend.
			cur, err := tokens.FromSecret(run.sec)
			if err != nil {
				return nil, err
			}
			return c.Refresh(ctx, run.creds, cur.RefreshToken)
		}, nil, nil)
}

// spend runs one call that spends a single-use grant (a code or a refresh
// token) under a refresh claim on the token Secret, and persists the new
// pair with the claim's resourceVersion before anything can use it. See
// tokens.Claim for why this is safe across replicas and crashes.
//
// verify, if set, checks the new pair before it is persisted; a pair it
// refuses is dropped. extra annotations are written with the pair; a code
// Kommo refused (or verify refused) is recorded the same way so it is
// never sent again.
func (run *tokenRun) spend(ctx context.Context, what, grant string, call func(context.Context, *kommo.Client) (*kommo.Token, error),
	verify func(context.Context, *kommo.Token) error, extra map[string]string) (tokens.Pair, error) {
	r := run.r
	w := r.writer()
	claim, err := w.Claim(ctx, run.sec)
	if err != nil {
		return tokens.Pair{}, busyAfterConflict(err, r.now(), r.conflictRetry())
	}
	callCtx, cancel := context.WithDeadline(ctx, w.CallDeadline(claim))
	// One attempt only: after a timeout or a 5xx, Kommo may still act on
	// the request, and a second attempt racing it could leave us holding
	// the pair that lost. The next attempt comes in a new claim.
	tok, err := call(callCtx, r.kommoClient(run.obj, nil, kommo.WithMaxRetries(0)))
	cancel()
	if err != nil {
		if kommo.IsPermanent(err) || errors.Is(err, kommo.ErrNotSent) {
			// A definite refusal, or a call that never left (stopped while
			// waiting for the budget, say by a manager shutting down):
			// nothing was issued, others need not wait. A code Kommo
			// refused is recorded so it is not sent again.
			var mark map[string]string
			if errors.Is(err, kommo.ErrInvalidGrant) {
				mark = extra
			}
			run.releaseClaim(ctx, w, mark)
		}
		// Otherwise the outcome is unknown (a pair may have been issued
		// and lost): the claim is kept until its deadline, half its
		// lifetime after the call deadline, so any request still in flight
		// is over before anyone spends the refresh token again.
		failure := kommoFailure(err, what, reauthorizeHint(run.obj))
		r.Metrics.grantFailed(grant, failure)
		return tokens.Pair{}, failure
	}
	if verify != nil {
		if err := verify(ctx, tok); err != nil {
			return tokens.Pair{}, run.dropUnwanted(ctx, w, err, extra)
		}
	}
	pair := tokens.Pair{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: tok.ExpiresAt}
	if r.BeforePersist != nil {
		// Test hook: an error (or a panic) here is a crash between the
		// refresh and the persist; the claim is left to expire. (After a
		// code exchange such a crash loses the code: codes have no grace.)
		if err := r.BeforePersist(ctx, client.ObjectKeyFromObject(run.obj), grant); err != nil {
			return tokens.Pair{}, fmt.Errorf("before persisting the new token pair: %w", err)
		}
	}
	if err := w.Persist(ctx, run.sec, pair, extra); err != nil {
		// Not persisted, so never used: whoever refreshes next spends the
		// old refresh token, which Kommo still accepts (the grace).
		return tokens.Pair{}, busyAfterConflict(err, r.now(), r.conflictRetry())
	}
	run.obtained = true
	r.Metrics.grantSucceeded(grant)
	return pair, nil
}

// dropUnwanted releases the claim on a pair verify refused, marking the
// grant spent (and the refused account, if that was why), and returns err.
func (run *tokenRun) dropUnwanted(ctx context.Context, w *tokens.Writer, err error, extra map[string]string) error {
	mark := map[string]string{}
	maps.Copy(mark, extra)
	var changed *accountChangedError
	if errors.As(err, &changed) {
		mark[RefusedAccountAnnotation] = strconv.FormatInt(changed.got, 10)
	}
	run.releaseClaim(ctx, w, mark)
	return err
}

// releaseClaim lets go of this run's claim, marking the Secret with mark.
// It runs even when ctx has ended (a stopping manager must not leave its
// successor waiting out the claim), bounded by a few seconds of its own.
func (run *tokenRun) releaseClaim(ctx context.Context, w *tokens.Writer, mark map[string]string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := w.Release(ctx, run.sec, mark); err != nil {
		logf.FromContext(ctx).Info("could not release the refresh claim; it expires by itself", "error", err.Error())
	}
}

// releaseTimeout bounds releasing a claim after the reconcile's context
// ended.
const releaseTimeout = 5 * time.Second

// longLivedToken copies the user's long-lived token into the token Secret
// (readers only ever look there) when it is new, and stalls once it has
// expired: it cannot be refreshed.
func (run *tokenRun) longLivedToken(ctx context.Context) (tokens.Pair, error) {
	obj := run.obj
	obj.Status.AuthorizationURL = ""
	v, err := run.r.userSecretValue(ctx, obj.Namespace, *obj.Spec.LongLivedTokenRef, "longLivedTokenRef")
	if err != nil {
		return tokens.Pair{}, err
	}
	if hash := sha256Hex(v); run.sec.Annotations[tokens.SourceHashAnnotation] != hash {
		pair := tokens.Pair{AccessToken: v, ExpiresAt: jwtExpiry(v)}
		if err := run.r.writer().Persist(ctx, run.sec, pair, map[string]string{tokens.SourceHashAnnotation: hash}); err != nil {
			return tokens.Pair{}, busyAfterConflict(err, run.r.now(), run.r.conflictRetry())
		}
		run.obtained = true
		run.r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonAuthorized, "Authorize",
			"Stored the long-lived token from Secret %s in Secret %s", obj.Spec.LongLivedTokenRef.Name, run.sec.Name)
	}
	pair, err := tokens.FromSecret(run.sec)
	if err != nil {
		return tokens.Pair{}, err
	}
	if pair.ExpiredAt(run.r.now()) {
		return tokens.Pair{}, outcome.Stall(v1alpha1.ReasonTokenExpired, "the long-lived token expired at %s: %s",
			pair.ExpiresAt.UTC().Format(time.RFC3339), reauthorizeHint(obj))
	}
	return pair, nil
}

// confirmAccount reads the account with the persisted access token: it
// proves the token works and yields the account id. A 401 on a token this
// run did not just obtain gets one refresh (revoked early, or clocks
// disagree) before it counts as revoked.
func (run *tokenRun) confirmAccount(ctx context.Context, pair tokens.Pair) (*kommo.Account, tokens.Pair, error) {
	acct, err := run.r.kommoClient(run.obj, kommo.StaticToken(pair.AccessToken)).Account(ctx)
	if errors.Is(err, kommo.ErrUnauthorized) && pair.Refreshable() && !run.obtained {
		if pair, err = run.refresh(ctx); err != nil {
			return nil, pair, err
		}
		acct, err = run.r.kommoClient(run.obj, kommo.StaticToken(pair.AccessToken)).Account(ctx)
	}
	if errors.Is(err, kommo.ErrUnauthorized) {
		return nil, pair, outcome.Stall(v1alpha1.ReasonTokenRevoked,
			"Kommo refuses the access token (the integration was disabled or its tokens revoked): authorize again: %s (%v)", reauthorizeHint(run.obj), err)
	}
	if err != nil {
		return nil, pair, kommoFailure(err, "read the account", reauthorizeHint(run.obj))
	}
	if rec := run.obj.Status.AccountID; rec != 0 && acct.ID != rec {
		// The bindings' sync state, lists and contacts belong to rec.
		return nil, pair, outcome.Stall(v1alpha1.ReasonAccountChanged,
			"the stored token is for Kommo account %d, but this integration syncs account %d (status.accountID): "+
				"to sync account %d, create a new KommoIntegration (and bindings) for it, or delete and recreate this one; "+
				"to go on with account %d, %s", acct.ID, rec, acct.ID, rec, reauthorizeHint(run.obj))
	}
	return acct, pair, nil
}

// markAuthorized reports the stored token in status.
func (run *tokenRun) markAuthorized(pair tokens.Pair, acct *kommo.Account) {
	st := &run.obj.Status
	st.AccountID = acct.ID
	st.TokenExpiresAt = nil
	expiry := "unknown"
	if !pair.ExpiresAt.IsZero() {
		st.TokenExpiresAt = &metav1.Time{Time: pair.ExpiresAt}
		expiry = pair.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if t, ok := tokens.ObtainedAt(run.sec); ok {
		st.LastRefreshTime = &metav1.Time{Time: t}
	}
	status.MarkTrue(run.obj, v1alpha1.ConditionAuthorized, v1alpha1.ReasonSucceeded,
		"token for Kommo account %d (%s) stored in Secret %s, valid until %s", acct.ID, acct.Subdomain, run.sec.Name, expiry)
	status.ClearProgress(run.obj)
	run.r.Metrics.setExpiry(client.ObjectKeyFromObject(run.obj), pair.ExpiresAt)
}

// refreshAt is when the pair is due: refreshBefore ahead of its expiry,
// but never earlier than half its lifetime, so a refreshBefore longer than
// the lifetime cannot turn into back-to-back refreshes; then this
// integration's place in the first half of that window (refreshSpread).
func (run *tokenRun) refreshAt(pair tokens.Pair) time.Time {
	before := run.obj.Spec.RefreshBeforeDuration()
	if obtained, ok := tokens.ObtainedAt(run.sec); ok && pair.ExpiresAt.After(obtained) {
		before = min(before, pair.ExpiresAt.Sub(obtained)/2)
	}
	return pair.ExpiresAt.Add(-before + refreshSpread(run.obj.UID, before))
}

func (run *tokenRun) refreshDue(pair tokens.Pair) bool {
	return pair.Refreshable() && !pair.ExpiresAt.IsZero() && !run.r.now().Before(run.refreshAt(pair))
}

// nextCheck: a refreshable pair comes back when due, plus a jitter that
// spreads many integrations' refreshes but stays within a quarter of
// refreshBefore (the token must still be valid when the refresh runs); a
// long-lived token comes back when it expires. Either way at most
// maxRecheck apart, to confirm the token still works.
func (run *tokenRun) nextCheck(pair tokens.Pair) time.Duration {
	now := run.r.now()
	maxRecheck := run.r.recheckInterval()
	switch {
	case pair.ExpiresAt.IsZero():
		return status.Jitter(maxRecheck, 0.1)
	case !pair.Refreshable():
		return min(max(pair.ExpiresAt.Sub(now), 0)+time.Second, maxRecheck)
	}
	wait := max(run.refreshAt(pair).Sub(now), 0)
	extra := min(status.Jitter(wait, 0.1)-wait, run.obj.Spec.RefreshBeforeDuration()/4)
	return min(wait+extra, maxRecheck)
}

// jwtExpiry reads the exp claim of a JWT-shaped token without verifying it
// (Kommo's tokens are JWTs; the expiry only schedules our own checks).
// Anything else gives the zero time: unknown.
func jwtExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(claims.Exp), 0).UTC()
}
