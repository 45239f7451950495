package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/segment"
)

// reconcileSelector resolves spec.selector.leads to ids with the account's
// pipelines (on a spec change, a reconcile request, or when not resolved
// yet), compiles the segment the import and resync evaluate, and shows how
// many contacts it selects. A name the account does not have stalls the
// binding with the names it has.
func (r *UnisenderBindingReconciler) reconcileSelector(ctx context.Context, p *bindingPass) (time.Duration, error) {
	obj := p.obj
	sel := obj.Spec.Selector
	if obj.Status.Selector == nil {
		obj.Status.Selector = &v1alpha1.SelectorStatus{}
	}
	st := obj.Status.Selector
	if !sel.UsesLeads() {
		st.Pipelines = nil
	} else if st.Pipelines == nil || p.forced || obj.Status.ObservedGeneration != obj.Generation {
		if err := r.resolvePipelines(ctx, p); err != nil {
			return 0, err
		}
	}
	seg, err := segment.New(sel, st.Pipelines)
	if err != nil {
		return 0, err
	}
	p.segment = seg
	counts, err := r.Store.CountSegment(ctx, p.tenant.String())
	if err != nil {
		return 0, err
	}
	st.Matching, st.InList = counts.Matching, counts.InList
	return 0, nil
}

func (r *UnisenderBindingReconciler) resolvePipelines(ctx context.Context, p *bindingPass) error {
	cctx, cancel := context.WithTimeout(ctx, kommoStepTimeout)
	defer cancel()
	pipelines, err := p.kommo.Pipelines(cctx)
	if err != nil {
		return fmt.Errorf("reading the Kommo pipelines for spec.selector.leads: %w", err)
	}
	resolved, err := segment.Resolve(p.obj.Spec.Selector.Leads, pipelines)
	var unresolved *segment.UnresolvedError
	if errors.As(err, &unresolved) {
		return outcome.Stall(v1alpha1.ReasonSelectorUnresolved, "spec.selector.leads: %s", unresolved.Error())
	}
	if err != nil {
		return err
	}
	logf.FromContext(ctx).V(1).Info("selector pipelines resolved", "pipelines", len(resolved))
	p.obj.Status.Selector.Pipelines = resolved
	return nil
}
