package webhookserver_test

import (
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/queue"
)

func TestSegmentLeadWebhookQueuesTheLeads(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	account := strconv.FormatInt(f.AccountID, 10)
	h := newHarness(t, harnessOpts{})
	form := url.Values{
		"account[id]":                       {account},
		"leads[status][0][id]":              {"9001"},
		"leads[status][0][status_id]":       {"142"},
		"leads[status][0][old_status_id]":   {"55"},
		"leads[status][0][pipeline_id]":     {"7"},
		"leads[status][0][old_pipeline_id]": {"7"},
		"leads[delete][0][id]":              {"9002"},
		"leads[add][3][id]":                 {"9001"},
		"contacts[update][0][id]":           {"11"},
	}
	resp := h.postForm(f.WebhookPath(), form.Encode())
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
	}
	var leads []queue.LeadRef
	var contacts []queue.ContactRef
	for _, env := range h.reserveAll() {
		switch env.Kind {
		case queue.KindLeads:
			refs, err := queue.DecodeLeads(env)
			if err != nil {
				t.Fatal(err)
			}
			leads = append(leads, refs...)
		case queue.KindContacts:
			refs, err := queue.DecodeContacts(env)
			if err != nil {
				t.Fatal(err)
			}
			contacts = append(contacts, refs...)
		}
	}
	// Each lead once, with its last action (add, status, …, delete order).
	if want := []queue.LeadRef{{ID: 9001, Action: "status"}, {ID: 9002, Action: "delete"}}; !reflect.DeepEqual(leads, want) {
		t.Errorf("leads queued %v, want %v", leads, want)
	}
	if want := []queue.ContactRef{{ID: 11, Action: "update"}}; !reflect.DeepEqual(contacts, want) {
		t.Errorf("contacts queued %v, want %v", contacts, want)
	}
}
