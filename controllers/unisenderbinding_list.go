package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
)

// reconcileList resolves spec.list to a list id: an id must name a list of
// the account; a title finds the list with that title or creates it. When
// the list changes, the binding starts over with the new one (see
// switchList).
func (r *UnisenderBindingReconciler) reconcileList(ctx context.Context, p *bindingPass) (time.Duration, error) {
	spec := p.obj.Spec.List
	var id int64
	switch {
	case spec.ID != 0:
		if !hasList(p, func(id int64, _ string) bool { return id == spec.ID }) {
			return 0, outcome.Stall(v1alpha1.ReasonListNotFound,
				"the Unisender account of the key in %s has no list with id %d: fix spec.list.id, or use spec.list.title to have the list created", p.keySource, spec.ID)
		}
		id = spec.ID
	default:
		title := strings.TrimSpace(spec.Title)
		for _, l := range p.lists {
			if strings.TrimSpace(l.Title) == title {
				id = l.ID
				break
			}
		}
		if id == 0 {
			created, err := p.uni.CreateList(ctx, title)
			if err != nil {
				return 0, fmt.Errorf("creating Unisender list %q: %w", title, unisenderKeyFailure(err, p.keySource))
			}
			id = created
			r.event(p.obj, corev1.EventTypeNormal, v1alpha1.ReasonListCreated, "CreateList", "created Unisender list %q (id %d)", title, id)
		}
	}
	if p.obj.Status.ListID != 0 && p.obj.Status.ListID != id {
		if err := r.switchList(ctx, p, id); err != nil {
			return 0, err
		}
	}
	p.obj.Status.ListID = id
	return 0, nil
}

func hasList(p *bindingPass, match func(id int64, title string) bool) bool {
	for _, l := range p.lists {
		if match(l.ID, l.Title) {
			return true
		}
	}
	return false
}

// switchList starts the binding over with another list: the running import
// stops and the tenant's stored state goes (it describes what was synced to
// the old list), so the initial import fills the new list. The old list is
// left as it is.
func (r *UnisenderBindingReconciler) switchList(ctx context.Context, p *bindingPass, id int64) error {
	old := p.obj.Status.ListID
	logf.FromContext(ctx).Info("the binding's Unisender list changed; starting over", "from", old, "to", id)
	if err := r.runner.Stop(ctx, p.tenant); err != nil {
		return fmt.Errorf("stopping the import run: %w", err)
	}
	if err := r.Store.DeleteTenant(ctx, p.tenant.String()); err != nil {
		return err
	}
	p.obj.Status.Import = nil
	p.obj.Status.LastResyncTime = nil
	p.obj.Status.LastSyncedUpdatedAt = 0
	r.event(p.obj, corev1.EventTypeNormal, v1alpha1.ReasonListChanged, "SwitchList",
		"the binding now syncs into Unisender list %d (was %d); importing the contacts again", id, old)
	return nil
}

// reconcileFields makes sure every Unisender user field the mapping writes
// exists with the type the mapping asks for; missing ones are created.
func (r *UnisenderBindingReconciler) reconcileFields(ctx context.Context, p *bindingPass) (time.Duration, error) {
	want := wantedFields(p.obj.Spec.FieldMapping)
	fields, err := p.uni.GetFields(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading Unisender fields: %w", unisenderKeyFailure(err, p.keySource))
	}
	have := map[string]string{}
	for _, f := range fields {
		have[f.Name] = f.Type
	}
	for _, w := range want {
		typ, exists := have[w.name]
		switch {
		case exists && !w.accepts(typ):
			return 0, outcome.Stall(v1alpha1.ReasonFieldTypeMismatch,
				"the Unisender field %q exists with type %q, but %s needs %s: change the field in Unisender or map to another field",
				w.name, typ, w.path, strings.Join(w.types, " or "))
		case !exists:
			if _, err := p.uni.CreateField(ctx, w.name, w.types[0]); err != nil {
				return 0, fmt.Errorf("creating Unisender field %q: %w", w.name, unisenderKeyFailure(err, p.keySource))
			}
			r.event(p.obj, corev1.EventTypeNormal, v1alpha1.ReasonFieldCreated, "CreateField", "created Unisender field %q (%s) for %s", w.name, w.types[0], w.path)
		}
	}
	return 0, nil
}

// wantedField is a Unisender user field the mapping writes, and the types
// that can hold its values (the first is used to create it).
type wantedField struct {
	name  string
	types []string
	path  string // the spec field that asks for it, for messages
}

func (w wantedField) accepts(typ string) bool {
	for _, t := range w.types {
		if t == typ {
			return true
		}
	}
	return false
}

func wantedFields(m v1alpha1.FieldMapping) []wantedField {
	out := []wantedField{{name: m.NameField(), types: []string{string(v1alpha1.FieldTypeString), string(v1alpha1.FieldTypeText)}, path: "spec.fieldMapping.name"}}
	for i, cf := range m.CustomFields {
		typ := cf.Type
		if typ == "" {
			typ = v1alpha1.FieldTypeString
		}
		out = append(out, wantedField{name: cf.UnisenderField, types: []string{string(typ)}, path: fmt.Sprintf("spec.fieldMapping.customFields[%d]", i)})
	}
	return out
}
