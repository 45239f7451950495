package forged

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"
	_ "github.com/go-sql-driver/mysql" // the operator's database
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
)

// seedContacts is the size of the sandbox account: enough for a forged
// body naming 2,000 contacts that all exist.
const seedContacts = 2100

// system is the whole operator, as `make dev` runs it (real processes of
// the binary built from this checkout, MariaDB, beanstalkd, envtest, the
// sandbox), with the sample tenant imported, seen from outside: the
// forger's side (the webhook URL, as any Kommo admin can list it) and the
// observer's (the emulators' admin APIs, beanstalkd's and MySQL's state).
type system struct {
	env       *devenv.Env
	logs      *devenv.LogBuffer // every process's log lines
	listID    int64
	accountID int64
	// hookURL is the tenant's webhook destination as Kommo lists it
	// (GET /api/v4/webhooks): the secret in it is all a forger needs.
	hookURL string
	db      *sql.DB
	mu      sync.Mutex // guards bs
	bs      *beanstalk.Conn
	used    []int64 // Kommo contacts earlier cases changed
}

// start brings the system up and waits until the initial import is done
// and the list holds exactly Kommo's addresses.
func start(t *testing.T, ctx context.Context) *system {
	t.Helper()
	env, logs := devtest.StartWithLogs(t, ctx, devenv.Options{
		Sandbox: true, SandboxAccessTokenTTL: time.Hour, SeedContacts: seedContacts,
	})
	s := &system{env: env, logs: logs}
	if err := env.ApplySampleTenant(ctx); err != nil {
		t.Fatal(err)
	}
	var last v1alpha1.UnisenderBindingStatus
	devtest.WaitUntil(t, "the initial import", 90*time.Second, func() (bool, string) {
		st, err := env.SampleBindingStatus(ctx)
		last = st
		return err == nil && st.Import != nil && st.Import.Phase == v1alpha1.ImportCompleted && st.ListID != 0,
			fmt.Sprintf("status %+v (%v)", st, err)
	})
	s.listID = last.ListID
	var ki v1alpha1.KommoIntegration
	must(t, env.Client.Get(ctx, client.ObjectKey{Namespace: devenv.SampleNamespace, Name: devenv.SampleIntegration}, &ki))
	s.accountID = ki.Status.AccountID
	if s.accountID == 0 {
		t.Fatal("the integration has no account id")
	}
	devtest.WaitUntil(t, "the tenant's webhook in Kommo", 30*time.Second, func() (bool, string) {
		var hooks []struct {
			Destination string `json:"destination"`
			Disabled    bool   `json:"disabled"`
		}
		s.getJSON(t, s.kommoAdmin("/webhooks"), &hooks)
		for _, h := range hooks {
			if strings.Contains(h.Destination, "/kommo/webhooks/"+devenv.SampleNamespace+"."+devenv.SampleBinding+"/") && !h.Disabled {
				s.hookURL = h.Destination
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d hooks, none enabled for the tenant", len(hooks))
	})
	var err error
	s.db, err = sql.Open("mysql", env.MySQLDSN())
	must(t, err)
	t.Cleanup(func() { _ = s.db.Close() })
	s.bs, err = beanstalk.Dial("tcp", env.Beanstalkd.Addr())
	must(t, err)
	t.Cleanup(func() { _ = s.bs.Close() })
	s.waitConverged(t)
	return s
}

// --- the forger ---

// post sends a form to the tenant's webhook URL, as a forger holding the
// URL would; the server must take it (200) within Kommo's 2 s.
func (s *system) post(t *testing.T, form url.Values) {
	t.Helper()
	body := form.Encode()
	t0 := time.Now()
	resp, err := http.Post(s.hookURL, "application/x-www-form-urlencoded", strings.NewReader(body))
	must(t, err)
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the webhook server answered %d (%s) to a well-formed body, want 200", resp.StatusCode, answer)
	}
	if d := time.Since(t0); d >= 2*time.Second {
		t.Errorf("answered after %v; Kommo gives up at 2 s", d)
	}
}

// form is a webhook body of the tenant's account.
func (s *system) form() url.Values {
	return url.Values{
		"account[id]":           {strconv.FormatInt(s.accountID, 10)},
		"account[subdomain]":    {devenv.SandboxSubdomain},
		"account[_links][self]": {"https://" + devenv.SandboxSubdomain + ".kommo.com"},
	}
}

// contactForm sets a contact of action at index i, as Kommo's form shape
// has it: id, name, one e-mail, timestamps.
func (s *system) contactForm(form url.Values, action string, i int, id int64, name, email string, updatedAt string) {
	k := fmt.Sprintf("contacts[%s][%d]", action, i)
	form.Set(k+"[id]", strconv.FormatInt(id, 10))
	form.Set(k+"[type]", "contact")
	form.Set(k+"[account_id]", strconv.FormatInt(s.accountID, 10))
	if name != "" {
		form.Set(k+"[name]", name)
	}
	if email != "" {
		form.Set(k+"[custom_fields][0][id]", "812347")
		form.Set(k+"[custom_fields][0][name]", "Email")
		form.Set(k+"[custom_fields][0][code]", "EMAIL")
		form.Set(k+"[custom_fields][0][values][0][value]", email)
		form.Set(k+"[custom_fields][0][values][0][enum]", "1364060")
	}
	if updatedAt != "" {
		form.Set(k+"[updated_at]", updatedAt)
		form.Set(k+"[last_modified]", updatedAt)
	}
}

// --- beanstalkd: has the worker taken everything? ---

type queueStats struct{ total, ready, reserved, delayed, buried int }

func (s *system) queueStats(t *testing.T) queueStats {
	t.Helper()
	s.mu.Lock()
	st, err := s.bs.Stats()
	s.mu.Unlock()
	must(t, err)
	n := func(k string) int {
		v, err := strconv.Atoi(st[k])
		if err != nil {
			t.Fatalf("beanstalkd stats %s = %q", k, st[k])
		}
		return v
	}
	return queueStats{total: n("total-jobs"), ready: n("current-jobs-ready"), reserved: n("current-jobs-reserved"),
		delayed: n("current-jobs-delayed"), buried: n("current-jobs-buried")}
}

// waitDrained waits until beanstalkd has had at least jobs more jobs than
// from (the forged ones) and none is ready, reserved or delayed: the worker
// has applied and deleted them all. A buried job fails the test: nothing a
// forger sends through the webhook server may become a poison job.
func (s *system) waitDrained(t *testing.T, from queueStats, jobs int) {
	t.Helper()
	devtest.WaitUntil(t, "the worker to drain the queue", 45*time.Second, func() (bool, string) {
		st := s.queueStats(t)
		if st.buried > from.buried {
			t.Fatalf("%d jobs buried", st.buried-from.buried)
		}
		return st.total >= from.total+jobs && st.ready+st.reserved+st.delayed == 0, fmt.Sprintf("%+v", st)
	})
}

// --- Kommo (the sandbox's admin API: the account's true state) ---

type adminContact struct {
	ID     int64    `json:"id,omitempty"`
	Type   string   `json:"type,omitempty"`
	Name   string   `json:"name,omitempty"`
	Emails []string `json:"emails"`
	Phones []string `json:"phones"`
}

func (s *system) kommoAdmin(path string) string {
	return s.env.KommoURL + "/_admin/accounts/" + devenv.SandboxSubdomain + path
}

// persons are Kommo's live contacts that are people, by id.
func (s *system) persons(t *testing.T) []adminContact {
	t.Helper()
	var all []adminContact
	s.getJSON(t, s.kommoAdmin("/contacts"), &all)
	out := all[:0]
	for _, c := range all {
		if c.Type != "company" {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b adminContact) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// kommoEmails are the addresses of Kommo's live people, sorted.
func (s *system) kommoEmails(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range s.persons(t) {
		for _, e := range c.Emails {
			seen[strings.ToLower(strings.TrimSpace(e))] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func (s *system) createContact(t *testing.T, name, email string) int64 {
	t.Helper()
	var out adminContact
	s.send(t, http.MethodPost, s.kommoAdmin("/contacts"), adminContact{Name: name, Emails: []string{email}}, &out)
	return out.ID
}

func (s *system) updateContact(t *testing.T, id int64, name, email string) {
	t.Helper()
	s.send(t, http.MethodPut, s.kommoAdmin("/contacts/"+strconv.FormatInt(id, 10)), adminContact{Name: name, Emails: []string{email}}, nil)
}

func (s *system) deleteContact(t *testing.T, id int64) {
	t.Helper()
	s.send(t, http.MethodDelete, s.kommoAdmin("/contacts/"+strconv.FormatInt(id, 10)), nil, nil)
}

// setHookDisabled disables or enables the tenant's webhook in Kommo: while
// it is disabled Kommo delivers nothing (a lost webhook).
func (s *system) setHookDisabled(t *testing.T, disabled bool) {
	t.Helper()
	s.send(t, http.MethodPut, s.kommoAdmin("/webhooks/disabled"),
		map[string]any{"destination": s.hookURL, "disabled": disabled}, nil)
}

// kommoDeliveries counts the webhook POSTs Kommo attempted.
func (s *system) kommoDeliveries(t *testing.T) int {
	t.Helper()
	var st struct {
		Deliveries int `json:"deliveries"`
	}
	s.getJSON(t, s.env.KommoURL+"/_admin/stats", &st)
	return st.Deliveries
}

// kommoIdle ends Kommo's batch window and waits until it has delivered
// every queued change.
func (s *system) kommoIdle(t *testing.T) {
	t.Helper()
	s.send(t, http.MethodPost, s.env.KommoURL+"/_admin/flush", nil, nil)
	s.send(t, http.MethodPost, s.env.KommoURL+"/_admin/wait-idle", map[string]string{"timeout": "10s"}, nil)
}

// kommoRequests counts the API requests the Kommo emulator served, by
// route ("GET /api/v4/contacts").
func (s *system) kommoRequests(t *testing.T) map[string]int {
	t.Helper()
	var st struct {
		Requests map[string]int `json:"requests"`
	}
	s.getJSON(t, s.env.KommoURL+"/_admin/stats", &st)
	return st.Requests
}

// --- Unisender (the sandbox's admin API: what the tenant's list holds) ---

type member struct {
	Email      string `json:"email"`
	Status     string `json:"status"`
	ListStatus string `json:"list_status"`
}

func (s *system) members(t *testing.T) map[string]member {
	t.Helper()
	var ms []member
	s.getJSON(t, fmt.Sprintf("%s/_admin/lists/%d/members", s.env.UnisenderURL, s.listID), &ms)
	out := make(map[string]member, len(ms))
	for _, m := range ms {
		out[m.Email] = m
	}
	return out
}

// listEmails are the addresses active in the list, sorted.
func (s *system) listEmails(t *testing.T) []string {
	t.Helper()
	var out []string
	for e, m := range s.members(t) {
		if m.ListStatus == "active" {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return out
}

func (s *system) inList(t *testing.T, email string) bool {
	t.Helper()
	return s.members(t)[email].ListStatus == "active"
}

// unisenderKnows reports whether the Unisender account has the address at
// all (in any list, with any status).
func (s *system) unisenderKnows(t *testing.T, email string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.env.UnisenderURL+"/_admin/contacts/"+url.PathEscape(email), nil)
	req.Header.Set("X-Unisender-Api-Key", devenv.SandboxUnisenderKey)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusNotFound:
		return false
	}
	t.Fatalf("GET Unisender contact: HTTP %d", resp.StatusCode)
	return false
}

// unisenderCalls counts the API calls the Unisender emulator served, by
// method (importContacts, subscribe, …).
func (s *system) unisenderCalls(t *testing.T) map[string]int {
	t.Helper()
	var st struct {
		Calls map[string]int `json:"calls"`
	}
	s.getJSON(t, s.env.UnisenderURL+"/_admin/stats", &st)
	return st.Calls
}

// waitConverged waits until the list holds exactly Kommo's addresses.
func (s *system) waitConverged(t *testing.T) {
	t.Helper()
	var want, got []string
	devtest.WaitUntil(t, "the list to equal Kommo's addresses", 60*time.Second, func() (bool, string) {
		want, got = s.kommoEmails(t), s.listEmails(t)
		return slices.Equal(want, got), fmt.Sprintf("only in Kommo: %.300v; only in the list: %.300v", devtest.Minus(want, got), devtest.Minus(got, want))
	})
}

// --- the operator's database ---

// invitation is the status of the tenant's invitation to the address in
// the store (pending, sent, failed), "" if none was ever queued.
func (s *system) invitation(t *testing.T, email string) string {
	t.Helper()
	var status string
	err := s.db.QueryRow("SELECT status FROM invitations WHERE tenant = ? AND email = ?",
		devenv.SampleNamespace+"/"+devenv.SampleBinding, email).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	must(t, err)
	return status
}

// setDoubleOptin sets the sample binding's spec.doubleOptin.
func (s *system) setDoubleOptin(t *testing.T, mode v1alpha1.DoubleOptin) {
	t.Helper()
	ctx := context.Background()
	var b v1alpha1.UnisenderBinding
	must(t, s.env.Client.Get(ctx, client.ObjectKey{Namespace: devenv.SampleNamespace, Name: devenv.SampleBinding}, &b))
	b.Spec.DoubleOptin = mode
	must(t, s.env.Client.Update(ctx, &b))
}

// --- plumbing ---

func (s *system) getJSON(t *testing.T, u string, v any) {
	t.Helper()
	must(t, devenv.SandboxJSON(http.MethodGet, u, nil, v))
}

func (s *system) send(t *testing.T, method, u string, body, out any) {
	t.Helper()
	must(t, devenv.SandboxJSON(method, u, body, out))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
