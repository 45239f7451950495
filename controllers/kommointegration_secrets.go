package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// userSecretValue reads one key of a Secret the user references. Those
// Secrets are not in the manager's cache (it holds only managed Secrets),
// so they are read through the API reader; the metadata watch brings the
// reconcile back when one appears or changes. A missing Secret or key is a
// wait, not a failure. field names the spec field for the message.
func (r *KommoIntegrationReconciler) userSecretValue(ctx context.Context, namespace string, ref v1alpha1.SecretKeySelector, field string) (string, error) {
	var s corev1.Secret
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", outcome.Wait(r.waitRecheck(), v1alpha1.ReasonSecretNotFound,
				"Secret %q (spec.%s) not found; waiting for it", ref.Name, field)
		}
		return "", fmt.Errorf("reading Secret %q (spec.%s): %w", ref.Name, field, err)
	}
	v := strings.TrimSpace(string(s.Data[ref.Key]))
	if v == "" {
		return "", outcome.Wait(r.waitRecheck(), v1alpha1.ReasonSecretNotFound,
			"Secret %q (spec.%s) has no key %q or it is empty; waiting for it", ref.Name, field, ref.Key)
	}
	return v, nil
}

// authorizationCode returns the code waiting to be spent, or "" when there
// is none: the authorizationCodeRef Secret, or the Secret the
// /oauth/callback route wrote. A missing code is reported by the caller
// only if no token is stored either.
func (r *KommoIntegrationReconciler) authorizationCode(ctx context.Context, obj *v1alpha1.KommoIntegration) (string, error) {
	if ref := obj.Spec.AuthorizationCodeRef; ref != nil {
		code, err := r.userSecretValue(ctx, obj.Namespace, *ref, "authorizationCodeRef")
		if outcome.IsWaiting(err) {
			return "", nil
		}
		return code, err
	}
	var s corev1.Secret
	key := types.NamespacedName{Namespace: obj.Namespace, Name: tokens.OAuthCodeSecretName(obj.Name)}
	if err := r.APIReader.Get(ctx, key, &s); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	return strings.TrimSpace(string(s.Data[tokens.OAuthCodeKey])), nil
}

// clearCallbackCode empties the callback Secret once its code is spent
// (used, refused or ignored): a code works once. The Secret itself stays:
// it records the OAuth states already used (the webhook server's
// single-use check), and an empty one tells the callback that no code is
// waiting, so the next authorization may come.
func (r *KommoIntegrationReconciler) clearCallbackCode(ctx context.Context, obj *v1alpha1.KommoIntegration) error {
	if obj.Spec.OAuthCallback == nil {
		return nil
	}
	var s corev1.Secret
	key := types.NamespacedName{Namespace: obj.Namespace, Name: tokens.OAuthCodeSecretName(obj.Name)}
	if err := r.APIReader.Get(ctx, key, &s); err != nil {
		return client.IgnoreNotFound(err)
	}
	if len(s.Data[tokens.OAuthCodeKey]) == 0 {
		return nil
	}
	delete(s.Data, tokens.OAuthCodeKey)
	if err := r.Update(ctx, &s); err != nil {
		return fmt.Errorf("clearing the spent code in Secret %q: %w", s.Name, err)
	}
	return nil
}

// tokenSecret returns the operator-owned token Secret, creating it empty
// (owned by the integration, labelled managed) when missing. Creating it
// first gives every later write — the first code exchange included — a
// resourceVersion to be exclusive on.
func (r *KommoIntegrationReconciler) tokenSecret(ctx context.Context, obj *v1alpha1.KommoIntegration) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	key := types.NamespacedName{Namespace: obj.Namespace, Name: tokens.SecretName(obj.Name)}
	err := r.Get(ctx, key, s)
	if err == nil {
		return s, checkOwned(obj, s)
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading token Secret %q: %w", key.Name, err)
	}
	s = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace, Name: key.Name,
			Labels: map[string]string{tokens.ManagedLabel: tokens.ManagedLabelValue},
		},
		Type: corev1.SecretTypeOpaque,
	}
	if err := controllerutil.SetControllerReference(obj, s, r.Scheme); err != nil {
		return nil, fmt.Errorf("owning token Secret %q: %w", key.Name, err)
	}
	err = r.Create(ctx, s)
	if apierrors.IsAlreadyExists(err) {
		// Either the cache lags behind our own (or a peer's) create, or a
		// Secret of that name is not ours; the cache only shows ours.
		existing := &corev1.Secret{}
		if gerr := r.APIReader.Get(ctx, key, existing); gerr == nil {
			if oerr := checkOwned(obj, existing); oerr != nil {
				return nil, oerr
			}
		}
	}
	if err != nil {
		return nil, busyAfterConflict(fmt.Errorf("creating token Secret %q: %w", key.Name, err), r.now(), r.conflictRetry())
	}
	return s, nil
}

// checkOwned refuses to keep tokens in a Secret the integration does not
// control (a user's Secret that happens to have the name).
func checkOwned(obj *v1alpha1.KommoIntegration, s *corev1.Secret) error {
	if metav1.IsControlledBy(s, obj) {
		return nil
	}
	return outcome.Stall(v1alpha1.ReasonTokenSecretConflict,
		"Secret %q exists and is not controlled by this KommoIntegration: delete or rename it so the operator can keep the tokens there", s.Name)
}

// sha256Hex fingerprints a spent code or a copied token for an annotation.
func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
