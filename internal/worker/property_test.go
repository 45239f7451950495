package worker_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// kommoModel plays a Kommo account: contacts added, edited and deleted in
// time order (every change a strictly later updated_at; a deleted contact
// never comes back), drawing addresses from a small pool so that contacts
// share them, in varying letter case.
type kommoModel struct {
	rng      *rand.Rand
	clock    int64
	live     map[int64][]string // contact id → its addresses, for live contacts
	deleted  map[int64]bool
	events   []timedEvent
	contacts int
}

type timedEvent struct {
	ev kommo.WebhookEvent
	at int64 // when Kommo made the change (and the webhook was received)
}

var addressPool = []string{
	"ana@example.com", "bo@example.com", "Shared@Example.com", "shared@example.com",
	"team@example.org", "zoe@example.net", "x@example.io",
}

func newKommoModel(seed uint64, contacts int) *kommoModel {
	return &kommoModel{rng: rand.New(rand.NewPCG(seed, seed*7919+1)), clock: 1_760_000_000,
		live: map[int64][]string{}, deleted: map[int64]bool{}, contacts: contacts}
}

// step makes one change to a random contact that is not deleted; false if
// every contact is deleted.
func (m *kommoModel) step() bool {
	var candidates []int64
	for id := int64(1); id <= int64(m.contacts); id++ {
		if !m.deleted[id] {
			candidates = append(candidates, id)
		}
	}
	if len(candidates) == 0 {
		return false
	}
	id := candidates[m.rng.IntN(len(candidates))]
	m.clock += 1 + m.rng.Int64N(3)
	_, exists := m.live[id]
	switch {
	case !exists:
		m.change(id, kommo.ActionAdd)
	case m.rng.IntN(4) == 0:
		delete(m.live, id)
		m.deleted[id] = true
		m.events = append(m.events, timedEvent{at: m.clock, ev: kommo.WebhookEvent{Action: kommo.ActionDelete,
			Contact: kommo.Contact{ID: id, Type: kommo.ContactTypeContact}}})
	default:
		m.change(id, kommo.ActionUpdate)
	}
	return true
}

func (m *kommoModel) change(id int64, action kommo.Action) {
	var emails []string
	for range m.rng.IntN(4) {
		emails = append(emails, addressPool[m.rng.IntN(len(addressPool))])
	}
	m.live[id] = emails
	m.events = append(m.events, timedEvent{at: m.clock, ev: kommo.WebhookEvent{Action: action, Contact: contact(id, m.clock, emails...)}})
}

// want is what the list must hold: every address of a live contact.
func (m *kommoModel) want() []string {
	set := map[string]bool{}
	for _, emails := range m.live {
		for _, e := range emails {
			set[strings.ToLower(e)] = true
		}
	}
	out := []string{}
	for e := range set {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// jobs packs the events into webhook deliveries of one to three
// consecutive events (as Kommo batches them), each received when its last
// change was made, and repeats some deliveries (Kommo retries).
func (m *kommoModel) jobs(t testing.TB, key tenant.Key) [][]byte {
	var out [][]byte
	for i := 0; i < len(m.events); {
		n := min(1+m.rng.IntN(3), len(m.events)-i)
		p := payload()
		for _, te := range m.events[i : i+n] {
			p.Events = append(p.Events, te.ev)
		}
		body := envelope(t, key, p, time.Unix(m.events[i+n-1].at, 0))
		out = append(out, body)
		if m.rng.IntN(3) == 0 { // a third of the deliveries come once or twice more
			for range 1 + m.rng.IntN(2) {
				out = append(out, body)
			}
		}
		i += n
	}
	return out
}

// Random histories of a few contacts, delivered as jobs with duplicates
// and in shuffled order to two workers at once (as two replicas), converge
// to what Kommo holds, for every seed.
func TestRandomHistoriesConvergeToKommoState(t *testing.T) {
	t.Parallel()
	const seeds, eventsPerSeed = 30, 40
	h := newHarness(t, harnessOptions{})
	models := map[tenant.Key]*kommoModel{}
	var bodies [][]byte
	for seed := range uint64(seeds) {
		key := tenant.Key{Namespace: "prop", Name: fmt.Sprintf("seed-%d", seed)}
		h.addTenant(key)
		m := newKommoModel(seed, 6)
		for range eventsPerSeed {
			if !m.step() {
				break
			}
		}
		models[key] = m
		bodies = append(bodies, m.jobs(t, key)...)
	}
	shuffle := rand.New(rand.NewPCG(42, 42))
	shuffle.Shuffle(len(bodies), func(i, j int) { bodies[i], bodies[j] = bodies[j], bodies[i] })
	for _, b := range bodies {
		h.put(b)
	}

	// Small batches, so that a tenant's history spans many batches and
	// both replicas, in an order unrelated to Kommo's.
	for range 2 {
		cfg := h.config()
		cfg.Concurrency, cfg.MaxEvents = 2, 12
		h.start(cfg)
	}
	s := h.waitDrained(60 * time.Second)
	if s.Buried != 0 {
		t.Fatalf("%d jobs buried: %s", s.Buried, describe(h.deadLetters()))
	}
	for key, m := range models {
		ts := h.resolver.tenants[key]
		if got, want := h.members(ts), m.want(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: list members %v, Kommo's live contacts hold %v (%d events)", key, got, want, len(m.events))
		}
	}
	if n := h.emu.RevivalAttempts(); n != 0 {
		t.Errorf("%d revival attempts", n)
	}
	t.Logf("%d tenants, %d jobs (with duplicates), %d importContacts calls",
		seeds, len(bodies), h.emu.Stats().Calls["importContacts"])
}
