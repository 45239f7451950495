package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// # One list, one binding (unless they share it)
//
// Each binding removes from its list the addresses its own Kommo contacts
// no longer hold. Two bindings on one list would remove what the other
// still holds, so the younger one is refused (ListInUse), unless both set
// spec.list.shared: then every removal (webhook deletes and e-mail changes,
// the sweep, the cleanup on deletion) keeps the addresses a sharer's
// contacts still hold (syncer.Tenant.ListSharers, store.HeldByAny).
//
// A list is identified by status.listID and status.listKeyID (the API
// key's id, never the key), which this step records; the worker finds the
// sharers the same way (UnisenderBinding.SharesListWith).

// reconcileListClaim records the list's identity and refuses the list when
// an older binding holds it without both sharing; otherwise it notes the
// sharers for the import runs.
func (r *UnisenderBindingReconciler) reconcileListClaim(ctx context.Context, p *bindingPass) (time.Duration, error) {
	obj := p.obj
	obj.Status.ListKeyID = p.uni.KeyID()
	others, err := r.bindingsOnList(ctx, obj)
	if err != nil {
		return 0, err
	}
	for _, o := range others {
		if !obj.SharesListWith(o) && o.OlderThan(obj) {
			return 0, r.refuseList(ctx, p, o)
		}
	}
	p.listSharers = listSharers(obj, others)
	return 0, nil
}

// refuseList gives the list up: the binding shows no list (so neither the
// worker nor its deletion touches it) and stalls naming the holder.
func (r *UnisenderBindingReconciler) refuseList(ctx context.Context, p *bindingPass, holder *v1alpha1.UnisenderBinding) error {
	if err := r.runner.Stop(ctx, p.tenant); err != nil {
		return fmt.Errorf("stopping the import run: %w", err)
	}
	listID := p.obj.Status.ListID
	p.obj.Status.ListID, p.obj.Status.ListKeyID = 0, ""
	return outcome.Stall(v1alpha1.ReasonListInUse,
		"Unisender list %d of the API key in %s is already synced by UnisenderBinding %s/%s (the older binding keeps it): two bindings on one list remove each other's contacts. "+
			"Point spec.list at another list, or set spec.list.shared: true on both bindings to share it",
		listID, p.keySource, holder.Namespace, holder.Name)
}

// bindingsOnList returns the other bindings (in the cache's namespaces)
// that resolved the same list as obj.
func (r *UnisenderBindingReconciler) bindingsOnList(ctx context.Context, obj *v1alpha1.UnisenderBinding) ([]*v1alpha1.UnisenderBinding, error) {
	var list v1alpha1.UnisenderBindingList
	if err := r.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing UnisenderBindings: %w", err)
	}
	var out []*v1alpha1.UnisenderBinding
	for i := range list.Items {
		if obj.OnSameList(&list.Items[i]) {
			out = append(out, &list.Items[i])
		}
	}
	return out, nil
}

// listSharers returns the tenant keys of the bindings among others that
// share obj's list with it.
func listSharers(obj *v1alpha1.UnisenderBinding, others []*v1alpha1.UnisenderBinding) []string {
	var keys []string
	for _, o := range others {
		if obj.SharesListWith(o) {
			keys = append(keys, tenant.FromNamespacedName(client.ObjectKeyFromObject(o)).String())
		}
	}
	return keys
}

// notSharedEmails returns the addresses of emails that no tenant sharing
// the list holds: those a binding's cleanup may remove.
func (r *UnisenderBindingReconciler) notSharedEmails(ctx context.Context, sharers, emails []string) ([]string, error) {
	held, err := r.Store.HeldByAny(ctx, sharers, emails)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(slices.Clone(emails), func(e string) bool { return held[e] }), nil
}

// bindingsRefusedAList maps any binding change (a holder deleted, moved
// to another list, or sharing now) to the bindings refused a list, so that
// they claim it again.
func (r *UnisenderBindingReconciler) bindingsRefusedAList(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.UnisenderBindingList
	if err := r.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "listing UnisenderBindings refused a list")
		return nil
	}
	var reqs []reconcile.Request
	for i := range list.Items {
		b := &list.Items[i]
		if c := status.Get(b, v1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1alpha1.ReasonListInUse &&
			(b.Namespace != o.GetNamespace() || b.Name != o.GetName()) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: b.Namespace, Name: b.Name}})
		}
	}
	return reqs
}
