package kommoemu

import (
	"cmp"
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// contactViews caches the account's contacts sorted by each order, so that
// paging through a large seeded account sorts once, not once per page.
type contactViews struct {
	version uint64
	cache   map[contactOrder]sortedView
}

type sortedView struct {
	version uint64
	list    []*kommo.Contact
}

// contactOrder is a sort key: field is id, updated_at or created_at.
type contactOrder struct {
	field string
	desc  bool
}

func (v *contactViews) changed() { v.version++ }

// sorted returns the people of the account in order (ties by id); the
// caller holds s.mu and must not keep the slice past it.
func (a *account) sorted(o contactOrder) []*kommo.Contact {
	if v, ok := a.views.cache[o]; ok && v.version == a.views.version {
		return v.list
	}
	list := make([]*kommo.Contact, 0, len(a.contacts))
	for _, c := range a.contacts {
		list = append(list, c)
	}
	slices.SortFunc(list, func(x, y *kommo.Contact) int {
		r := cmp.Compare(sortKey(x, o.field), sortKey(y, o.field))
		if r == 0 {
			r = cmp.Compare(x.ID, y.ID)
		}
		if o.desc {
			return -r
		}
		return r
	})
	if a.views.cache == nil {
		a.views.cache = map[contactOrder]sortedView{}
	}
	a.views.cache[o] = sortedView{version: a.views.version, list: list}
	return list
}

func sortKey(c *kommo.Contact, field string) int64 {
	switch field {
	case "updated_at":
		return c.UpdatedAt
	case "created_at":
		return c.CreatedAt
	}
	return c.ID
}

// contactFilter is the filter part of a listing query.
type contactFilter struct {
	updatedFrom, updatedTo int64 // inclusive; 0 = open
	ids                    map[int64]bool
	query                  string // lower-cased substring of name, e-mail or phone
}

func (f contactFilter) match(c *kommo.Contact) bool {
	if f.updatedFrom > 0 && c.UpdatedAt < f.updatedFrom {
		return false
	}
	if f.updatedTo > 0 && c.UpdatedAt > f.updatedTo {
		return false
	}
	if f.ids != nil && !f.ids[c.ID] {
		return false
	}
	if f.query != "" {
		hay := strings.ToLower(strings.Join(append(append([]string{c.Name}, c.Emails...), c.Phones...), "\x00"))
		return strings.Contains(hay, f.query)
	}
	return true
}

// page returns the page-th page (from 1) of limit matching contacts and
// whether more match after it.
func page(list []*kommo.Contact, f contactFilter, pageNo, limit int) (items []*kommo.Contact, more bool) {
	skip := (pageNo - 1) * limit
	for _, c := range list {
		if !f.match(c) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		if len(items) == limit {
			return items, true
		}
		items = append(items, c)
	}
	return items, false
}
