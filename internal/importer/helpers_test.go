package importer_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

const apiKey = "unisender-test-key-0123456789"

// env is one tenant wired to both emulators and a fresh database.
type env struct {
	t *testing.T
	// clock is the Kommo emulator's business time, moved by the test so
	// that contacts get the updated_at the test wants.
	clock *sandboxtest.Clock
	kommo *kommoemu.Server
	// kommoURL is the emulator's base URL (an account's API is under /_acct/<subdomain>).
	kommoURL string
	uni      *unisenderemu.Server
	store    *store.Store
	source   *kommo.Client
	sink     *unisender.Client
	listID   int64
	tenant   tenant.Key
	spec     v1alpha1.UnisenderBindingSpec
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, clock: sandboxtest.NewClock(time.Now().Add(-48 * time.Hour).Truncate(time.Second)), tenant: tenant.Key{Namespace: "shop", Name: "main"}}

	var ksrv *httptest.Server
	e.kommo, ksrv = sandboxtest.Kommo(t, kommoemu.Options{Clock: e.clock.Now, RateLimit: -1})
	if _, err := e.kommo.AddAccount("acme"); err != nil {
		t.Fatal(err)
	}
	token, err := e.kommo.IssueLongLivedToken("acme", 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.kommoURL = ksrv.URL
	e.source = kommo.NewClient(ksrv.URL+"/_acct/acme", kommo.WithTokenSource(kommo.StaticToken(token)), kommo.WithRateLimit(0, 1))

	var usrv *httptest.Server
	e.uni, usrv = sandboxtest.Unisender(t, unisenderemu.Options{})
	e.uni.AddAPIKey(apiKey)
	e.sink = unisender.NewClient(usrv.URL, apiKey, unisender.WithRateLimit(0, 1))
	if e.listID, err = e.sink.CreateList(ctx, "Kommo contacts"); err != nil {
		t.Fatal(err)
	}

	e.store, err = store.Open(ctx, testenv.MySQLDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	if err := e.store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e.spec = v1alpha1.UnisenderBindingSpec{DeletionPolicy: v1alpha1.DeletionPolicyExclude}
	e.uni.ResetStats()
	return e
}

// addContacts creates n contacts with one address each, perSecond of them
// in each second of Kommo's clock (0: all in the same second).
func (e *env) addContacts(n, perSecond int) []kommo.Contact {
	e.t.Helper()
	out := make([]kommo.Contact, 0, n)
	for i := range n {
		if perSecond > 0 && i > 0 && i%perSecond == 0 {
			e.clock.Advance(time.Second)
		}
		c, err := e.kommo.CreateContact("acme", kommo.Contact{
			FirstName: "Person", LastName: fmt.Sprint(i),
			Emails: []string{fmt.Sprintf("person%05d@example.com", i)},
		})
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, c)
	}
	e.clock.Advance(time.Second)
	return out
}

// account returns the emulator's account of subdomain, adding it if new.
func (e *env) account(subdomain string) kommoemu.Account {
	e.t.Helper()
	a, err := e.kommo.AddAccount(subdomain)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) importer() *importer.Importer { return &importer.Importer{Store: e.store} }

func (e *env) job(runID string, from int64) importer.Job {
	return importer.Job{
		Tenant: e.tenant, RunID: runID, Kind: importer.KindInitial, From: from,
		Mapper: mapping.New(e.spec, e.listID), DeletionPolicy: e.spec.DeletionPolicy,
		Kommo: e.source, Unisender: e.sink,
	}
}

// importCalls returns the importContacts calls the emulator served and the
// rows they carried.
func (e *env) importCalls() (calls, rows int) {
	for _, r := range e.uni.Stats().Requests {
		if r.Method == "importContacts" && r.ErrorCode == "" {
			calls++
			rows += r.Rows
		}
	}
	return calls, rows
}

// activeMembers returns the addresses active in the tenant's list.
func (e *env) activeMembers() map[string]unisenderemu.Member {
	out := map[string]unisenderemu.Member{}
	for _, m := range e.uni.ListMembers(apiKey, e.listID) {
		if m.ListStatus == unisenderemu.ListActive {
			out[m.Email] = m
		}
	}
	return out
}

// contactListings returns the queries of the contact listings Kommo served.
func (e *env) contactListings() []url.Values {
	var out []url.Values
	for _, l := range e.kommo.RequestLog() {
		if l.Route == "GET /api/v4/contacts" {
			q, _ := url.ParseQuery(l.Query)
			out = append(out, q)
		}
	}
	return out
}

func emailOf(c kommo.Contact) string { return strings.ToLower(c.Emails[0]) }
