package kommo

import (
	"cmp"
	"fmt"
	"slices"
)

// payload checks the drafts as wholes and builds the events, ordered by
// action then index, each contact's fields, values and tags by index. The
// payload's strings are cut from one copy of the arena and its slices from
// one backing array per type, so the payload costs a handful of allocations
// whatever its size, and shares no memory with the parser or the body.
func (p *bodyParser) payload() (*WebhookPayload, error) {
	if p.accountSeen&seenID == 0 {
		return nil, malformed("account[id]", "missing: the body does not say which account it comes from")
	}
	strs := string(p.arena)
	out := &WebhookPayload{AccountID: p.accountID, Subdomain: p.subdomain.in(strs)}
	leads, err := p.leadEvents()
	if err != nil {
		return nil, err
	}
	out.Leads = leads
	if len(p.contacts) == 0 {
		return out, nil
	}
	contacts := p.sortKind(kindContact)
	p.groupChildren()
	b := backing{strs: strs}
	if len(p.fields) > 0 {
		b.fields = make([]CustomField, 0, len(p.fields))
	}
	if len(p.values) > 0 {
		b.values = make([]FieldValue, 0, len(p.values))
	}
	if len(p.tags) > 0 {
		b.tags = make([]string, 0, len(p.tags))
	}
	out.Events = make([]WebhookEvent, 0, len(contacts))
	for _, pos := range contacts {
		ev, err := p.event(pos, &b)
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, ev)
	}
	return out, nil
}

// sortKind returns the positions of the drafts of kind sorted by slot:
// parent, then index. Slots are unique within a kind, so the order is total.
func (p *bodyParser) sortKind(kind int) []int32 {
	slots := p.table.slots[kind]
	order := p.order[kind][:0]
	for pos := range slots {
		order = append(order, int32(pos))
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(slots[a].parent, slots[b].parent), cmp.Compare(slots[a].index, slots[b].index))
	})
	p.order[kind] = order
	return order
}

// groupChildren sorts fields, values and tags and gives each parent the run
// of its children in that order.
func (p *bodyParser) groupChildren() {
	for i, pos := range p.sortKind(kindField) {
		p.contacts[p.table.slots[kindField][pos].parent].fields.extend(int32(i))
	}
	for i, pos := range p.sortKind(kindValue) {
		p.fields[p.table.slots[kindValue][pos].parent].values.extend(int32(i))
	}
	for i, pos := range p.sortKind(kindTag) {
		p.contacts[p.table.slots[kindTag][pos].parent].tags.extend(int32(i))
	}
}

// backing is the storage the payload's strings and slices are cut from.
// Each slice has room for every draft, so appends never move it.
type backing struct {
	strs   string
	fields []CustomField
	values []FieldValue
	tags   []string
}

// cut returns s[from:] with no spare capacity (an append by the payload's
// user must not overwrite the next contact's items), or nil when empty.
func cut[T any](s []T, from int) []T {
	if len(s) == from {
		return nil
	}
	return s[from:len(s):len(s)]
}

func (p *bodyParser) event(pos int32, b *backing) (WebhookEvent, error) {
	d := &p.contacts[pos]
	at := p.table.slots[kindContact][pos]
	action := actionsByRank[at.parent]
	if d.seen&seenID == 0 {
		return WebhookEvent{}, malformed(contactKey(at), "missing id")
	}
	if d.seen&seenAccountID != 0 && d.accountID != p.accountID {
		return WebhookEvent{}, malformed(contactKey(at)+"[account_id]",
			"contact of account %d in a body from account[id] %d", d.accountID, p.accountID)
	}
	c := Contact{
		ID:                d.id,
		Type:              cmp.Or(d.typ, ContactTypeContact),
		Name:              d.name.in(b.strs),
		FirstName:         d.firstName.in(b.strs),
		LastName:          d.lastName.in(b.strs),
		ResponsibleUserID: d.responsibleUserID,
		AccountID:         p.accountID,
		// created_at/updated_at are the current names; date_create and
		// last_modified the legacy ones Kommo still sends alongside.
		CreatedAt: pick(d.seen, seenCreatedAt, d.createdAt, d.dateCreate),
		UpdatedAt: pick(d.seen, seenUpdatedAt, d.updatedAt, d.lastModified),
	}
	var err error
	if c.CustomFields, err = p.customFields(d, at, b); err != nil {
		return WebhookEvent{}, err
	}
	c.Tags = p.tagNames(d, b)
	if action == ActionDelete {
		// A delete names the contact and nothing more; anything else Kommo
		// might add describes a contact that no longer exists.
		c = Contact{ID: c.ID, Type: c.Type, AccountID: c.AccountID}
	} else {
		c.DeriveContactPoints()
	}
	return WebhookEvent{Action: action, Contact: c}, nil
}

// pick returns current if its key was given, else legacy (0 if not given).
func pick(seen, currentBit uint16, current, legacy int64) int64 {
	if seen&currentBit != 0 {
		return current
	}
	return legacy
}

// contactKey names a contact in errors found once the body is read.
func contactKey(at draftSlot) string {
	return fmt.Sprintf("contacts[%s][%d]", actionsByRank[at.parent], at.index)
}

func (p *bodyParser) customFields(d *contactDraft, at draftSlot, b *backing) ([]CustomField, error) {
	start := len(b.fields)
	for _, pos := range p.order[kindField][d.fields.start:d.fields.end] {
		fd := &p.fields[pos]
		if fd.seen&seenID == 0 {
			j := p.table.slots[kindField][pos].index
			return nil, malformed(fmt.Sprintf("%s[custom_fields][%d]", contactKey(at), j), "missing id")
		}
		from := len(b.values)
		for _, v := range p.order[kindValue][fd.values.start:fd.values.end] {
			b.values = append(b.values, FieldValue{Value: p.values[v].value.in(b.strs), EnumID: p.values[v].enum})
		}
		b.fields = append(b.fields, CustomField{
			ID:     fd.id,
			Name:   fd.name.in(b.strs),
			Code:   fd.code.in(b.strs),
			Values: cut(b.values, from),
		})
	}
	return cut(b.fields, start), nil
}

// tagNames lists the non-empty tag names in index order.
func (p *bodyParser) tagNames(d *contactDraft, b *backing) []string {
	start := len(b.tags)
	for _, pos := range p.order[kindTag][d.tags.start:d.tags.end] {
		if name := p.tags[pos].name.in(b.strs); name != "" {
			b.tags = append(b.tags, name)
		}
	}
	return cut(b.tags, start)
}
