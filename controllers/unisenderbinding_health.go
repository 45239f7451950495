package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// DefaultHealthInterval is how often the bindings' health figures are read
// from MySQL: at most two status writes a minute per binding, whatever the
// webhook load (the figures are not written on every batch).
const DefaultHealthInterval = 30 * time.Second

// bindingHealth is the leader's loop that copies each binding's sync
// figures from MySQL into status.health and the health series. It writes a
// status only when the figures changed; status writes do not trigger the
// binding reconciler (its predicates), so no reconcile follows.
type bindingHealth struct {
	client   client.Client
	store    *store.Store
	metrics  *HealthMetrics
	interval time.Duration
	// seen are the bindings and integrations that have series, so that
	// those of deleted objects are dropped.
	seenBindings, seenIntegrations map[tenant.Key]bool
}

func (h *bindingHealth) NeedLeaderElection() bool { return true }

// Start refreshes every interval, counted from the end of the previous
// refresh (not a ticker): two writes of one binding's status are always at
// least an interval apart, however long a refresh took.
func (h *bindingHealth) Start(ctx context.Context) error {
	for {
		h.refreshAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(h.interval):
		}
	}
}

func (h *bindingHealth) refreshAll(ctx context.Context) {
	log := logf.FromContext(ctx).WithName("binding-health")
	var bindings v1alpha1.UnisenderBindingList
	if err := h.client.List(ctx, &bindings); err != nil {
		log.Error(err, "listing UnisenderBindings")
		return
	}
	seen := map[tenant.Key]bool{}
	for i := range bindings.Items {
		b := &bindings.Items[i]
		key := tenant.FromNamespacedName(client.ObjectKeyFromObject(b))
		seen[key] = true
		if err := h.refresh(ctx, key, b); err != nil {
			log.Error(err, "refreshing the health figures", "binding", key.String())
		}
	}
	h.seenBindings = forgetGone(h.seenBindings, seen, h.metrics.forget)
	h.integrationsStalled(ctx)
}

// refresh reads one binding's figures and writes them if they changed.
func (h *bindingHealth) refresh(ctx context.Context, key tenant.Key, b *v1alpha1.UnisenderBinding) error {
	if !b.DeletionTimestamp.IsZero() {
		return nil
	}
	fig, err := h.store.TenantHealth(ctx, key.String())
	if err != nil {
		return err
	}
	h.metrics.figures(key, fig, status.IsTrue(b, v1alpha1.ConditionKeyValid))
	want := healthStatus(fig)
	if equality.Semantic.DeepEqual(b.Status.Health, want) {
		return nil
	}
	patch := client.MergeFrom(b.DeepCopy())
	b.Status.Health = want
	if err := h.client.Status().Patch(ctx, b, patch); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("writing status.health: %w", err))
	}
	h.metrics.wroteStatus(key)
	return nil
}

// healthStatus is the status form of the figures, rounded as the API
// server keeps them (seconds, milliseconds), so that unchanged figures
// compare equal to what was written and cause no write.
func healthStatus(fig store.Health) *v1alpha1.SyncHealth {
	s := &v1alpha1.SyncHealth{
		ContactsSynced: fig.ContactsSynced, InList: fig.ListMembers,
		RefusedByReason: nonEmpty(fig.Refused), ExcludedByReason: nonEmpty(fig.Excluded),
		InvitationsPending: fig.InvitationsPending, DeadLetters: fig.DeadLetters,
	}
	for _, n := range fig.Refused {
		s.Refused += n
	}
	for _, n := range fig.Excluded {
		s.Excluded += n
	}
	if !fig.LastAppliedAt.IsZero() {
		t := metav1.NewTime(fig.LastAppliedAt.Truncate(time.Second))
		s.LastEventAppliedTime = &t
	}
	if fig.LatencySamples > 0 {
		s.LatencyP50 = &metav1.Duration{Duration: fig.LatencyP50.Round(time.Millisecond)}
		s.LatencyP99 = &metav1.Duration{Duration: fig.LatencyP99.Round(time.Millisecond)}
	}
	return s
}

func nonEmpty(m map[string]int64) map[string]int64 {
	if len(m) == 0 {
		return nil
	}
	return m
}

// integrationsStalled sets the Stalled series of every integration.
func (h *bindingHealth) integrationsStalled(ctx context.Context) {
	var list v1alpha1.KommoIntegrationList
	if err := h.client.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "listing KommoIntegrations")
		return
	}
	seen := map[tenant.Key]bool{}
	for i := range list.Items {
		in := &list.Items[i]
		key := tenant.FromNamespacedName(client.ObjectKeyFromObject(in))
		seen[key] = true
		h.metrics.stalled.WithLabelValues(key.Namespace, key.Name).Set(boolGauge(status.IsTrue(in, v1alpha1.ConditionStalled)))
	}
	h.seenIntegrations = forgetGone(h.seenIntegrations, seen, func(k tenant.Key) {
		h.metrics.stalled.DeleteLabelValues(k.Namespace, k.Name)
	})
}

// forgetGone calls forget for each key of before that now lacks, and
// returns now as the next before.
func forgetGone(before, now map[tenant.Key]bool, forget func(tenant.Key)) map[tenant.Key]bool {
	for k := range before {
		if !now[k] {
			forget(k)
		}
	}
	return now
}
