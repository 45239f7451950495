package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// resyncRequestInterval is how often the manager looks for the resyncs the
// workers requested.
const resyncRequestInterval = 15 * time.Second

// resyncRequests starts the resyncs the workers asked for in MySQL when they
// dropped a tenant's webhook jobs that could not be applied within their
// bound (workers never write to Kubernetes). Each request becomes a reconcile
// request on the binding (the annotation a user would set), which resyncs at
// once, and a Warning event. It runs in the leader only.
type resyncRequests struct{ r *UnisenderBindingReconciler }

func (q resyncRequests) NeedLeaderElection() bool { return true }

func (q resyncRequests) Start(ctx context.Context) error {
	t := time.NewTicker(resyncRequestInterval)
	defer t.Stop()
	for {
		q.takeAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (q resyncRequests) takeAll(ctx context.Context) {
	log := logf.FromContext(ctx).WithName("resync-requests")
	reqs, err := q.r.Store.ResyncRequests(ctx)
	if err != nil {
		log.Error(err, "reading the workers' resync requests")
		return
	}
	for _, req := range reqs {
		// A malformed tenant names no binding: the request is just removed.
		if key, err := tenant.Parse(req.Tenant); err == nil {
			if err := q.take(ctx, key, req.DroppedJobs); err != nil {
				log.Error(err, "starting a resync a worker requested", "tenant", req.Tenant)
				continue
			}
		}
		if err := q.r.Store.DoneResyncRequest(ctx, req); err != nil {
			log.Error(err, "removing a resync request", "tenant", req.Tenant)
		}
	}
}

// take annotates the binding with a reconcile request; a binding that is
// gone needs nothing.
func (q resyncRequests) take(ctx context.Context, key tenant.Key, dropped int) error {
	var obj v1alpha1.UnisenderBinding
	if err := q.r.Get(ctx, key.NamespacedName(), &obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	patch := client.MergeFrom(obj.DeepCopy())
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[v1alpha1.ReconcileRequestAnnotation] = q.r.now().UTC().Format(time.RFC3339Nano)
	if err := q.r.Patch(ctx, &obj, patch); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	q.r.event(&obj, corev1.EventTypeWarning, v1alpha1.ReasonEventsExpired, "Resync",
		"%d webhook jobs could not be applied within the workers' bound and were dropped; resyncing to catch up with Kommo", dropped)
	return nil
}
