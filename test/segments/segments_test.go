// Package segments tests routing by spec.selector through the whole system
// (real processes of the binary built from this checkout, MariaDB,
// beanstalkd, envtest, the sandbox): Kommo's webhooks reach the webhook
// server, the worker reads the contacts and their leads, and each binding's
// list follows its segment.
package segments

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the operator's database
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

// consentFieldID is the consent checkbox of the test contact.
const consentFieldID = 7001

// routeWithin bounds a routing change (webhook → queue → worker → Unisender):
// seconds, with room for a loaded machine.
const routeWithin = 20 * time.Second

type system struct {
	env   *devenv.Env
	lists map[string]int64 // binding name → its Unisender list
}

// TestSegmentRoutingFollowsKommoThroughTheSystem: a deal moved to won
// moves its contact from the "open deals" list to the "customers" list;
// removing the newsletter tag or unticking the consent box takes the
// address out of the newsletter list (excluded, not unsubscribed), ticking
// it again brings it back; an address unsubscribed in Unisender never
// returns; a deleted deal takes its contact out of the customers.
func TestSegmentRoutingFollowsKommoThroughTheSystem(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	s := start(t, ctx)

	zed := s.createContact(t, map[string]any{"name": "Zed", "emails": []string{"zed@example.com"},
		"tags": []string{"newsletter"}, "custom_fields": []any{consent("true")}})
	var lead kommoemu.Lead
	s.kommo(t, http.MethodPost, "/leads", kommoemu.Lead{Name: "Zed's deal", ContactIDs: []int64{zed}}, &lead)
	s.waitStatus(t, "zed@example.com", map[string]string{"open-deals": "active", "newsletter": "active", "customers": ""})

	t0 := time.Now()
	s.kommo(t, http.MethodPut, fmt.Sprintf("/leads/%d/status", lead.ID), map[string]int64{"status_id": v1alpha1.StatusWon}, nil)
	s.waitStatus(t, "zed@example.com", map[string]string{"open-deals": "excluded", "customers": "active", "newsletter": "active"})
	t.Logf("deal won → contact moved from open deals to customers in %v", time.Since(t0).Round(time.Millisecond))

	s.updateContact(t, zed, map[string]any{"name": "Zed", "emails": []string{"zed@example.com"},
		"custom_fields": []any{consent("true")}})
	s.waitStatus(t, "zed@example.com", map[string]string{"newsletter": "excluded", "customers": "active"})

	s.updateContact(t, zed, map[string]any{"name": "Zed", "emails": []string{"zed@example.com"},
		"tags": []string{"newsletter"}, "custom_fields": []any{consent("true")}})
	s.waitStatus(t, "zed@example.com", map[string]string{"newsletter": "active"})

	s.updateContact(t, zed, map[string]any{"name": "Zed", "emails": []string{"zed@example.com"},
		"tags": []string{"newsletter"}, "custom_fields": []any{consent("false")}})
	s.waitStatus(t, "zed@example.com", map[string]string{"newsletter": "excluded"})

	s.updateContact(t, zed, map[string]any{"name": "Zed", "emails": []string{"zed@example.com"},
		"tags": []string{"newsletter"}, "custom_fields": []any{consent("true")}})
	s.waitStatus(t, "zed@example.com", map[string]string{"newsletter": "active"})

	// Zed unsubscribes from the newsletter in Unisender; leaving the
	// segment and matching again (with a new name, to see the sync pass)
	// never resubscribes him.
	s.unisender(t, http.MethodPut, fmt.Sprintf("/contacts/zed@example.com/lists/%d/status", s.lists["newsletter"]),
		map[string]string{"status": unisenderemu.ListUnsubscribed})
	s.updateContact(t, zed, map[string]any{"name": "Zed", "emails": []string{"zed@example.com"},
		"custom_fields": []any{consent("true")}})
	s.waitOutside(t, "newsletter", zed)
	s.updateContact(t, zed, map[string]any{"name": "Zed Again", "emails": []string{"zed@example.com"},
		"tags": []string{"newsletter"}, "custom_fields": []any{consent("true")}})
	devtest.WaitUntil(t, "the new name in Unisender", routeWithin, func() (bool, string) {
		c := s.contact(t, "zed@example.com")
		return c.Fields["Name"] == "Zed Again", fmt.Sprintf("%+v", c)
	})
	if st := s.contact(t, "zed@example.com").Lists[s.lists["newsletter"]]; st != unisenderemu.ListUnsubscribed {
		t.Fatalf("zed's newsletter membership is %q after coming back into the segment; want it to stay unsubscribed", st)
	}

	// The deal is deleted: Kommo can no longer say whose it was, the
	// store's lead links can, and Zed leaves the customers. (Each lead
	// binding has applied the last contact change first, so that only the
	// lead event can take him out.)
	for _, b := range []string{"customers", "open-deals"} {
		s.waitStored(t, b, zed, "Zed Again")
	}
	s.waitStatus(t, "zed@example.com", map[string]string{"customers": "active"})
	s.kommo(t, http.MethodDelete, fmt.Sprintf("/leads/%d", lead.ID), nil, nil)
	s.waitStatus(t, "zed@example.com", map[string]string{"customers": "excluded", "open-deals": "excluded"})
}

func consent(v string) map[string]any {
	return map[string]any{"id": consentFieldID, "name": "Newsletter consent", "values": []any{map[string]string{"value": v}}}
}

// start brings the system up with the sample integration and three routed
// bindings, and waits until each has imported and registered its webhook.
func start(t *testing.T, ctx context.Context) *system {
	t.Helper()
	env := devtest.Start(t, ctx, devenv.Options{Sandbox: true, SandboxAccessTokenTTL: time.Hour, SeedContacts: 20})
	if err := env.ApplySampleTenant(ctx); err != nil {
		t.Fatal(err)
	}
	sales := v1alpha1.PipelineSelector{Name: kommoemu.DefaultPipelineName}
	openDeals := sales
	for _, name := range kommoemu.DefaultStatusNames {
		openDeals.Statuses = append(openDeals.Statuses, v1alpha1.StatusSelector{Name: name})
	}
	won := sales
	won.Statuses = []v1alpha1.StatusSelector{{ID: v1alpha1.StatusWon}}
	selectors := map[string]*v1alpha1.Selector{
		"open-deals": {Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{openDeals}}},
		"customers":  {Leads: &v1alpha1.LeadSelector{Pipelines: []v1alpha1.PipelineSelector{won}}},
		"newsletter": {Tags: &v1alpha1.TagSelector{AnyOf: []string{"newsletter"}},
			Field: &v1alpha1.FieldSelector{KommoFieldID: consentFieldID}},
	}
	s := &system{env: env, lists: map[string]int64{}}
	for name, sel := range selectors {
		b := &v1alpha1.UnisenderBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: devenv.SampleNamespace}, Spec: v1alpha1.UnisenderBindingSpec{
			IntegrationRef:  v1alpha1.IntegrationReference{Name: devenv.SampleIntegration},
			APIKeySecretRef: v1alpha1.SecretKeySelector{Name: "unisender", Key: "api-key"},
			List:            v1alpha1.ListSelector{Title: "Segment " + name},
			Selector:        sel,
		}}
		if err := env.Client.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for name := range selectors {
		devtest.WaitUntil(t, name+"'s import and webhook", 2*time.Minute, func() (bool, string) {
			var b v1alpha1.UnisenderBinding
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: devenv.SampleNamespace, Name: name}, &b)
			st := b.Status
			ok := err == nil && st.Import != nil && st.Import.Phase == v1alpha1.ImportCompleted && st.ListID != 0 &&
				isTrue(st.Conditions, v1alpha1.ConditionWebhookRegistered)
			s.lists[name] = st.ListID
			return ok, fmt.Sprintf("status %+v (%v)", st, err)
		})
	}
	return s
}

func isTrue(conds []metav1.Condition, typ string) bool {
	for _, c := range conds {
		if c.Type == typ {
			return c.Status == "True"
		}
	}
	return false
}

// waitStatus waits until the address has, in each named binding's list,
// the membership status given ("" for none).
func (s *system) waitStatus(t *testing.T, email string, want map[string]string) {
	t.Helper()
	devtest.WaitUntil(t, fmt.Sprintf("%s's memberships %v", email, want), routeWithin, func() (bool, string) {
		c := s.contact(t, email)
		got := map[string]string{}
		for name := range want {
			got[name] = c.Lists[s.lists[name]]
		}
		for name, st := range want {
			if got[name] != st {
				return false, fmt.Sprintf("memberships %v", got)
			}
		}
		return true, ""
	})
}

// waitStored waits until the binding's worker committed the contact's
// version with the name.
func (s *system) waitStored(t *testing.T, binding string, id int64, name string) {
	t.Helper()
	s.waitRow(t, fmt.Sprintf("contact %d named %q in %s's store", id, name, binding),
		`SELECT name = ? FROM contact_state WHERE tenant = ? AND contact_id = ?`, name, devenv.SampleNamespace+"/"+binding, id)
}

// waitRow waits until the query's one boolean answers true.
func (s *system) waitRow(t *testing.T, what, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("mysql", s.env.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	devtest.WaitUntil(t, what, routeWithin, func() (bool, string) {
		var ok bool
		err := db.QueryRowContext(t.Context(), query, args...).Scan(&ok)
		return err == nil && ok, fmt.Sprintf("%v (%v)", ok, err)
	})
}

// waitOutside waits until the binding's worker committed the contact as
// outside its segment (the store's row says so): nothing shows in
// Unisender for an address that left a list it had unsubscribed from.
func (s *system) waitOutside(t *testing.T, binding string, id int64) {
	t.Helper()
	s.waitRow(t, fmt.Sprintf("contact %d outside %s's segment", id, binding),
		`SELECT outside_segment FROM contact_state WHERE tenant = ? AND contact_id = ?`, devenv.SampleNamespace+"/"+binding, id)
}

func (s *system) contact(t *testing.T, email string) unisenderemu.Contact {
	t.Helper()
	var c unisenderemu.Contact
	err := devenv.SandboxJSON(http.MethodGet, s.env.UnisenderURL+"/_admin/contacts/"+url.PathEscape(email), nil, &c)
	if err != nil {
		return unisenderemu.Contact{} // not in Unisender yet
	}
	return c
}

func (s *system) createContact(t *testing.T, c map[string]any) int64 {
	t.Helper()
	var out struct{ ID int64 }
	s.kommo(t, http.MethodPost, "/contacts", c, &out)
	return out.ID
}

func (s *system) updateContact(t *testing.T, id int64, c map[string]any) {
	t.Helper()
	s.kommo(t, http.MethodPut, fmt.Sprintf("/contacts/%d", id), c, nil)
}

func (s *system) kommo(t *testing.T, method, path string, body, out any) {
	t.Helper()
	u := s.env.KommoURL + "/_admin/accounts/" + devenv.SandboxSubdomain + path
	if err := devenv.SandboxJSON(method, u, body, out); err != nil {
		t.Fatal(err)
	}
}

func (s *system) unisender(t *testing.T, method, path string, body any) {
	t.Helper()
	if err := devenv.SandboxJSON(method, s.env.UnisenderURL+"/_admin"+path, body, nil); err != nil {
		t.Fatal(err)
	}
}
