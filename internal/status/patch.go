package status

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SerialPatcher sends what changed on an object since the last patch (or
// since it was read) as JSON merge patches: one for metadata and spec, one
// for the status subresource. It is "serial" in Flux's sense: each Patch
// takes a new snapshot, so a reconcile can patch early (the finalizer) and
// again in its deferred summary without resending what is already stored.
//
// Each patch carries the resourceVersion the reconcile read, as an
// optimistic lock. A reconcile that started from a stale cache (one that
// ran before the cache saw the previous reconcile's write) would otherwise
// write its older view of the status over the newer one: conditions and
// all, since merge patch replaces lists as a whole. It gets a Conflict
// instead, and the reconciler reads again (see ConflictResult). The
// resourceVersion each patch returns is copied into obj, so that a second
// patch in the same reconcile builds on the first.
type SerialPatcher struct {
	client client.Client
	before Object
}

// NewSerialPatcher snapshots obj as the base of the first patch.
func NewSerialPatcher(obj Object, c client.Client) *SerialPatcher {
	return &SerialPatcher{client: c, before: obj.DeepCopyObject().(Object)}
}

// Patch sends the changes of obj since the snapshot and takes a new one.
// obj itself is not overwritten by the server's answers (except for its
// resourceVersion), so changes made in memory survive a patch of the other
// half. A NotFound (the object went away, e.g. once its finalizer was
// removed) is not an error; a Conflict is returned as such (IsConflict).
func (p *SerialPatcher) Patch(ctx context.Context, obj Object) error {
	data, err := client.MergeFrom(p.before).Data(obj)
	if err != nil {
		return fmt.Errorf("computing patch: %w", err)
	}
	main, statusPart, err := splitPatch(data)
	if err != nil {
		return err
	}
	if main != nil {
		apply := func(o client.Object, pt client.Patch) error { return p.client.Patch(ctx, o, pt) }
		if err := sendLocked(obj, main, apply); err != nil {
			return ignoreNotFound(fmt.Errorf("patching %s: %w", obj.GetName(), err))
		}
	}
	if statusPart != nil {
		apply := func(o client.Object, pt client.Patch) error { return p.client.Status().Patch(ctx, o, pt) }
		if err := sendLocked(obj, statusPart, apply); err != nil {
			return ignoreNotFound(fmt.Errorf("patching status of %s: %w", obj.GetName(), err))
		}
	}
	p.before = obj.DeepCopyObject().(Object)
	return nil
}

// sendLocked patches obj with patch locked to obj's resourceVersion, and takes
// the new resourceVersion into obj.
func sendLocked(obj Object, patch map[string]any, apply func(client.Object, client.Patch) error) error {
	md, _ := patch["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		patch["metadata"] = md
	}
	md["resourceVersion"] = obj.GetResourceVersion()
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	sent := obj.DeepCopyObject().(Object)
	if err := apply(sent, client.RawPatch(types.MergePatchType, data)); err != nil {
		return err
	}
	obj.SetResourceVersion(sent.GetResourceVersion())
	return nil
}

// conflictRequeue is how soon a reconcile whose patch met a Conflict runs
// again: the cache has usually caught up by then.
const conflictRequeue = 200 * time.Millisecond

// ConflictResult is the end of a reconcile whose patch failed. A Conflict
// (a stale read, or the object changed meanwhile) is not an error: the
// object is reconciled again shortly, from a fresh read.
func ConflictResult(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: conflictRequeue}, nil
	}
	return ctrl.Result{}, err
}

// splitPatch separates a merge patch into its status part and the rest,
// dropping fields the server owns. A nil result means nothing to send.
func splitPatch(data []byte) (main, statusPart map[string]any, err error) {
	var patch map[string]any
	if err := json.Unmarshal(data, &patch); err != nil {
		return nil, nil, fmt.Errorf("reading patch: %w", err)
	}
	if md, ok := patch["metadata"].(map[string]any); ok {
		// The resourceVersion is set by send, from the object; the rest are
		// never ours to write.
		for _, k := range []string{"resourceVersion", "generation", "managedFields", "uid", "creationTimestamp"} {
			delete(md, k)
		}
		if len(md) == 0 {
			delete(patch, "metadata")
		}
	}
	if st, ok := patch["status"]; ok {
		statusPart = map[string]any{"status": st}
		delete(patch, "status")
	}
	if len(patch) > 0 {
		main = patch
	}
	return main, statusPart, nil
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
