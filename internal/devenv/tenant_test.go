package devenv

import (
	"testing"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
)

// TestSegmentRoutedSampleBindings: make dev applies the routed pair of
// config/samples to its sample tenant: won deals to "Customers", lost ones
// to "Win-back", both on the sample integration and key.
func TestSegmentRoutedSampleBindings(t *testing.T) {
	bs, err := RoutedSampleBindings()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		list   string
		status int64
	}{
		"acme-customers": {"Customers", v1alpha1.StatusWon},
		"acme-win-back":  {"Win-back", v1alpha1.StatusLost},
	}
	if len(bs) != len(want) {
		t.Fatalf("%d bindings, want %d", len(bs), len(want))
	}
	for _, b := range bs {
		w, ok := want[b.Name]
		if !ok {
			t.Fatalf("unexpected binding %s", b.Name)
		}
		sel := b.Spec.Selector
		if b.Namespace != SampleNamespace || b.Spec.IntegrationRef.Name != SampleIntegration || b.Spec.APIKeySecretRef.Name != "unisender" ||
			b.Spec.List.Title != w.list || !sel.UsesLeads() || sel.Leads.Pipelines[0].Statuses[0].ID != w.status {
			t.Errorf("%s: %+v", b.Name, b.Spec)
		}
	}
}
