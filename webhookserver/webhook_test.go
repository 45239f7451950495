package webhookserver_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
)

// decodePayload reads the Kommo payload of a webhook job.
func decodePayload(t *testing.T, env queue.Envelope) *kommo.WebhookPayload {
	t.Helper()
	var p kommo.WebhookPayload
	must(t, json.Unmarshal(env.Payload, &p))
	return &p
}

// TestEveryFixtureIsQueued posts every Kommo sample to the real server and
// reads the job back from beanstalkd: one job per request, for the tenant,
// holding exactly what the parser makes of the sample.
func TestEveryFixtureIsQueued(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, name := range fixtures.KommoWebhookNames() {
		t.Run(name, func(t *testing.T) {
			f := newTenant(t, tenantOpts{accountID: accountOf(t, name)})
			before := time.Now().UTC().Add(-time.Second)
			resp := h.postForm(f.WebhookPath(), fixtureBody(t, name))
			if resp.Status != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
			}
			jobs := h.reserveAll()
			if len(jobs) != 1 {
				t.Fatalf("%d jobs in the tube, want 1", len(jobs))
			}
			env := jobs[0]
			if env.Version != queue.EnvelopeVersion || env.Kind != queue.KindWebhook ||
				env.Tenant != f.TenantID() || env.AccountID != f.AccountID {
				t.Errorf("envelope %+v, want version %d kind %s tenant %s account %d",
					env, queue.EnvelopeVersion, queue.KindWebhook, f.TenantID(), f.AccountID)
			}
			if env.ReceivedAt.Before(before) || env.ReceivedAt.After(time.Now().UTC().Add(time.Second)) {
				t.Errorf("received_at %v is not the time of the request", env.ReceivedAt)
			}
			form, err := fixtures.KommoWebhook(name)
			must(t, err)
			want, err := kommo.ParseWebhook(form)
			must(t, err)
			if got := decodePayload(t, env); !reflect.DeepEqual(got, want) {
				t.Errorf("queued payload\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestWellFormedBodiesWithoutPeopleAreAccepted: a company, a contact
// without an e-mail, and a body with only leads are all 2xx — a refusal
// would count towards Kommo disabling the hook.
func TestWellFormedBodiesWithoutPeopleAreAccepted(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	account := strconv.FormatInt(f.AccountID, 10)
	cases := []struct {
		name string
		form url.Values
		jobs int
		typ  kommo.ContactType
	}{
		{"only a company", url.Values{
			"account[id]": {account}, "account[subdomain]": {"acme"},
			"contacts[add][0][id]": {"501"}, "contacts[add][0][type]": {"company"},
			"contacts[add][0][name]": {"Acme Ltd"}, "contacts[add][0][account_id]": {account},
		}, 1, kommo.ContactTypeCompany},
		{"a contact without e-mail", url.Values{
			"account[id]":                                             {account},
			"contacts[update][0][id]":                                 {"502"},
			"contacts[update][0][name]":                               {"No Mail"},
			"contacts[update][0][custom_fields][0][id]":               {"7"},
			"contacts[update][0][custom_fields][0][code]":             {"PHONE"},
			"contacts[update][0][custom_fields][0][values][0][value]": {"+100200300"},
		}, 1, kommo.ContactTypeContact},
		{"only leads", url.Values{
			"account[id]": {account}, "leads[add][0][id]": {"9001"}, "leads[add][0][name]": {"Deal"},
		}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			resp := h.postForm(f.WebhookPath(), tc.form.Encode())
			if resp.Status != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
			}
			jobs := h.reserveAll()
			if len(jobs) != tc.jobs {
				t.Fatalf("%d jobs, want %d", len(jobs), tc.jobs)
			}
			if tc.jobs == 1 {
				p := decodePayload(t, jobs[0])
				if len(p.Events) != 1 || p.Events[0].Contact.Type != tc.typ {
					t.Errorf("payload %+v, want one event of type %s", p, tc.typ)
				}
			}
		})
	}
}
