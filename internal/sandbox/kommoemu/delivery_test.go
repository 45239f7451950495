package kommoemu_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

// receiver is a webhook destination that parses every delivery with the
// project's own parser.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []*kommo.WebhookPayload
	errs   []error
	status int           // answer; 0 = 200
	delay  time.Duration // before answering
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		status, delay := rc.status, rc.delay
		rc.mu.Unlock()
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("delivery Content-Type %q", ct)
		}
		if err := r.ParseForm(); err != nil {
			t.Errorf("delivery body: %v", err)
		}
		p, err := kommo.ParseWebhook(r.PostForm)
		rc.mu.Lock()
		rc.got, rc.errs = append(rc.got, p), append(rc.errs, err)
		rc.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
			}
		}
		if status != 0 {
			w.WriteHeader(status)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) set(status int, delay time.Duration) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.status, rc.delay = status, delay
}

func (rc *receiver) payloads(t *testing.T) []*kommo.WebhookPayload {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, err := range rc.errs {
		if err != nil {
			t.Fatalf("a delivery did not parse: %v", err)
		}
	}
	return slices.Clone(rc.got)
}

func (e *env) subscribe(t *testing.T, destination string, settings ...string) {
	t.Helper()
	a := e.do(t, "POST", e.base+"/api/v4/webhooks", e.token(t), map[string]any{"destination": destination, "settings": settings})
	if a.status != http.StatusCreated && a.status != http.StatusOK {
		t.Fatalf("subscribe: HTTP %d %s", a.status, a.body)
	}
}

func (e *env) waitIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.emu.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

func events(ps []*kommo.WebhookPayload) []kommo.WebhookEvent {
	var out []kommo.WebhookEvent
	for _, p := range ps {
		out = append(out, p.Events...)
	}
	return out
}

// Every change reaches the destination in Kommo's wire shape and parses
// back into what was changed.
func TestDeliveriesParseIntoTheChanges(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	rc := newReceiver(t)
	e.subscribe(t, rc.srv.URL+"/kommo/webhooks/ns.name/secret", "add_contact", "update_contact", "delete_contact")

	created, err := e.emu.CreateContact("acme", kommo.Contact{FirstName: "Maria", LastName: "Lopez",
		Emails: []string{"maria@example.com"}, Phones: []string{"+34 611 222 333"}, Tags: []string{"newsletter"},
		CustomFields: []kommo.CustomField{{Name: "Birthday", Values: []kommo.FieldValue{{Value: "1104537600"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitIdle(t)
	updated, err := e.emu.UpdateContact("acme", kommo.Contact{ID: created.ID, Name: "Maria Lopez Garcia",
		Emails: []string{"maria@lopez-garcia.example", "m.lopez@example.org"}, Tags: []string{"newsletter"}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitIdle(t)
	company, err := e.emu.CreateContact("acme", kommo.Contact{Type: kommo.ContactTypeCompany, Name: "Lopez Trading SL",
		Emails: []string{"office@lopeztrading.example"}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitIdle(t)
	if err := e.emu.DeleteContact("acme", created.ID); err != nil {
		t.Fatal(err)
	}
	e.waitIdle(t)

	ps := rc.payloads(t)
	evs := events(ps)
	if len(ps) != 4 || len(evs) != 4 {
		t.Fatalf("%d deliveries with %d events, want 4 and 4", len(ps), len(evs))
	}
	for _, p := range ps {
		if p.AccountID == 0 || p.Subdomain != "acme" {
			t.Errorf("account %d %q", p.AccountID, p.Subdomain)
		}
	}
	add, upd, comp, del := evs[0], evs[1], evs[2], evs[3]
	if add.Action != kommo.ActionAdd || add.Contact.ID != created.ID || !slices.Equal(add.Contact.Emails, created.Emails) ||
		!slices.Equal(add.Contact.Phones, []string{"+34 611 222 333"}) || !slices.Equal(add.Contact.Tags, []string{"newsletter"}) ||
		add.Contact.UpdatedAt != created.UpdatedAt || len(add.Contact.CustomFields) != 3 {
		t.Errorf("add event %+v, want %+v", add, created)
	}
	if upd.Action != kommo.ActionUpdate || upd.Contact.Name != "Maria Lopez Garcia" ||
		!slices.Equal(upd.Contact.Emails, updated.Emails) || upd.Contact.UpdatedAt != updated.UpdatedAt {
		t.Errorf("update event %+v, want %+v", upd, updated)
	}
	if comp.Action != kommo.ActionAdd || !comp.Contact.IsCompany() || comp.Contact.ID != company.ID {
		t.Errorf("company event %+v", comp)
	}
	if del.Action != kommo.ActionDelete || del.Contact.ID != created.ID || del.Contact.Name != "" {
		t.Errorf("delete event %+v", del)
	}
}

func TestChangesWithinTheBatchWindowShareARequest(t *testing.T) {
	e := newEnv(t, kommoemu.Options{WebhookBatchWindow: time.Hour})
	rc := newReceiver(t)
	e.subscribe(t, rc.srv.URL+"/hook", "add_contact", "update_contact")
	var ids []int64
	for _, name := range []string{"A", "B", "C"} {
		c, _ := e.emu.CreateContact("acme", kommo.Contact{Name: name, Emails: []string{name + "@example.com"}})
		ids = append(ids, c.ID)
	}
	_, _ = e.emu.UpdateContact("acme", kommo.Contact{ID: ids[0], Name: "A2"})
	if got := len(rc.payloads(t)); got != 0 {
		t.Fatalf("%d deliveries inside the window, want 0", got)
	}
	e.emu.Flush()
	e.waitIdle(t)
	ps := rc.payloads(t)
	if len(ps) != 1 || len(ps[0].Events) != 4 {
		t.Fatalf("%d deliveries, want 1 with 4 events", len(ps))
	}
	var added []int64
	for _, ev := range ps[0].Events {
		if ev.Action == kommo.ActionAdd {
			added = append(added, ev.Contact.ID)
		}
	}
	if !slices.Equal(added, ids) {
		t.Errorf("added %v, want %v in order", added, ids)
	}
}

func TestHooksGetOnlyTheirEvents(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	adds, deletes := newReceiver(t), newReceiver(t)
	e.subscribe(t, adds.srv.URL+"/a", "add_contact")
	e.subscribe(t, deletes.srv.URL+"/d", "delete_contact")
	c, _ := e.emu.CreateContact("acme", kommo.Contact{Name: "X"})
	_, _ = e.emu.UpdateContact("acme", kommo.Contact{ID: c.ID, Name: "Y"})
	_ = e.emu.DeleteContact("acme", c.ID)
	e.waitIdle(t)
	if evs := events(adds.payloads(t)); len(evs) != 1 || evs[0].Action != kommo.ActionAdd {
		t.Errorf("add hook got %+v", evs)
	}
	if evs := events(deletes.payloads(t)); len(evs) != 1 || evs[0].Action != kommo.ActionDelete {
		t.Errorf("delete hook got %+v", evs)
	}
}

// More than 100 failures within 2 hours disable a hook; the listing shows it.
func TestHookDisabledAfterMoreThan100Failures(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, kommoemu.Options{Clock: clock.Now, WebhookMaxBatch: 1})
	rc := newReceiver(t)
	rc.set(http.StatusInternalServerError, 0)
	dest := rc.srv.URL + "/hook"
	e.subscribe(t, dest, "add_contact")

	// 60 failures, then 2 h pass: they leave the window.
	for range 60 {
		_, _ = e.emu.CreateContact("acme", kommo.Contact{Name: "old"})
	}
	e.waitIdle(t)
	clock.Advance(2*time.Hour + time.Second)
	for range 100 {
		_, _ = e.emu.CreateContact("acme", kommo.Contact{Name: "n"})
	}
	e.waitIdle(t)
	hooks, _ := e.emu.Webhooks("acme")
	if hooks[0].Disabled || hooks[0].RecentFailures != 100 || hooks[0].Failures != 160 {
		t.Fatalf("after 100 recent failures: %+v; want enabled, 100 recent, 160 total", hooks[0])
	}
	_, _ = e.emu.CreateContact("acme", kommo.Contact{Name: "last"})
	e.waitIdle(t)

	a := e.do(t, "GET", e.base+"/api/v4/webhooks", e.token(t), nil)
	list := decode[struct {
		Embedded struct {
			Webhooks []struct {
				Destination string `json:"destination"`
				Disabled    bool   `json:"disabled"`
			} `json:"webhooks"`
		} `json:"_embedded"`
	}](t, a)
	if len(list.Embedded.Webhooks) != 1 || !list.Embedded.Webhooks[0].Disabled {
		t.Fatalf("listing after the 101st failure: %s", a.body)
	}
	// A disabled hook gets nothing more.
	before := len(rc.payloads(t))
	_, _ = e.emu.CreateContact("acme", kommo.Contact{Name: "after"})
	e.waitIdle(t)
	if got := len(rc.payloads(t)); got != before {
		t.Errorf("disabled hook received %d more deliveries", got-before)
	}
}

func TestSlowDestinationCountsAsFailure(t *testing.T) {
	e := newEnv(t, kommoemu.Options{WebhookTimeout: 50 * time.Millisecond})
	rc := newReceiver(t)
	rc.set(0, time.Second)
	e.subscribe(t, rc.srv.URL+"/slow", "add_contact")
	_, _ = e.emu.CreateContact("acme", kommo.Contact{Name: "x"})
	e.waitIdle(t)
	if st := e.emu.Stats(); st.Deliveries != 1 || st.DeliveryFailures != 1 {
		t.Errorf("deliveries %d failures %d, want 1 and 1", st.Deliveries, st.DeliveryFailures)
	}
}

func TestWebhookRegistryAPI(t *testing.T) {
	e := newEnv(t, kommoemu.Options{})
	tok := e.token(t)
	url := e.base + "/api/v4/webhooks"
	if a := e.do(t, "GET", url, tok, nil); a.status != http.StatusNoContent {
		t.Errorf("empty registry: HTTP %d, want 204", a.status)
	}
	bad := e.do(t, "POST", url, tok, map[string]any{"destination": "not a url", "settings": []string{"add_kontact"}})
	if p := decode[struct {
		Errors []struct{ Path string } `json:"validation-errors"`
	}](t, bad); bad.status != http.StatusBadRequest || len(p.Errors) != 2 {
		t.Errorf("bad subscribe: HTTP %d %s", bad.status, bad.body)
	}
	e.subscribe(t, "https://hooks.example/x", "add_contact")
	e.subscribe(t, "https://hooks.example/x", "add_contact", "delete_contact") // replaces settings
	hooks, _ := e.emu.Webhooks("acme")
	if len(hooks) != 1 || len(hooks[0].Settings) != 2 {
		t.Fatalf("hooks %+v", hooks)
	}
	if a := e.do(t, "DELETE", url, tok, map[string]string{"destination": "https://hooks.example/x"}); a.status != http.StatusNoContent {
		t.Errorf("unsubscribe: HTTP %d", a.status)
	}
	if a := e.do(t, "DELETE", url, tok, map[string]string{"destination": "https://hooks.example/x"}); a.status != http.StatusNotFound {
		t.Errorf("unsubscribe again: HTTP %d, want 404", a.status)
	}
}
