package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// randomEvent draws a version over a small universe of ids, read times and
// addresses, so that batches hit stale, same-content (touched), tied,
// deleted, restored and shared cases often. Kommo's updated_at is drawn
// independently of the read time: it must order nothing.
func randomEvent(r *rand.Rand, id int64) ContactState {
	c := ContactState{ID: id, ReadAt: 100 + r.Int64N(6), UpdatedAt: r.Int64N(1000)}
	if r.IntN(6) == 0 {
		c.Deleted = true
		c.UpdatedAt = 0
		return c
	}
	for range r.IntN(3) {
		c.Emails = append(c.Emails, fmt.Sprintf("Shared%d@Example.com", r.IntN(8)))
	}
	c.Name = fmt.Sprintf("name-%d", r.IntN(3))
	if r.IntN(3) == 0 {
		c.Tags = []string{"vip"}
	}
	if r.IntN(4) == 0 {
		c.Fields = map[string]string{"Position": "boss"}
	}
	return c
}

func orphanSet(results []ApplyResult) []string {
	var out []string
	for _, r := range results {
		out = append(out, r.OrphanedEmails...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestApplyContactsMatchesApplyContact applies the same random batches to
// two tenants, one contact at a time and in batches, and compares every
// result and the stored state.
func TestApplyContactsMatchesApplyContact(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 11))
	const seq, bulk = "shop/sequential", "shop/batched"
	for round := range 40 {
		n := 1 + r.IntN(12)
		perm := r.Perm(15)[:n] // distinct ids
		batch := make([]ContactState, n)
		for i := range batch {
			batch[i] = randomEvent(r, int64(perm[i]+1))
		}
		var want []ApplyResult
		err := s.InTx(ctx, func(tx *Tx) error {
			var err error
			want, err = tx.applyOneByOne(ctx, seq, batch)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []ApplyResult
		if err := s.InTx(ctx, func(tx *Tx) error {
			var err error
			got, err = tx.ApplyContacts(ctx, bulk, batch)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			w, g := want[i], got[i]
			if w.Applied != g.Applied || !slices.Equal(w.AddedEmails, g.AddedEmails) || !slices.Equal(w.RemovedEmails, g.RemovedEmails) ||
				!slices.Equal(w.NewEmails, g.NewEmails) || (w.Previous == nil) != (g.Previous == nil) {
				t.Fatalf("round %d, event %+v: one by one %+v, batched %+v", round, batch[i], w, g)
			}
		}
		if w, g := orphanSet(want), orphanSet(got); !slices.Equal(w, g) {
			t.Fatalf("round %d: orphaned one by one %v, batched %v (batch %+v)", round, w, g, batch)
		}
		for id := int64(1); id <= 15; id++ {
			w, werr := s.GetContact(ctx, seq, id)
			g, gerr := s.GetContact(ctx, bulk, id)
			if !errors.Is(werr, gerr) && (werr != nil || gerr != nil) {
				t.Fatalf("round %d contact %d: %v vs %v", round, id, werr, gerr)
			}
			if diff := cmp.Diff(w, g, ignoreSyncedAt); diff != "" {
				t.Fatalf("round %d contact %d differs (-one by one +batched):\n%s", round, id, diff)
			}
		}
	}
}

func TestApplyContactsKeepsAnAddressTakenUpLaterInTheBatch(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for pass, batched := range []bool{true, false} {
		at := int64(1000 * (pass + 1))
		apply(t, s, "shop/main", ContactState{ID: 1, ReadAt: at, Emails: []string{"moved@example.com"}})
		apply(t, s, "shop/main", ContactState{ID: 2, ReadAt: at, Deleted: true})
		batch := []ContactState{
			{ID: 1, ReadAt: at + 1, Emails: []string{"other@example.com"}},
			{ID: 2, ReadAt: at + 1, Emails: []string{"moved@example.com"}},
		}
		if !batched { // a repeated id takes the one-by-one path
			batch = append(batch, ContactState{ID: 2, ReadAt: at + 2, Emails: []string{"moved@example.com"}})
		}
		var res []ApplyResult
		if err := s.InTx(ctx, func(tx *Tx) error {
			var err error
			res, err = tx.ApplyContacts(ctx, "shop/main", batch)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if !res[0].Applied || !slices.Equal(res[0].RemovedEmails, []string{"moved@example.com"}) || !res[1].Applied {
			t.Fatalf("batched=%v: results %+v, want both applied and the address removed from contact 1", batched, res)
		}
		if o := orphanSet(res); len(o) != 0 {
			t.Fatalf("batched=%v: orphaned %v, want none: contact 2 took the address up", batched, o)
		}
	}
}
