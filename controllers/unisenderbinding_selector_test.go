package controllers

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// TestSegmentBindingResolvesPipelinesAndRegistersLeadEvents: a selector on
// leads by name is resolved to ids in status.selector, the webhook is
// registered for the lead events too, and the counts show; a pipeline the
// account does not have stalls the binding with the names it has.
func TestSegmentBindingResolvesPipelinesAndRegistersLeadEvents(t *testing.T) {
	e := newBindingEnv(t, kommoemu.Options{})
	e.readyIntegration(true)
	e.addContacts(3)
	m := e.startManager(bindingManagerOptions{})
	defer m.stop()
	pipelines, err := e.kommo.Pipelines("acme")
	if err != nil {
		t.Fatal(err)
	}
	sales := pipelines[0]

	e.create(e.binding("won", func(s *v1alpha1.UnisenderBindingSpec) {
		s.Selector = &v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{
			{Name: strings.ToUpper(sales.Name), Statuses: []v1alpha1.StatusSelector{{Name: sales.Statuses[1].Name}, {ID: v1alpha1.StatusWon}}}}}}
	}))
	obj := e.waitBinding("won", v1alpha1.ConditionImported, metav1.ConditionTrue, "", 60*time.Second)
	want := []v1alpha1.ResolvedPipeline{{ID: sales.ID, Name: strings.ToUpper(sales.Name), StatusIDs: []int64{sales.Statuses[1].ID, v1alpha1.StatusWon}}}
	if sel := obj.Status.Selector; sel == nil || !reflect.DeepEqual(sel.Pipelines, want) {
		t.Fatalf("status.selector = %+v, want pipelines %+v", sel, want)
	}
	hooks := e.webhooks()
	if len(hooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(hooks))
	}
	for _, s := range append(slices.Clone(WebhookSettings), kommo.LeadSettings()...) {
		if !slices.Contains(hooks[0].Settings, s) {
			t.Errorf("webhook settings %v lack %s", hooks[0].Settings, s)
		}
	}

	e.create(e.binding("tagged", func(s *v1alpha1.UnisenderBindingSpec) {
		s.Selector = &v1alpha1.Selector{Tags: &v1alpha1.TagSelector{NoneOf: []string{"nobody-has-it"}}}
	}))
	obj = e.waitBinding("tagged", v1alpha1.ConditionImported, metav1.ConditionTrue, "", 60*time.Second)
	requestBindingReconcile(t, e.c, e.ns, "tagged")
	eventually(t, 30*time.Second, func() (bool, string) {
		obj = e.get("tagged")
		sel := obj.Status.Selector
		return sel != nil && sel.Matching == 3 && sel.InList == 3, fmt.Sprintf("status.selector %+v", sel)
	})

	e.create(e.binding("unknown", func(s *v1alpha1.UnisenderBindingSpec) {
		s.Selector = &v1alpha1.Selector{Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{{Name: "Wholesale"}}}}
	}))
	obj = e.waitBinding("unknown", v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonSelectorUnresolved, 30*time.Second)
	if msg := status.Get(obj, v1alpha1.ConditionStalled).Message; !strings.Contains(msg, `"Wholesale"`) || !strings.Contains(msg, sales.Name) {
		t.Fatalf("stall message %q: want the unknown name and the pipelines the account has", msg)
	}
}
