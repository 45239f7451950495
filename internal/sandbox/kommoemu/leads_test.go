package kommoemu_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

// formReceiver keeps every delivery's raw form.
type formReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	forms []url.Values
}

func newFormReceiver(t *testing.T) *formReceiver {
	rc := &formReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		rc.mu.Lock()
		rc.forms = append(rc.forms, r.PostForm)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// TestSegmentLeadWebhooksInKommosWireShape: lead changes reach the hooks
// subscribed to their event as leads[action][0][…] with the stage keys
// Kommo sends; old_pipeline_id, unverified, can be left out.
func TestSegmentLeadWebhooksInKommosWireShape(t *testing.T) {
	for _, omit := range []bool{false, true} {
		e := newEnv(t, kommoemu.Options{OmitOldPipelineID: omit})
		rc := newFormReceiver(t)
		e.subscribe(t, rc.srv.URL+"/hook", "add_lead", "status_lead", "delete_lead")
		c, err := e.emu.CreateContact("acme", kommo.Contact{Name: "Ann", Emails: []string{"ann@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		partners, err := e.emu.AddPipeline("acme", "Partners", []string{"Onboarding"})
		if err != nil {
			t.Fatal(err)
		}
		l, err := e.emu.CreateLead("acme", kommoemu.Lead{Name: "Deal", ContactIDs: []int64{c.ID}})
		if err != nil {
			t.Fatal(err)
		}
		e.waitIdle(t)
		if _, err := e.emu.MoveLead("acme", l.ID, partners.ID, kommoemu.StatusWon); err != nil {
			t.Fatal(err)
		}
		e.waitIdle(t)
		if err := e.emu.DeleteLead("acme", l.ID); err != nil {
			t.Fatal(err)
		}
		e.waitIdle(t)
		rc.mu.Lock()
		forms := rc.forms
		rc.mu.Unlock()
		if len(forms) != 3 {
			t.Fatalf("omit=%v: %d deliveries, want 3 (the contact's add is not subscribed to)", omit, len(forms))
		}
		id := func(n int64) string { return strconv.FormatInt(n, 10) }
		wantOldPipeline := id(l.PipelineID)
		if omit {
			wantOldPipeline = ""
		}
		for key, want := range map[string][2]string{
			"leads[add][0][id]":                 {"0", id(l.ID)},
			"leads[add][0][status_id]":          {"0", id(l.StatusID)},
			"leads[status][0][id]":              {"1", id(l.ID)},
			"leads[status][0][status_id]":       {"1", "142"},
			"leads[status][0][old_status_id]":   {"1", id(l.StatusID)},
			"leads[status][0][pipeline_id]":     {"1", id(partners.ID)},
			"leads[status][0][old_pipeline_id]": {"1", wantOldPipeline},
			"leads[delete][0][id]":              {"2", id(l.ID)},
			"leads[delete][0][pipeline_id]":     {"2", id(partners.ID)},
		} {
			n := int(want[0][0] - '0')
			if got := forms[n].Get(key); got != want[1] {
				t.Errorf("omit=%v: delivery %d %s = %q, want %q", omit, n, key, got, want[1])
			}
		}
	}
}
