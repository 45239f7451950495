package status

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SerialPatcher sends what changed on an object since the last patch (or
// since it was read) as JSON merge patches: one for metadata and spec, one
// for the status subresource. It is "serial" in Flux's sense: each Patch
// takes a new snapshot, so a reconcile can patch early (the finalizer) and
// again in its deferred summary without resending what is already stored.
//
// The patches carry no resourceVersion: the status of an object is written
// by its reconciler only, and a stale writer is corrected by the next
// reconcile. Lists (finalizers, conditions) are replaced as a whole, as JSON
// merge patch does.
type SerialPatcher struct {
	client client.Client
	before Object
}

// NewSerialPatcher snapshots obj as the base of the first patch.
func NewSerialPatcher(obj Object, c client.Client) *SerialPatcher {
	return &SerialPatcher{client: c, before: obj.DeepCopyObject().(Object)}
}

// Patch sends the changes of obj since the snapshot and takes a new one.
// obj itself is not overwritten by the server's answers, so changes made in
// memory survive a patch of the other half. A NotFound (the object went
// away, e.g. once its finalizer was removed) is not an error.
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
		if err := p.client.Patch(ctx, obj.DeepCopyObject().(Object), client.RawPatch(types.MergePatchType, main)); err != nil {
			return ignoreNotFound(fmt.Errorf("patching %s: %w", obj.GetName(), err))
		}
	}
	if statusPart != nil {
		if err := p.client.Status().Patch(ctx, obj.DeepCopyObject().(Object), client.RawPatch(types.MergePatchType, statusPart)); err != nil {
			return ignoreNotFound(fmt.Errorf("patching status of %s: %w", obj.GetName(), err))
		}
	}
	p.before = obj.DeepCopyObject().(Object)
	return nil
}

// splitPatch separates a merge patch into its status part and the rest,
// dropping fields the server owns. A nil result means nothing to send.
func splitPatch(data []byte) (main, statusPart []byte, err error) {
	var patch map[string]any
	if err := json.Unmarshal(data, &patch); err != nil {
		return nil, nil, fmt.Errorf("reading patch: %w", err)
	}
	if md, ok := patch["metadata"].(map[string]any); ok {
		// A changed resourceVersion in the patch would turn it into an
		// optimistic lock; the rest are never ours to write.
		for _, k := range []string{"resourceVersion", "generation", "managedFields", "uid", "creationTimestamp"} {
			delete(md, k)
		}
		if len(md) == 0 {
			delete(patch, "metadata")
		}
	}
	if st, ok := patch["status"]; ok {
		if statusPart, err = json.Marshal(map[string]any{"status": st}); err != nil {
			return nil, nil, err
		}
		delete(patch, "status")
	}
	if len(patch) > 0 {
		if main, err = json.Marshal(patch); err != nil {
			return nil, nil, err
		}
	}
	return main, statusPart, nil
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
