package controllers

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
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

// DefaultStateTTL is how long a published OAuth state is accepted.
const DefaultStateTTL = 30 * time.Minute

// RefusedAccountAnnotation, on the token Secret, holds the Kommo account id
// of a code that was refused because it is for another account than
// status.accountID. While it is there the integration stays Stalled with
// AccountChanged; a reconcile request removes it.
const RefusedAccountAnnotation = "sync.kommo-unisender.io/refused-account"

// publishAuthorizationURL keeps status.authorizationURL (oauthCallback
// only) carrying a state that verifies with the operator's key and is not
// about to expire; a new one is issued when it is, and after a code
// arrived (a state works once).
func (run *tokenRun) publishAuthorizationURL(ctx context.Context, codeArrived bool) error {
	obj, r := run.obj, run.r
	if obj.Spec.OAuthCallback == nil {
		obj.Status.AuthorizationURL = ""
		return nil
	}
	key, err := tokens.EnsureStateKey(ctx, r.Client, r.APIReader, r.OperatorNamespace)
	if err != nil {
		return fmt.Errorf("the OAuth state key (operator namespace %q): %w", r.OperatorNamespace, err)
	}
	now := r.now()
	if st, err := tokens.VerifyCallbackState(key, stateOf(obj.Status.AuthorizationURL), now); err == nil &&
		!codeArrived && now.Before(st.Expires.Add(-r.stateTTL()/6)) {
		return nil
	}
	state, err := tokens.NewCallbackState(key, client.ObjectKeyFromObject(obj), now.Add(r.stateTTL()))
	if err != nil {
		return err
	}
	obj.Status.AuthorizationURL = tokens.AuthorizationURL(obj.Spec.APIBaseURL(), run.creds.ClientID, state)
	return nil
}

// stateRotationIn is when the published state is due for rotation (0: no
// state published), so that an integration waiting for an admin, or
// stalled until one authorizes again, always shows a usable URL.
func (r *KommoIntegrationReconciler) stateRotationIn(obj *v1alpha1.KommoIntegration) time.Duration {
	st, err := tokens.ParseCallbackState(stateOf(obj.Status.AuthorizationURL))
	if err != nil {
		return 0
	}
	return max(st.Expires.Add(-r.stateTTL()/6).Sub(r.now()), time.Second)
}

func stateOf(authorizationURL string) string {
	u, err := url.Parse(authorizationURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("state")
}

// workingTokens: the stored pair is confirmed (Authorized) and not
// expired. A new code must not replace it: whoever can make Kommo send a
// code (anyone who saw the authorization URL, with any account) would
// otherwise swap the tenant's account.
func (run *tokenRun) workingTokens() bool {
	pair, err := tokens.FromSecret(run.sec)
	return err == nil && status.IsTrue(run.obj, v1alpha1.ConditionAuthorized) && !pair.ExpiredAt(run.r.now())
}

// ignoreCode records a code that arrived while the tokens work as spent,
// without sending it to Kommo, and says so.
func (run *tokenRun) ignoreCode(ctx context.Context, hash string) error {
	metav1.SetMetaDataAnnotation(&run.sec.ObjectMeta, tokens.CodeHashAnnotation, hash)
	if err := run.r.Update(ctx, run.sec); err != nil {
		return busyAfterConflict(fmt.Errorf("recording an ignored code on Secret %s: %w", run.sec.Name, err), run.r.now(), run.r.conflictRetry())
	}
	if err := run.r.clearCallbackCode(ctx, run.obj); err != nil {
		logf.FromContext(ctx).Info("could not clear the ignored callback code", "error", err.Error())
	}
	run.r.event(run.obj, corev1.EventTypeWarning, v1alpha1.ReasonAuthorizationCodeIgnored, "Authorize",
		"a new authorization code arrived while the stored token for Kommo account %d works; it was not used and nothing changed. "+
			"To replace working tokens on purpose, delete Secret %s first, then authorize again", run.obj.Status.AccountID, run.sec.Name)
	return nil
}

// sameAccount is the check before a code's pair is persisted: a pair for
// another account than the one on record is refused (the bindings' sync
// state, contacts and lists belong to that account).
func (run *tokenRun) sameAccount(ctx context.Context, tok *kommo.Token) error {
	want := run.obj.Status.AccountID
	if want == 0 {
		return nil
	}
	acct, err := run.r.kommoClient(run.obj, kommo.StaticToken(tok.AccessToken)).Account(ctx)
	if err != nil {
		return kommoFailure(err, "read the account of the new code", reauthorizeHint(run.obj))
	}
	if acct.ID != want {
		return &accountChangedError{got: acct.ID}
	}
	return nil
}

// accountChangedError: the new pair is for account got.
type accountChangedError struct{ got int64 }

func (e *accountChangedError) Error() string {
	return "the authorization code is for Kommo account " + strconv.FormatInt(e.got, 10)
}

// accountChanged is the stall while RefusedAccountAnnotation is set.
func (run *tokenRun) accountChanged() error {
	got := run.sec.Annotations[RefusedAccountAnnotation]
	return outcome.Stall(v1alpha1.ReasonAccountChanged,
		"an authorization code for Kommo account %s arrived, but this integration syncs account %d (status.accountID); "+
			"its tokens were kept and the code was not used. To sync account %s, create a new KommoIntegration (and bindings) for it, "+
			"or delete and recreate this one; to go on with account %d, set the annotation %s",
		got, run.obj.Status.AccountID, got, run.obj.Status.AccountID, v1alpha1.ReconcileRequestAnnotation)
}

// forgetRefusedAccount removes the mark after a reconcile request.
func (run *tokenRun) forgetRefusedAccount(ctx context.Context) error {
	delete(run.sec.Annotations, RefusedAccountAnnotation)
	if err := run.r.Update(ctx, run.sec); err != nil {
		return busyAfterConflict(fmt.Errorf("clearing %s on Secret %s: %w", RefusedAccountAnnotation, run.sec.Name, err), run.r.now(), run.r.conflictRetry())
	}
	return nil
}

func (r *KommoIntegrationReconciler) stateTTL() time.Duration {
	return orDefault(r.StateTTL, DefaultStateTTL)
}
