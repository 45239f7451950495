package worker_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// addressPool is what the random contacts' addresses are drawn from: few,
// so that contacts share them, in varying letter case.
var addressPool = []string{
	"ana@example.com", "bo@example.com", "Shared@Example.com", "shared@example.com",
	"team@example.org", "zoe@example.net", "x@example.io",
}

// forgedAddress is what forged bodies (of the earlier job format, which
// carried contact data) claim a contact holds; no Kommo contact ever does.
const forgedAddress = "forged@evil.example"

// history plays random histories on the Kommo emulator, one account per
// tenant, while two workers run: each change is made in Kommo, then its
// delivery (a job naming the contact) is scheduled, once or several times
// (Kommo retries), to be put within the next few steps, so that deliveries
// arrive late, duplicated and out of order, and are read while Kommo keeps
// changing. A delivery is lost (never put) at random, but only when a newer
// change of its contact exists: the newest change of each contact is always
// delivered at least once. Forged deliveries are mixed in: deletes of live
// contacts, made-up ids, adds of other tenants' contact ids, and jobs of the
// earlier format whose bodies claim data Kommo does not hold.
//
// The job's received_at is skewed by 60 to 120 s either way, as if each
// delivery came through a webhook server replica with its own clock: the
// worker orders nothing by it (a version is ordered by when it was read, on
// the database's clock), so the result must not depend on it.
type history struct {
	h       *harness
	rng     *rand.Rand
	tenants []*historyTenant
	pending []scheduled
	seq     int
	// counts, for the log
	changes, puts, lost, forged int
}

type historyTenant struct {
	ts     tenantSpec
	live   []int64       // contacts Kommo holds
	ever   []int64       // every contact ever created
	newest map[int64]int // contact → seq of its newest change
}

// scheduled is a job to put at step due: a delivery of a change (seq > 0)
// or a forged one (seq 0).
type scheduled struct {
	due    int
	t      *historyTenant
	ref    queue.ContactRef
	seq    int
	forged []byte // the whole body of a forged job
}

// maxLive bounds each tenant's live contacts.
const maxLive = 6

func newHistory(h *harness, seed uint64, tenants int, prefix string) *history {
	hs := &history{h: h, rng: rand.New(rand.NewPCG(seed, seed*7919+1))}
	for i := range tenants {
		ts := h.addTenant(tenant.Key{Namespace: prefix, Name: fmt.Sprintf("seed-%d-%d", seed, i)})
		hs.tenants = append(hs.tenants, &historyTenant{ts: ts, newest: map[int64]int{}})
	}
	return hs
}

// play makes steps changes per tenant, putting the deliveries as it goes,
// then puts every delivery still scheduled.
func (hs *history) play(steps int) {
	for step := range steps {
		for _, t := range hs.tenants {
			hs.change(step, t)
			if hs.rng.IntN(3) == 0 {
				hs.forge(step, t)
			}
		}
		hs.release(step)
		time.Sleep(time.Duration(hs.rng.IntN(25)) * time.Millisecond) // let the workers read in between
	}
	hs.release(math.MaxInt)
}

// change makes one change to one of t's contacts in Kommo and schedules
// its delivery.
func (hs *history) change(step int, t *historyTenant) {
	h := hs.h
	var id int64
	var action kommo.Action
	switch {
	case len(t.live) == 0 || (len(t.live) < maxLive && hs.rng.IntN(3) == 0):
		id, action = h.kommoCreate(t.ts, person("Random", hs.emails()...)).ID, kommo.ActionAdd
		t.live = append(t.live, id)
		t.ever = append(t.ever, id)
	case hs.rng.IntN(4) == 0:
		i := hs.rng.IntN(len(t.live))
		id, action = t.live[i], kommo.ActionDelete
		h.kommoDelete(t.ts, id)
		t.live = slices.Delete(t.live, i, i+1)
	default:
		id, action = t.live[hs.rng.IntN(len(t.live))], kommo.ActionUpdate
		c, err := h.kommo.Contact(t.ts.Subdomain, id)
		if err != nil {
			h.t.Fatal(err)
		}
		c.Name = fmt.Sprintf("Random %d", hs.seq)
		c.Emails = hs.emails()
		h.kommoUpdate(t.ts, c)
	}
	hs.changes++
	hs.seq++
	t.newest[id] = hs.seq
	copies := 1
	if hs.rng.IntN(3) == 0 {
		copies += 1 + hs.rng.IntN(2)
	}
	for range copies {
		hs.pending = append(hs.pending, scheduled{due: step + hs.rng.IntN(6), t: t, ref: ref(id, action), seq: hs.seq})
	}
}

// emails draws zero to three addresses.
func (hs *history) emails() []string {
	out := []string{}
	for range hs.rng.IntN(4) {
		out = append(out, addressPool[hs.rng.IntN(len(addressPool))])
	}
	return out
}

// forge schedules a forged job for t.
func (hs *history) forge(step int, t *historyTenant) {
	s := scheduled{due: step + hs.rng.IntN(6), t: t}
	switch n := hs.rng.IntN(5); {
	case n == 0 && len(t.live) > 0: // a delete of a live contact
		s.ref = ref(t.live[hs.rng.IntN(len(t.live))], kommo.ActionDelete)
	case n == 1: // a made-up id
		s.ref = ref(8_000_000_000+hs.rng.Int64N(1_000_000), kommo.ActionAdd)
	case n == 2: // an add naming another tenant's contact
		other := hs.tenants[hs.rng.IntN(len(hs.tenants))]
		if other == t || len(other.ever) == 0 {
			return
		}
		s.ref = ref(other.ever[hs.rng.IntN(len(other.ever))], kommo.ActionAdd)
	case len(t.ever) > 0: // the earlier format, its body claiming other data
		id := t.ever[hs.rng.IntN(len(t.ever))]
		ev := kommo.WebhookEvent{Action: kommo.ActionAdd, Contact: contact(id, math.MaxInt64, forgedAddress)}
		if n == 3 {
			ev = kommo.WebhookEvent{Action: kommo.ActionDelete, Contact: kommo.Contact{ID: id, Type: kommo.ContactTypeContact}}
		}
		s.forged = envelope(hs.h.t, t.ts.Key, payload(ev), hs.receivedAt())
	default:
		return
	}
	hs.forged++
	hs.pending = append(hs.pending, s)
}

// receivedAt is now on a clock 60 to 120 s off, either way.
func (hs *history) receivedAt() time.Time {
	skew := time.Duration(60+hs.rng.IntN(61)) * time.Second
	if hs.rng.IntN(2) == 0 {
		skew = -skew
	}
	return time.Now().Add(skew)
}

// release puts, in random order, the scheduled jobs due by step, one to
// three contacts of a tenant per job; a delivery is lost at random when
// its contact has changed since.
func (hs *history) release(step int) {
	var due []scheduled
	hs.pending = slices.DeleteFunc(hs.pending, func(s scheduled) bool {
		if s.due <= step {
			due = append(due, s)
			return true
		}
		return false
	})
	hs.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	for i := 0; i < len(due); {
		s := due[i]
		i++
		if s.forged != nil {
			hs.put(s.forged)
			continue
		}
		if s.seq > 0 && s.seq < s.t.newest[s.ref.ID] && hs.rng.IntN(4) == 0 {
			hs.lost++
			continue
		}
		refs := []queue.ContactRef{s.ref}
		for len(refs) < 3 && i < len(due) && due[i].t == s.t && due[i].forged == nil && hs.rng.IntN(2) == 0 {
			refs = append(refs, due[i].ref) // Kommo batches a few events per delivery
			i++
		}
		hs.put(contactsJob(hs.h.t, s.t.ts, hs.receivedAt(), refs...))
	}
}

func (hs *history) put(body []byte) {
	hs.h.put(body)
	hs.puts++
}

// check asserts that every tenant's list holds exactly what its Kommo
// account's contacts hold, that no forged address reached Unisender, and
// that nothing was buried or revived.
func (hs *history) check() {
	h := hs.h
	h.t.Helper()
	for _, t := range hs.tenants {
		if got, want := h.members(t.ts), h.kommoWant(t.ts); !reflect.DeepEqual(got, want) {
			h.t.Errorf("%s: list members %v, Kommo's contacts hold %v", t.ts.Key, got, want)
		}
		if _, ok := h.emu.Contact(t.ts.APIKey, forgedAddress); ok {
			h.t.Errorf("%s: a forged body's address reached Unisender", t.ts.Key)
		}
	}
	if n := h.emu.RevivalAttempts(); n != 0 {
		h.t.Errorf("%d revival attempts", n)
	}
	if letters := h.deadLetters(); len(letters) != 0 {
		h.t.Errorf("dead letters: %s", describe(letters))
	}
}

func (hs *history) logf() {
	hs.h.t.Logf("%d tenants: %d changes in Kommo, %d jobs put (%d forged), %d deliveries lost; %d Kommo requests, %d importContacts calls",
		len(hs.tenants), hs.changes, hs.puts, hs.forged, hs.lost, len(hs.h.kommo.RequestLog()), hs.h.emu.Stats().Calls["importContacts"])
}

// startTwoWorkers runs two workers (as two replicas) with small batches,
// so that a tenant's history spans many batches and both replicas.
func (h *harness) startTwoWorkers() {
	for range 2 {
		cfg := h.config()
		cfg.Concurrency, cfg.MaxEvents = 2, 12
		h.start(cfg)
	}
}

// Random histories, changed in Kommo while two workers process the
// deliveries — duplicated, shuffled, some lost, forged ones mixed in,
// received on clocks a minute or more apart — leave every list exactly as
// Kommo holds its contacts, with nothing buried.
func TestRandomHistoriesConvergeToKommoState(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	hs := newHistory(h, 42, 30, "prop")
	h.startTwoWorkers()
	hs.play(40)
	s := h.waitDrained(90 * time.Second)
	if s.Buried != 0 {
		t.Fatalf("%d jobs buried: %s", s.Buried, describe(h.deadLetters()))
	}
	hs.check()
	if hs.lost == 0 || hs.forged == 0 {
		t.Fatalf("lost %d, forged %d: the history did not test what it should", hs.lost, hs.forged)
	}
	hs.logf()
}

// When the delivery of a contact's last change is lost entirely — the
// change never reaches the worker — the list stays behind until the next
// resync, whose listing and deletion sweep bring it to Kommo's state.
func TestLostLastDeliveriesConvergeAfterResyncWithSweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	hs := newHistory(h, 7, 8, "lost")
	h.startTwoWorkers()
	hs.play(20)
	h.waitDrained(60 * time.Second)
	hs.check()
	if t.Failed() {
		t.FailNow()
	}

	// Changes whose deliveries are all lost: an add, an edit to an address
	// nobody had, a delete.
	from := time.Now().Unix() - 1
	for i, ht := range hs.tenants {
		if len(ht.live) >= 2 {
			h.kommoDelete(ht.ts, ht.live[0])
			ht.live = ht.live[1:]
		}
		if len(ht.live) >= 1 {
			c, err := h.kommo.Contact(ht.ts.Subdomain, ht.live[0])
			if err != nil {
				t.Fatal(err)
			}
			c.Emails = []string{fmt.Sprintf("edited-%d@example.com", i)}
			h.kommoUpdate(ht.ts, c)
		}
		ht.live = append(ht.live, h.kommoAdd(ht.ts, fmt.Sprintf("added-%d@example.com", i)).ID)
	}
	time.Sleep(500 * time.Millisecond)
	for _, ht := range hs.tenants {
		if got, want := h.members(ht.ts), h.kommoWant(ht.ts); reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the list %v already matches Kommo: the lost changes tested nothing", ht.ts.Key, got)
		}
	}

	im := &importer.Importer{Store: h.st}
	for _, ht := range hs.tenants {
		ts := ht.ts
		p, err := im.Run(context.Background(), importer.Job{
			Tenant: ts.Key, RunID: "resync-after-loss", Kind: importer.KindResync, From: from, Sweep: true,
			Mapper: ts.mapper(), DeletionPolicy: ts.policy(),
			Kommo:     kommo.NewClient(ts.KommoURL, kommo.WithTokenSource(kommo.StaticToken(ts.KommoToken)), kommo.WithRateLimit(0, 1)),
			Unisender: h.resolver.clients[ts.Key],
		}, nil)
		if err != nil || !p.Done {
			t.Fatalf("%s: resync = %+v, %v", ts.Key, p, err)
		}
	}
	s := h.waitDrained(30 * time.Second)
	if s.Buried != 0 {
		t.Fatalf("%d jobs buried: %s", s.Buried, describe(h.deadLetters()))
	}
	hs.check()
	hs.logf()
}
