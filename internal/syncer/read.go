package syncer

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
)

// ContactReader reads contacts from Kommo (a kommo.Client, paced by the
// account's shared request budget).
type ContactReader interface {
	ListContacts(ctx context.Context, opts kommo.ListContactsOptions, fn func(page []kommo.Contact) error) error
	GetContact(ctx context.Context, id int64) (*kommo.Contact, error)
}

// MaxReadIDs is how many contacts one read names: Kommo's page limit, so
// that a read is one request.
const MaxReadIDs = kommo.MaxPageLimit

// Clock is the database's clock (store.Store.Now) that stamps reads.
type Clock interface {
	Now(ctx context.Context) (int64, error)
}

// ReadContacts reads the current state of the contacts ids from Kommo, a
// filter[id][] listing per MaxReadIDs ids, each stamped with the database's
// clock taken just before it was sent.
//
// An id the listing leaves out is gone only when Kommo says so: each id for
// which confirm is true (the worker's rule: a contact the store holds as
// live, or any while an import or resync lists the tenant) is read alone,
// and only Kommo's "no such contact" makes it a tombstone; any other answer
// fails the read. Any other id the listing leaves out is skipped: there is
// nothing of it to remove, and confirming it would let a forged webhook
// naming made-up ids spend the account's budget.
func ReadContacts(ctx context.Context, clock Clock, r ContactReader, ids []int64, confirm func(int64) bool) ([]Current, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	out := make([]Current, 0, len(ids))
	for chunk := range slices.Chunk(ids, MaxReadIDs) {
		read, err := readChunk(ctx, clock, r, chunk, confirm)
		if err != nil {
			return nil, err
		}
		out = append(out, read...)
	}
	return out, nil
}

func readChunk(ctx context.Context, clock Clock, r ContactReader, ids []int64, confirm func(int64) bool) ([]Current, error) {
	readAt, err := clock.Now(ctx)
	if err != nil {
		return nil, err
	}
	listed := make(map[int64]*kommo.Contact, len(ids))
	err = r.ListContacts(ctx, kommo.ListContactsOptions{IDs: ids, Limit: MaxReadIDs}, func(page []kommo.Contact) error {
		for i := range page {
			if slices.Contains(ids, page[i].ID) { // never trust an answer naming other contacts
				listed[page[i].ID] = &page[i]
			}
		}
		if len(listed) == len(ids) {
			return errAllListed // a full page has a next link: do not spend a request on it
		}
		return nil
	})
	if err != nil && !errors.Is(err, errAllListed) {
		return nil, fmt.Errorf("kommo: reading %d contacts: %w", len(ids), err)
	}
	out := make([]Current, 0, len(ids))
	for _, id := range ids {
		if c, ok := listed[id]; ok {
			out = append(out, Current{ID: id, Contact: c, ReadAt: readAt})
			continue
		}
		if !confirm(id) {
			continue
		}
		gone, err := confirmGone(ctx, clock, r, id)
		if err != nil {
			return nil, err
		}
		out = append(out, gone)
	}
	return out, nil
}

// errAllListed ends a listing that returned every id it was asked for.
var errAllListed = errors.New("every contact listed")

// confirmGone reads one contact the listing left out: Kommo's "no such
// contact" makes it a tombstone; a contact returned after all is its state.
func confirmGone(ctx context.Context, clock Clock, r ContactReader, id int64) (Current, error) {
	readAt, err := clock.Now(ctx)
	if err != nil {
		return Current{}, err
	}
	c, err := r.GetContact(ctx, id)
	switch {
	case errors.Is(err, kommo.ErrNotFound):
		return Current{ID: id, ReadAt: readAt}, nil
	case err != nil:
		return Current{}, fmt.Errorf("kommo: reading contact %d: %w", id, err)
	case c.ID != id:
		return Current{}, fmt.Errorf("kommo: reading contact %d returned contact %d", id, c.ID)
	}
	return Current{ID: id, Contact: c, ReadAt: readAt}, nil
}

var _ Clock = (*store.Store)(nil)
