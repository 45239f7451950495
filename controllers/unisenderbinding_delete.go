package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// deletionPage is how many addresses one deletion-policy call handles (the
// client splits it into importContacts calls of 500 rows).
const deletionPage = 5000

// reconcileBindingDelete cleans up before the finalizer goes: the import
// run stops, the Kommo webhook is removed, the deletion policy is applied
// to every address the binding synced (Exclude: out of the list, not
// unsubscribed; Delete: contacts deleted; Keep: nothing), and the tenant's
// rows leave the store. A cleanup that cannot happen (the integration is
// gone, the key no longer works) is given up on after CleanupGiveUp with a
// Warning event, so a broken tenant can still be deleted.
func (r *UnisenderBindingReconciler) reconcileBindingDelete(ctx context.Context, p *bindingPass) (time.Duration, error) {
	obj := p.obj
	if !controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		return 0, nil
	}
	if err := r.runner.Stop(ctx, p.tenant); err != nil {
		return 0, fmt.Errorf("stopping the import run: %w", err)
	}
	if err := r.removeWebhooks(ctx, p); err != nil {
		return 0, r.untilGiveUp(p, err)
	}
	n, err := r.applyDeletionPolicy(ctx, p)
	if err != nil {
		return 0, r.untilGiveUp(p, err)
	}
	if err := r.Store.DeleteTenant(ctx, p.tenant.String()); err != nil {
		return 0, err
	}
	r.metrics().Forget(p.tenant)
	r.reportedMu.Lock()
	delete(r.reported, p.tenant)
	r.reportedMu.Unlock()
	r.event(obj, corev1.EventTypeNormal, v1alpha1.ReasonCleanedUp, "Delete",
		"removed the Kommo webhook; deletion policy %s applied to %d addresses in Unisender list %d", policyOf(obj), n, obj.Status.ListID)
	controllerutil.RemoveFinalizer(obj, v1alpha1.Finalizer)
	return 0, nil
}

func policyOf(obj *v1alpha1.UnisenderBinding) v1alpha1.DeletionPolicy {
	if obj.Spec.DeletionPolicy == "" {
		return v1alpha1.DeletionPolicyExclude
	}
	return obj.Spec.DeletionPolicy
}

// giveUp reports whether a cleanup step that cannot proceed should be
// skipped (after a Warning event) rather than retried.
func (r *UnisenderBindingReconciler) giveUp(p *bindingPass, reason, format string, args ...any) bool {
	if r.now().Sub(p.obj.DeletionTimestamp.Time) < r.cleanupGiveUp() {
		return false
	}
	r.event(p.obj, corev1.EventTypeWarning, reason, "Delete", format, args...)
	return true
}

// untilGiveUp makes a cleanup that waits look again no later than when it
// would give up.
func (r *UnisenderBindingReconciler) untilGiveUp(p *bindingPass, err error) error {
	var wait *outcome.Waiting
	if errors.As(err, &wait) {
		left := r.cleanupGiveUp() - r.now().Sub(p.obj.DeletionTimestamp.Time)
		wait.After = max(min(wait.After, left+time.Second), time.Second)
	}
	return err
}

// removeWebhooks unsubscribes every Kommo webhook of the tenant.
func (r *UnisenderBindingReconciler) removeWebhooks(ctx context.Context, p *bindingPass) error {
	if p.obj.Status.WebhookSecretName == "" && p.obj.Status.WebhookDestination == "" {
		return nil // never registered
	}
	ki, err := r.readyIntegration(ctx, p.obj, true)
	if err != nil {
		var wait *outcome.Waiting
		if errors.As(err, &wait) && r.giveUp(p, v1alpha1.ReasonWebhookNotRemoved,
			"could not remove the Kommo webhook (%s): remove it by hand in Kommo's settings", wait.Message) {
			return nil
		}
		return err
	}
	kc := r.kommoClientFor(ki, laneForeground)
	ctx, cancel := context.WithTimeout(ctx, kommoStepTimeout)
	defer cancel()
	hooks, err := kc.ListWebhooks(ctx)
	if err == nil {
		for _, h := range hooks {
			if isTenantWebhook(h.Destination, p.tenant) {
				if err = kc.UnsubscribeWebhook(ctx, h.Destination); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		if r.giveUp(p, v1alpha1.ReasonWebhookNotRemoved,
			"could not remove the Kommo webhook (%v): remove it by hand in Kommo's settings", err) {
			return nil
		}
		return fmt.Errorf("removing the Kommo webhook: %w", err)
	}
	logf.FromContext(ctx).Info("removed the Kommo webhook")
	return nil
}

// applyDeletionPolicy takes the tenant's synced addresses out of the list
// (or deletes them) and returns how many it handled.
func (r *UnisenderBindingReconciler) applyDeletionPolicy(ctx context.Context, p *bindingPass) (int, error) {
	obj := p.obj
	policy := policyOf(obj)
	if policy == v1alpha1.DeletionPolicyKeep || obj.Status.ListID == 0 {
		return 0, nil
	}
	key, source, err := r.apiKey(ctx, obj)
	if err != nil {
		var wait *outcome.Waiting
		if errors.As(err, &wait) && r.giveUp(p, v1alpha1.ReasonDeletionPolicyNotApplied,
			"could not apply deletion policy %s (%s): the addresses stay in Unisender list %d", policy, wait.Message, obj.Status.ListID) {
			return 0, nil
		}
		return 0, err
	}
	uni := r.unisenderClientFor(key)
	mapper := mapping.New(obj.Spec, obj.Status.ListID)
	others, err := r.bindingsOnList(ctx, obj)
	if err != nil {
		return 0, err
	}
	sharers := listSharers(obj, others)
	done := 0
	after := ""
	for {
		page, err := r.Store.TenantEmails(ctx, p.tenant.String(), after, deletionPage)
		if err != nil || len(page) == 0 {
			return done, err
		}
		after = page[len(page)-1]
		emails, err := r.notSharedEmails(ctx, sharers, page)
		if err != nil {
			return done, err
		}
		if len(emails) == 0 {
			continue
		}
		b := mapper.RemovalBatch(emails, policy)
		if _, err := uni.ImportContacts(ctx, unisender.ImportRequest{FieldNames: b.FieldNames, Rows: b.Rows}); err != nil {
			if unisender.IsPermanentForTenant(err) && r.giveUp(p, v1alpha1.ReasonDeletionPolicyNotApplied,
				"could not apply deletion policy %s with the key in %s (%v): the remaining addresses stay in Unisender list %d",
				policy, source, err, obj.Status.ListID) {
				return done, nil
			}
			return done, fmt.Errorf("applying deletion policy %s: %w", policy, err)
		}
		done += len(emails)
	}
}
