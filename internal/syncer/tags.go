package syncer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// TagReader reads an address's tags in Unisender (getContact with
// include_details); *unisender.Client is one.
type TagReader interface {
	GetContact(ctx context.Context, email string, opts unisender.GetContactOptions) (*unisender.Contact, error)
}

// Tags removed in Kommo leave Unisender, but only the tags this binding
// manages: importContacts either adds tags (overwrite_tags=0) or replaces
// the whole set (1), so the addresses of a contact that dropped tags are
// read first and sent with their Unisender tags minus the dropped ones plus
// Kommo's, replacing the set. Tags set by others in Unisender stay.

// noteDroppedTags records, for a contact whose new version has fewer of
// the tags the binding synced before, which tags it dropped.
func (p *plan) noteDroppedTags(m *mapping.Mapper, prev *store.ContactState, now store.ContactState) {
	if !m.TagsEnabled() || prev == nil || prev.Deleted {
		return
	}
	var dropped []string
	for _, tag := range prev.Tags {
		if !slices.Contains(now.Tags, tag) {
			dropped = append(dropped, tag)
		}
	}
	if len(dropped) > 0 {
		p.dropped[now.ID] = dropped
	}
}

// retagBatch is the rows of the contacts that dropped tags, each address
// with its Unisender tags minus the dropped ones, plus Kommo's: a batch
// sent with overwrite_tags=1.
func retagBatch(ctx context.Context, t Tenant, p *plan) (mapping.Batch, []rowOwner, error) {
	b := mapping.Batch{FieldNames: t.Mapper.UpsertColumns()}
	var owners []rowOwner
	for _, id := range slices.Sorted(maps.Keys(p.dropped)) {
		profile := p.upserts[id]
		for _, email := range profile.Emails {
			current, err := unisenderTags(ctx, t.Tags, email)
			if err != nil {
				return mapping.Batch{}, nil, err
			}
			one := profile
			one.Emails = []string{email}
			one.Tags = mergeTags(current, p.dropped[id], profile.Tags)
			b.Rows = append(b.Rows, t.Mapper.UpsertRows(one)...)
			owners = append(owners, rowOwner{contact: id, email: email})
		}
	}
	return b, owners, nil
}

func unisenderTags(ctx context.Context, r TagReader, email string) ([]string, error) {
	c, err := r.GetContact(ctx, email, unisender.GetContactOptions{IncludeDetails: true})
	switch {
	case errors.Is(err, unisender.ErrContactNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("unisender getContact (reading the tags to replace): %w", err)
	}
	return c.Tags, nil
}

// mergeTags is current without dropped, with kept added: sorted, unique,
// Kommo's tags first when Unisender's limit cuts.
func mergeTags(current, dropped, kept []string) []string {
	out := slices.Clone(kept)
	for _, tag := range current {
		if !slices.Contains(dropped, tag) && !slices.Contains(out, tag) {
			out = append(out, tag)
		}
	}
	out = out[:min(len(out), mapping.MaxTags)]
	slices.Sort(out)
	return out
}
