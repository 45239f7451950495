package segment

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// Source reads contacts and leads from Kommo; *kommo.Client is one.
type Source interface {
	ListContacts(ctx context.Context, opts kommo.ListContactsOptions, fn func(page []kommo.Contact) error) error
	GetContact(ctx context.Context, id int64) (*kommo.Contact, error)
	ListLeads(ctx context.Context, ids []int64, fn func(page []kommo.Lead) error) error
	// Account reads the account the token belongs to (the importer checks
	// it against the one on record before it syncs or removes anything).
	Account(ctx context.Context) (*kommo.Account, error)
}

// Reader reads contacts with their leads' stages (Contact.Leads), for a
// segment on leads: each page of contacts is listed with its lead ids and
// followed by one listing of those leads per kommo.MaxPageLimit. Kommo's
// with=leads gives only the ids; the stage is the lead's own.
type Reader struct{ Source }

// ReaderFor returns what reads contacts for the segment: src itself when
// the segment does not look at leads.
func ReaderFor(s *Segment, src Source) Source {
	if !s.UsesLeads() {
		return src
	}
	return Reader{src}
}

// ListContacts lists the contacts with their leads.
func (r Reader) ListContacts(ctx context.Context, opts kommo.ListContactsOptions, fn func(page []kommo.Contact) error) error {
	opts.WithLeads = true
	return r.Source.ListContacts(ctx, opts, func(page []kommo.Contact) error {
		if err := r.attachLeads(ctx, page); err != nil {
			return err
		}
		return fn(page)
	})
}

// GetContact reads one contact with its leads; Kommo's "no such contact"
// comes from the plain read.
func (r Reader) GetContact(ctx context.Context, id int64) (*kommo.Contact, error) {
	var found *kommo.Contact
	err := r.ListContacts(ctx, kommo.ListContactsOptions{IDs: []int64{id}, Limit: 1}, func(page []kommo.Contact) error {
		for i := range page {
			if page[i].ID == id {
				found = &page[i]
				return errFound
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return found, nil
	case err != nil:
		return nil, err
	}
	return r.Source.GetContact(ctx, id)
}

var errFound = errors.New("contact found")

// attachLeads reads the leads the page's contacts name and sets each
// contact's Leads. A lead Kommo no longer lists (deleted) is left out.
func (r Reader) attachLeads(ctx context.Context, page []kommo.Contact) error {
	var ids []int64
	for _, c := range page {
		ids = append(ids, c.LeadIDs...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	byID := make(map[int64]kommo.Lead, len(ids))
	for chunk := range slices.Chunk(ids, kommo.MaxPageLimit) {
		err := r.ListLeads(ctx, chunk, func(leads []kommo.Lead) error {
			for _, l := range leads {
				byID[l.ID] = l
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("kommo: reading %d leads: %w", len(chunk), err)
		}
	}
	for i := range page {
		page[i].Leads = page[i].Leads[:0]
		for _, id := range page[i].LeadIDs {
			if l, ok := byID[id]; ok {
				page[i].Leads = append(page[i].Leads, l)
			}
		}
	}
	return nil
}
