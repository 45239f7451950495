package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// The Kommo webhook: the subscription through which Kommo notifies the
// webhook server of changed contacts (not a Kubernetes admission webhook).
// Its URL secret lives in the operator-owned Secret
// contract.WebhookSecretName, key contract.WebhookSecretKey: 32 random
// bytes, hex.
const (
	webhookSecretSize = 32

	maskedSecret = "****"
)

// WebhookSettings are the Kommo events every binding subscribes to.
var WebhookSettings = []string{kommo.SettingAddContact, kommo.SettingUpdateContact, kommo.SettingDeleteContact}

// webhookSettings are the events the binding subscribes to: a selector on
// leads also needs every lead event, since each can change the stage of a
// contact's leads or which leads it has.
func webhookSettings(spec *v1alpha1.UnisenderBindingSpec) []string {
	if !spec.Selector.UsesLeads() {
		return WebhookSettings
	}
	return append(slices.Clone(WebhookSettings), kommo.LeadSettings()...)
}

// WebhookDestination is the URL Kommo posts a tenant's events to.
func WebhookDestination(publicBaseURL string, t tenant.Key, secret string) string {
	return strings.TrimRight(publicBaseURL, "/") + contract.WebhookPathPrefix + t.URLSegment() + "/" + secret
}

// reconcileWebhookSecret makes sure the binding's webhook Secret exists and
// computes the destination; the status shows it with the secret masked.
func (r *UnisenderBindingReconciler) reconcileWebhookSecret(ctx context.Context, p *bindingPass) (time.Duration, error) {
	if r.PublicBaseURL == "" {
		return 0, outcome.Stall(v1alpha1.ReasonPublicBaseURLMissing,
			"the manager runs without --public-base-url, so Kommo cannot be told where to send webhooks: set the flag (the chart's publicBaseURL)")
	}
	secret, err := r.ensureWebhookSecret(ctx, p.obj)
	if err != nil {
		return 0, err
	}
	p.destination = WebhookDestination(r.PublicBaseURL, p.tenant, secret)
	p.hookURL = UnisenderHookURL(r.PublicBaseURL, p.tenant, secret)
	p.obj.Status.WebhookDestination = WebhookDestination(r.PublicBaseURL, p.tenant, maskedSecret)
	p.obj.Status.WebhookSecretName = contract.WebhookSecretName(p.obj.Name)
	return 0, nil
}

// ensureWebhookSecret returns the binding's webhook secret, creating the
// Secret (owned by the binding, labelled as managed) when missing and
// writing a new secret into it when its value is unusable.
func (r *UnisenderBindingReconciler) ensureWebhookSecret(ctx context.Context, obj *v1alpha1.UnisenderBinding) (string, error) {
	key := types.NamespacedName{Namespace: obj.Namespace, Name: contract.WebhookSecretName(obj.Name)}
	var s corev1.Secret
	err := r.Get(ctx, key, &s)
	if apierrors.IsNotFound(err) {
		return r.createWebhookSecret(ctx, obj, key)
	}
	if err != nil {
		return "", fmt.Errorf("reading Secret %q: %w", key.Name, err)
	}
	if !metav1.IsControlledBy(&s, obj) {
		return "", outcome.Stall(v1alpha1.ReasonWebhookSecretConflict,
			"Secret %q exists and does not belong to this binding: delete or rename it so the operator can keep the webhook secret there", key.Name)
	}
	if v := string(s.Data[contract.WebhookSecretKey]); validWebhookSecret(v) {
		return v, nil
	}
	v, err := newWebhookSecret()
	if err != nil {
		return "", err
	}
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[contract.WebhookSecretKey] = []byte(v)
	if err := r.Update(ctx, &s); err != nil { // optimistic: a concurrent writer makes this a Conflict
		return "", fmt.Errorf("renewing the unusable webhook secret in Secret %q: %w", key.Name, err)
	}
	return v, nil
}

func (r *UnisenderBindingReconciler) createWebhookSecret(ctx context.Context, obj *v1alpha1.UnisenderBinding, key types.NamespacedName) (string, error) {
	v, err := newWebhookSecret()
	if err != nil {
		return "", err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: key.Name, Namespace: key.Namespace,
			Labels: map[string]string{tokens.ManagedLabel: tokens.ManagedLabelValue},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{contract.WebhookSecretKey: []byte(v)},
	}
	if err := controllerutil.SetControllerReference(obj, s, r.Scheme); err != nil {
		return "", err
	}
	err = r.Create(ctx, s)
	if apierrors.IsAlreadyExists(err) {
		// Created by an earlier pass the cache has not seen yet.
		var existing corev1.Secret
		if err := r.APIReader.Get(ctx, key, &existing); err != nil {
			return "", fmt.Errorf("reading Secret %q: %w", key.Name, err)
		}
		if v := string(existing.Data[contract.WebhookSecretKey]); metav1.IsControlledBy(&existing, obj) && validWebhookSecret(v) {
			return v, nil
		}
		return "", fmt.Errorf("secret %q appeared meanwhile; looking again", key.Name)
	}
	if err != nil {
		return "", fmt.Errorf("creating Secret %q: %w", key.Name, err)
	}
	return v, nil
}

func newWebhookSecret() (string, error) {
	b := make([]byte, webhookSecretSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating the webhook secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// validWebhookSecret accepts at least 128 bits of hex.
func validWebhookSecret(v string) bool {
	if len(v) < 32 {
		return false
	}
	_, err := hex.DecodeString(v)
	return err == nil
}

// reconcileWebhook keeps the Kommo webhook registered and enabled. It looks
// when the registration is not known good for this generation, when a
// resync is due, or on a forced reconcile — not on every pass, which would
// spend the account's Kommo budget. A hook that is missing or disabled
// (Kommo disables one after too many failed deliveries) is registered
// again; if it had been registered before, events may have been lost
// meanwhile, so the pass also starts a catch-up resync.
func (r *UnisenderBindingReconciler) reconcileWebhook(ctx context.Context, p *bindingPass) (time.Duration, error) {
	obj := p.obj
	masked := obj.Status.WebhookDestination
	cond := status.Get(obj, v1alpha1.ConditionWebhookRegistered)
	known := cond != nil && cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == obj.Generation &&
		strings.Contains(cond.Message, masked)
	if known && !p.forced && !r.resyncDue(obj) {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, kommoStepTimeout)
	defer cancel()
	hooks, err := p.kommo.ListWebhooks(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing Kommo webhooks: %w", err)
	}
	var ours *kommo.Webhook
	for i := range hooks {
		h := &hooks[i]
		switch {
		case h.Destination == p.destination:
			ours = h
		case isTenantWebhook(h.Destination, p.tenant):
			// An earlier secret or base URL of this binding: Kommo would keep
			// posting there and be refused.
			if err := p.kommo.UnsubscribeWebhook(ctx, h.Destination); err != nil {
				return 0, fmt.Errorf("removing a stale Kommo webhook of this binding: %w", err)
			}
		}
	}
	if ours != nil && !ours.Disabled && coversSettings(ours.Settings, webhookSettings(&obj.Spec)) {
		status.MarkTrue(obj, v1alpha1.ConditionWebhookRegistered, v1alpha1.ReasonSucceeded, "Kommo webhook registered at %s", masked)
		return 0, nil
	}
	return 0, r.registerWebhook(ctx, p, ours)
}

// registerWebhook (re-)subscribes the destination; a disabled hook is
// removed first, since subscribing again is not documented to enable it.
// A binding that registered before (the condition exists) and has synced
// up to some point catches up from there once the hook is back.
func (r *UnisenderBindingReconciler) registerWebhook(ctx context.Context, p *bindingPass, ours *kommo.Webhook) error {
	obj := p.obj
	masked := obj.Status.WebhookDestination
	registeredBefore := status.Get(obj, v1alpha1.ConditionWebhookRegistered) != nil
	what := "missing"
	switch {
	case ours != nil && ours.Disabled:
		what = "disabled by Kommo (too many failed deliveries, or an admin)"
	case ours != nil:
		what = "subscribed to other events"
	}
	if registeredBefore {
		status.MarkFalse(obj, v1alpha1.ConditionWebhookRegistered, v1alpha1.ReasonWebhookDisabled,
			"the Kommo webhook at %s was %s; registering it again", masked, what)
	}
	if ours != nil && ours.Disabled {
		if err := p.kommo.UnsubscribeWebhook(ctx, p.destination); err != nil {
			return fmt.Errorf("removing the disabled Kommo webhook: %w", err)
		}
	}
	if _, err := p.kommo.SubscribeWebhook(ctx, p.destination, webhookSettings(&obj.Spec)); err != nil {
		return fmt.Errorf("registering the Kommo webhook: %w", err)
	}
	if registeredBefore {
		p.catchUp = obj.Status.LastSyncedUpdatedAt > 0
		r.HealthMetrics.webhookReregistered(p.tenant)
		r.event(obj, corev1.EventTypeWarning, v1alpha1.ReasonWebhookReregistered, "RegisterWebhook",
			"the Kommo webhook was %s; registered it again at %s and catching up on contacts changed since %s",
			what, masked, time.Unix(obj.Status.LastSyncedUpdatedAt, 0).UTC().Format(time.RFC3339))
	} else {
		r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonWebhookRegistered, "RegisterWebhook", "registered the Kommo webhook at %s", masked)
	}
	status.MarkTrue(obj, v1alpha1.ConditionWebhookRegistered, v1alpha1.ReasonSucceeded, "Kommo webhook registered at %s", masked)
	return nil
}

func coversSettings(have, want []string) bool {
	for _, s := range want {
		if !slices.Contains(have, s) {
			return false
		}
	}
	return true
}

// isTenantWebhook reports whether a destination is one of this tenant's
// webhook URLs, whatever its host and secret.
func isTenantWebhook(destination string, t tenant.Key) bool {
	u, err := url.Parse(destination)
	if err != nil {
		return false
	}
	return strings.Contains(u.Path, contract.WebhookPathPrefix+t.URLSegment()+"/")
}
