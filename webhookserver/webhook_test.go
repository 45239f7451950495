package webhookserver_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

// contactsOf reads the contacts a job names; the job must be a valid
// contacts job.
func contactsOf(t testing.TB, env queue.Envelope) []queue.ContactRef {
	t.Helper()
	if env.Kind != queue.KindContacts {
		t.Fatalf("a job of kind %q, want %q", env.Kind, queue.KindContacts)
	}
	refs, err := queue.DecodeContacts(env)
	must(t, err)
	return refs
}

// fixtureContacts is what each Kommo sample must become: the people it
// names, each with its action. Companies (the second contact of the update
// sample) are not synced; nothing else of the body is queued.
var fixtureContacts = map[string][]queue.ContactRef{
	fixtures.AddContact:              {{ID: 5100201, Action: "add"}},
	fixtures.UpdateContactAndCompany: {{ID: 5100201, Action: "update"}},
	fixtures.DeleteContact:           {{ID: 5100201, Action: "delete"}},
}

// TestEveryFixtureIsQueued posts every Kommo sample to the real server and
// reads the job back from beanstalkd: one contacts job per request, for the
// tenant and its account, naming exactly the sample's people and actions.
func TestEveryFixtureIsQueued(t *testing.T) {
	names := fixtures.KommoWebhookNames()
	if !slices.Equal(names, slices.Sorted(maps.Keys(fixtureContacts))) {
		t.Fatalf("samples %v, but the expected contacts are written for %v", names, slices.Sorted(maps.Keys(fixtureContacts)))
	}
	h := newHarness(t, harnessOpts{})
	for _, name := range names {
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
			if env.Version != queue.EnvelopeVersion || env.Kind != queue.KindContacts ||
				env.Tenant != f.TenantID() || env.AccountID != f.AccountID {
				t.Errorf("envelope %+v, want version %d kind %s tenant %s account %d",
					env, queue.EnvelopeVersion, queue.KindContacts, f.TenantID(), f.AccountID)
			}
			if env.ReceivedAt.Before(before) || env.ReceivedAt.After(time.Now().UTC().Add(time.Second)) {
				t.Errorf("received_at %v is not the time of the request", env.ReceivedAt)
			}
			if got := contactsOf(t, env); !slices.Equal(got, fixtureContacts[name]) {
				t.Errorf("queued contacts %v, want %v", got, fixtureContacts[name])
			}
			for _, leak := range []string{"maria", "Maria", "example", "812347", "1764153600"} {
				if strings.Contains(string(env.Payload), leak) {
					t.Errorf("the job carries body data (%q): %s", leak, env.Payload)
				}
			}
		})
	}
}

// TestWellFormedBodiesWithoutPeopleAreAccepted: a company, a contact
// without an e-mail, and a body with only lead notes are all 2xx — a refusal
// would count towards Kommo disabling the hook — and only people are
// queued.
func TestWellFormedBodiesWithoutPeopleAreAccepted(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	account := strconv.FormatInt(f.AccountID, 10)
	cases := []struct {
		name string
		form url.Values
		want []queue.ContactRef // nil: no job
	}{
		{"only a company", url.Values{
			"account[id]": {account}, "account[subdomain]": {"acme"},
			"contacts[add][0][id]": {"501"}, "contacts[add][0][type]": {"company"},
			"contacts[add][0][name]": {"Acme Ltd"}, "contacts[add][0][account_id]": {account},
		}, nil},
		{"companies around people", url.Values{
			"account[id]":               {account},
			"contacts[add][0][id]":      {"601"},
			"contacts[add][0][type]":    {"company"},
			"contacts[add][1][id]":      {"602"},
			"contacts[add][1][type]":    {"contact"},
			"contacts[update][0][id]":   {"603"},
			"contacts[update][0][type]": {"company"},
			"contacts[update][1][id]":   {"604"},
			"contacts[update][1][type]": {"contact"},
			"contacts[delete][0][id]":   {"605"},
			"contacts[delete][0][type]": {"company"},
		}, []queue.ContactRef{{ID: 602, Action: "add"}, {ID: 604, Action: "update"}}},
		{"a contact without e-mail", url.Values{
			"account[id]":                                             {account},
			"contacts[update][0][id]":                                 {"502"},
			"contacts[update][0][name]":                               {"No Mail"},
			"contacts[update][0][custom_fields][0][id]":               {"7"},
			"contacts[update][0][custom_fields][0][code]":             {"PHONE"},
			"contacts[update][0][custom_fields][0][values][0][value]": {"+100200300"},
		}, []queue.ContactRef{{ID: 502, Action: "update"}}},
		{"only lead notes", url.Values{
			"account[id]": {account}, "leads[note][0][id]": {"9001"}, "leads[note][0][text]": {"Called"},
		}, nil},
		{"one contact added, changed and deleted", url.Values{
			"account[id]":             {account},
			"contacts[add][0][id]":    {"700"},
			"contacts[update][0][id]": {"700"},
			"contacts[delete][0][id]": {"700"},
		}, []queue.ContactRef{{ID: 700, Action: "delete"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			resp := h.postForm(f.WebhookPath(), tc.form.Encode())
			if resp.Status != http.StatusOK {
				t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
			}
			jobs := h.reserveAll()
			if tc.want == nil {
				if len(jobs) != 0 {
					t.Fatalf("%d jobs, want none", len(jobs))
				}
				return
			}
			if len(jobs) != 1 {
				t.Fatalf("%d jobs, want 1", len(jobs))
			}
			if got := contactsOf(t, jobs[0]); !slices.Equal(got, tc.want) {
				t.Errorf("queued %v, want %v", got, tc.want)
			}
		})
	}
}

// countingQueue counts the puts beanstalkd answered INSERTED.
type countingQueue struct {
	webhookserver.Queue
	inserted atomic.Int64
}

func (q *countingQueue) Put(ctx context.Context, tube string, body []byte, pri uint32, delay, ttr time.Duration) (uint64, error) {
	id, err := q.Queue.Put(ctx, tube, body, pri, delay, ttr)
	if err == nil {
		q.inserted.Add(1)
	}
	return id, err
}

// headerProbe calls at, once per request, when the handler starts its
// answer (its status line): what at sees happened before the answer.
type headerProbe struct {
	http.ResponseWriter
	once sync.Once
	at   func(status int)
}

func (p *headerProbe) WriteHeader(status int) {
	p.once.Do(func() { p.at(status) })
	p.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the connection (the server
// sets its read deadline through it).
func (p *headerProbe) Unwrap() http.ResponseWriter { return p.ResponseWriter }

func (p *headerProbe) Write(b []byte) (int, error) {
	p.once.Do(func() { p.at(http.StatusOK) })
	return p.ResponseWriter.Write(b)
}

// manyContactsBody is a body naming n people (adds with an e-mail, updates
// claiming updated_at = 2^63−1, deletes, in thirds), ids from first on.
func manyContactsBody(accountID int64, first int64, n int) (string, []int64) {
	form := url.Values{"account[id]": {strconv.FormatInt(accountID, 10)}, "account[subdomain]": {"acme"}}
	ids := make([]int64, n)
	for i := range n {
		id := first + int64(i)
		ids[i] = id
		switch i % 3 {
		case 0:
			k := fmt.Sprintf("contacts[add][%d]", i)
			form.Set(k+"[id]", strconv.FormatInt(id, 10))
			form.Set(k+"[name]", "Forged "+strconv.Itoa(i))
			form.Set(k+"[custom_fields][0][id]", "812347")
			form.Set(k+"[custom_fields][0][code]", "EMAIL")
			form.Set(k+"[custom_fields][0][values][0][value]", fmt.Sprintf("f%d@example.com", i))
		case 1:
			k := fmt.Sprintf("contacts[update][%d]", i)
			form.Set(k+"[id]", strconv.FormatInt(id, 10))
			form.Set(k+"[updated_at]", "9223372036854775807")
		default:
			form.Set(fmt.Sprintf("contacts[delete][%d][id]", i), strconv.FormatInt(id, 10))
		}
	}
	return form.Encode(), ids
}

// TestManyContactsAreSplitBeforeThe200: a body naming 2,000 people (the
// parser's bound) becomes 8 jobs of at most 250 contacts, every one
// INSERTED before the answer's status line is written, each small: its
// size is bounded by the contacts it names, not by the body.
func TestManyContactsAreSplitBeforeThe200(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	counter := &countingQueue{}
	var insertedAtAnswer atomic.Int64
	insertedAtAnswer.Store(-1)
	h := newHarness(t, harnessOpts{
		queue: func(q webhookserver.Queue) webhookserver.Queue { counter.Queue = q; return counter },
		handler: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(&headerProbe{ResponseWriter: w, at: func(int) {
					insertedAtAnswer.Store(counter.inserted.Load())
				}}, r)
			})
		},
	})
	const n = kommo.MaxWebhookContacts
	body, ids := manyContactsBody(f.AccountID, 7_100_000_000, n)
	resp := h.postForm(f.WebhookPath(), body)
	if resp.Status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", resp.Status, resp.Body)
	}
	const wantJobs = n / queue.MaxContactsPerJob
	if got := insertedAtAnswer.Load(); got != wantJobs {
		t.Fatalf("%d jobs INSERTED when the 200 was written, want all %d", got, wantJobs)
	}
	if got := h.jobsInTube(); got != wantJobs {
		t.Fatalf("%d jobs in beanstalkd after the 200, want %d", got, wantJobs)
	}
	jobs := h.reserveAllBodies()
	var named []int64
	sizes := make([]int, 0, len(jobs))
	for _, raw := range jobs {
		env, err := queue.Decode(raw)
		must(t, err)
		refs := contactsOf(t, env)
		if len(refs) > queue.MaxContactsPerJob {
			t.Errorf("a job names %d contacts, bound %d", len(refs), queue.MaxContactsPerJob)
		}
		if env.Tenant != f.TenantID() || env.AccountID != f.AccountID {
			t.Errorf("job for %s account %d", env.Tenant, env.AccountID)
		}
		// {"id":<≤19 digits>,"action":"update"}, is at most 45 bytes.
		if bound := 256 + len(f.TenantID()) + 45*len(refs); len(raw) > bound {
			t.Errorf("a job of %d contacts is %d bytes, bound %d", len(refs), len(raw), bound)
		}
		if len(raw) > 12<<10 {
			t.Errorf("a job is %d bytes; a full job must stay under 12 KiB", len(raw))
		}
		sizes = append(sizes, len(raw))
		for _, r := range refs {
			named = append(named, r.ID)
		}
	}
	slices.Sort(named)
	if !slices.Equal(named, ids) {
		t.Errorf("the jobs name %d contacts (%d distinct), want each of the %d once", len(named), len(slices.Compact(slices.Clone(named))), len(ids))
	}
	total := 0
	for _, s := range sizes {
		total += s
	}
	t.Logf("a %d-byte body naming %d contacts → %d jobs of %v bytes (%d in all)", len(body), n, len(jobs), sizes, total)
}

// TestSuspendedBindingIsAnsweredAndNotQueued: a suspended binding's
// webhooks get 200 (a refusal would count towards Kommo disabling the
// hook) and nothing is queued; authentication still applies; once resumed
// its webhooks are queued again.
func TestSuspendedBindingIsAnsweredAndNotQueued(t *testing.T) {
	f := newTenant(t, tenantOpts{suspended: true})
	h := newHarness(t, harnessOpts{})
	for _, name := range fixtures.KommoWebhookNames() {
		if resp := h.postForm(f.WebhookPath(), fixtureBody(t, name)); resp.Status != http.StatusOK {
			t.Errorf("%s for a suspended binding: status %d (%s), want 200", name, resp.Status, resp.Body)
		}
	}
	many, _ := manyContactsBody(f.AccountID, 1, kommo.MaxWebhookContacts)
	if resp := h.postForm(f.WebhookPath(), many); resp.Status != http.StatusOK {
		t.Errorf("2,000 contacts for a suspended binding: status %d, want 200", resp.Status)
	}
	wrong := "/kommo/webhooks/" + f.Segment() + "/" + strings.Repeat("0", 64)
	if resp := h.postForm(wrong, fixtureBody(t, fixtures.AddContact)); resp.Status != http.StatusNotFound {
		t.Errorf("wrong secret for a suspended binding: status %d, want 404", resp.Status)
	}
	if n := h.jobsInTube(); n != 0 {
		t.Fatalf("%d jobs queued for a suspended binding, want none", n)
	}
	f.setSuspended(t, false)
	if resp := h.postForm(f.WebhookPath(), fixtureBody(t, fixtures.AddContact)); resp.Status != http.StatusOK {
		t.Fatalf("after resuming: status %d (%s)", resp.Status, resp.Body)
	}
	jobs := h.reserveAll()
	if len(jobs) != 1 || !slices.Equal(contactsOf(t, jobs[0]), fixtureContacts[fixtures.AddContact]) {
		t.Fatalf("after resuming: %d jobs %v, want the add sample's", len(jobs), jobs)
	}
}
