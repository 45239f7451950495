package kommo

// Drafts gather the keys of one item (contact, custom field, field value,
// tag) before it is checked as a whole (id present, account consistent, …)
// and turned into the payload. They live in flat slices of the parser, one
// per kind, reused from body to body; the slotTable finds them by
// (kind, parent, index).

// span is a kept string while the body is parsed: bytes [off, end) of the
// parser's arena, which becomes one string when the payload is built.
type span struct{ off, end int }

func (s span) in(strs string) string { return strs[s.off:s.end] }

// run is a range [start, end) of a sorted order (see bodyParser.sortKind):
// the children of one draft, in index order. end 0 means none.
type run struct{ start, end int32 }

func (r *run) extend(i int32) {
	if r.end == 0 {
		r.start = i
	}
	r.end = i + 1
}

// Bits of contactDraft.seen, fieldDraft.seen, valueDraft.seen and
// tagDraft.seen: which keys were given, so a repeat is refused.
const (
	seenID = 1 << iota
	seenName
	seenFirstName
	seenLastName
	seenType
	seenResponsible
	seenAccountID
	seenCreatedAt
	seenDateCreate
	seenUpdatedAt
	seenLastModified
	seenCode
	seenBare  // values[k]=x
	seenValue // values[k][value]=x
	seenEnum
)

// contactDraft is contacts[action][index]; its slot's parent is the action's
// rank.
type contactDraft struct {
	seen                    uint16
	id, responsibleUserID   int64
	accountID               int64
	createdAt, dateCreate   int64
	updatedAt, lastModified int64
	name, firstName         span
	lastName                span
	typ                     ContactType
	maxField, maxTag        int32 // highest child index so far, -1 for none
	fields, tags            run
}

// fieldDraft is custom_fields[j] of the contact at position parent.
type fieldDraft struct {
	seen       uint16
	id         int64
	name, code span
	maxValue   int32
	values     run
}

// valueDraft is values[k] of the field at position parent. The bare form
// values[k]=x (dates and the like) and values[k][value]=x share value; the
// seen bits refuse a body that gives both.
type valueDraft struct {
	seen  uint16
	value span
	enum  int64
}

// tagDraft is tags[i] of the contact at position parent.
type tagDraft struct {
	seen uint16
	name span
}

// Kinds of drafts, the first field of a slot's key.
const (
	kindContact = iota
	kindField
	kindValue
	kindTag
	numKinds
)

// draftSlot is where a draft sits in the body: its index under its parent.
type draftSlot struct{ parent, index int32 }

type slotKey struct {
	kind int8
	draftSlot
}

// linearSlots is how many drafts of a kind are searched one by one before
// the table builds its map: a typical body never gets there.
const linearSlots = 8

// slotTable finds drafts by slot without a map in the common case. Kommo
// sends each item's keys together and children in increasing index order,
// so most lookups are either the draft of the previous key (last) or a new
// child above every index its parent has (the caller's max): both O(1).
// Anything else searches: linearly while there are few drafts of the kind,
// then through a map built once, so a hostile order costs O(1) per key too.
type slotTable struct {
	slots [numKinds][]draftSlot // slots[kind][pos] is the slot of draft pos of that kind
	last  [numKinds]int32       // the draft of that kind used last, -1 for none
	byKey map[slotKey]int32
}

func (t *slotTable) reset() {
	for k := range t.slots {
		t.slots[k] = t.slots[k][:0]
		t.last[k] = -1
	}
	t.byKey = nil
}

// find returns the position of the draft of kind at s, or false if there is
// none yet. maxIndex is the highest child index the parent has seen; an
// index above it is new without a search.
func (t *slotTable) find(kind int, s draftSlot, maxIndex int32) (int32, bool) {
	if l := t.last[kind]; l >= 0 && t.slots[kind][l] == s {
		return l, true
	}
	if s.index > maxIndex {
		return 0, false
	}
	pos, ok := t.search(kind, s)
	if ok {
		t.last[kind] = pos
	}
	return pos, ok
}

func (t *slotTable) search(kind int, s draftSlot) (int32, bool) {
	if t.byKey == nil {
		slots := t.slots[kind]
		if len(slots) <= linearSlots {
			for pos, at := range slots {
				if at == s {
					return int32(pos), true
				}
			}
			return 0, false
		}
		t.index()
	}
	pos, ok := t.byKey[slotKey{int8(kind), s}]
	return pos, ok
}

// index builds the map of every draft, kept up to date by add from then on.
func (t *slotTable) index() {
	n := 0
	for _, slots := range t.slots {
		n += len(slots)
	}
	t.byKey = make(map[slotKey]int32, 2*n)
	for kind, slots := range t.slots {
		for pos, s := range slots {
			t.byKey[slotKey{int8(kind), s}] = int32(pos)
		}
	}
}

// add records a new draft of kind at s and returns its position; the caller
// appends the draft itself at that position.
func (t *slotTable) add(kind int, s draftSlot) int32 {
	pos := int32(len(t.slots[kind]))
	t.slots[kind] = append(t.slots[kind], s)
	if t.byKey != nil {
		t.byKey[slotKey{int8(kind), s}] = pos
	}
	t.last[kind] = pos
	return pos
}
