package kommo

import (
	"math"
	"strconv"
	"sync"
)

// bodyParser is the state of one ParseWebhookBody call. It is pooled: its
// buffers and draft slices serve body after body, so a typical body
// allocates only what the payload keeps.
type bodyParser struct {
	form  formScanner
	num   []byte // the current value decoded, when it is a number
	arena []byte // the kept strings, decoded one after another

	accountID   int64
	accountSeen uint16 // seenID: account[id]; seenName: account[subdomain]
	subdomain   span
	maxContact  [len(actionsByRank)]int32 // highest contact index per action

	table    slotTable
	contacts []contactDraft // parallel to table.slots[kindContact], and so on
	fields   []fieldDraft
	values   []valueDraft
	tags     []tagDraft
	order    [numKinds][]int32 // drafts sorted by slot, see sortKind

	leads     []leadDraft
	leadIndex map[leadSlot]int // leads[action][index] → position in leads
}

var bodyParsers = sync.Pool{New: func() any { return new(bodyParser) }}

// A parser that grew past these (a hostile or huge body) is left to the
// garbage collector rather than pooled.
const (
	maxPooledBytes  = 128 << 10
	maxPooledDrafts = 4096
)

func (p *bodyParser) reset(body []byte) {
	p.form.start(body)
	p.arena = p.arena[:0]
	p.accountID, p.accountSeen, p.subdomain = 0, 0, span{}
	for i := range p.maxContact {
		p.maxContact[i] = -1
	}
	p.table.reset()
	p.contacts, p.fields, p.values, p.tags = p.contacts[:0], p.fields[:0], p.values[:0], p.tags[:0]
	p.leads = p.leads[:0]
	clear(p.leadIndex)
}

func (p *bodyParser) release() {
	p.form.body = nil // do not hold on to the caller's body
	drafts := len(p.contacts) + len(p.fields) + len(p.values) + len(p.tags) + len(p.leads)
	if drafts > maxPooledDrafts || cap(p.arena)+cap(p.form.buf)+cap(p.num) > maxPooledBytes {
		return
	}
	bodyParsers.Put(p)
}

// scan reads every pair of the body into drafts.
func (p *bodyParser) scan(body []byte) error {
	p.reset(body)
	for {
		more, err := p.form.next()
		if err != nil || !more {
			return err
		}
		if !isOurRoot(p.form.key()) {
			continue
		}
		if err := p.form.split(); err != nil {
			return err
		}
		if err := p.take(); err != nil {
			return err
		}
	}
}

// take routes one key to the account, the contact or the lead it belongs to.
func (p *bodyParser) take() error {
	switch string(p.seg(0)) {
	case "account":
		return p.takeAccount()
	case "leads":
		return p.takeLead()
	}
	return p.takeContact()
}

func (p *bodyParser) takeAccount() error {
	if p.depth() < 2 {
		return p.fail("want account[field]")
	}
	switch string(p.seg(1)) {
	case "id":
		if err := p.single(2, &p.accountSeen, seenID); err != nil {
			return err
		}
		var err error
		p.accountID, err = p.positiveInt()
		return err
	case "subdomain":
		if err := p.single(2, &p.accountSeen, seenName); err != nil {
			return err
		}
		p.subdomain = p.keep()
	}
	// account[_links][self] is derived from the subdomain; other keys are
	// not needed by the sync.
	return nil
}

func (p *bodyParser) takeContact() error {
	if p.depth() < 2 {
		return p.fail("want contacts[action][index][field]")
	}
	rank, known := actionRankOf(p.seg(1))
	if !known {
		return nil // restore, note, …: not subscribed to, not an error
	}
	if p.depth() < 4 {
		return p.fail("want contacts[%s][index][field]", actionsByRank[rank])
	}
	index, err := p.parseIndex(p.seg(2))
	if err != nil {
		return err
	}
	c, err := p.contact(draftSlot{rank, index})
	if err != nil {
		return err
	}
	switch string(p.seg(3)) {
	case "custom_fields":
		return p.takeField(c)
	case "tags":
		return p.takeTag(c)
	}
	bit := contactScalar(p.seg(3))
	if bit == 0 {
		return nil // group_id, created_user_id, linked_leads_id[…], …: not needed
	}
	d := &p.contacts[c]
	if err := p.single(4, &d.seen, bit); err != nil {
		return err
	}
	return p.setScalar(d, bit)
}

func actionRankOf(seg []byte) (int32, bool) {
	switch string(seg) {
	case "add":
		return 0, true
	case "update":
		return 1, true
	case "delete":
		return 2, true
	}
	return 0, false
}

// contactScalar returns the seen bit of a contact's single-valued key, 0 for
// a key the sync does not read.
func contactScalar(field []byte) uint16 {
	switch string(field) {
	case "id":
		return seenID
	case "name":
		return seenName
	case "first_name":
		return seenFirstName
	case "last_name":
		return seenLastName
	case "type":
		return seenType
	case "responsible_user_id":
		return seenResponsible
	case "account_id":
		return seenAccountID
	case "created_at":
		return seenCreatedAt
	case "date_create":
		return seenDateCreate
	case "updated_at":
		return seenUpdatedAt
	case "last_modified":
		return seenLastModified
	}
	return 0
}

func (p *bodyParser) setScalar(d *contactDraft, bit uint16) error {
	var err error
	switch bit {
	case seenName:
		d.name = p.keep()
	case seenFirstName:
		d.firstName = p.keep()
	case seenLastName:
		d.lastName = p.keep()
	case seenType:
		d.typ, err = p.contactType(p.decoded())
	case seenID:
		d.id, err = p.positiveInt()
	case seenResponsible:
		d.responsibleUserID, err = p.nonNegativeInt()
	case seenAccountID:
		d.accountID, err = p.positiveInt()
	case seenCreatedAt:
		d.createdAt, err = p.timestamp()
	case seenDateCreate:
		d.dateCreate, err = p.timestamp()
	case seenUpdatedAt:
		d.updatedAt, err = p.timestamp()
	case seenLastModified:
		d.lastModified, err = p.timestamp()
	}
	return err
}

// takeField stores custom_fields[j][id|name|code] and passes
// custom_fields[j][values][…] on to takeValue.
func (p *bodyParser) takeField(c int32) error {
	if p.depth() < 6 {
		return p.fail("want custom_fields[index][attribute]")
	}
	j, err := p.parseIndex(p.seg(4))
	if err != nil {
		return err
	}
	f := p.field(c, j)
	fd := &p.fields[f]
	switch string(p.seg(5)) {
	case "id":
		if err := p.single(6, &fd.seen, seenID); err != nil {
			return err
		}
		fd.id, err = p.positiveInt()
		return err
	case "name":
		if err := p.single(6, &fd.seen, seenName); err != nil {
			return err
		}
		fd.name = p.keep()
	case "code":
		if err := p.single(6, &fd.seen, seenCode); err != nil {
			return err
		}
		fd.code = p.keep()
	case "values":
		return p.takeValue(f)
	}
	return nil // field_type, …: not needed
}

// takeValue stores values[k]=x (a date and similar: no [value] key),
// values[k][value] and values[k][enum].
func (p *bodyParser) takeValue(f int32) error {
	if p.depth() < 7 {
		return p.fail("want values[index] or values[index][value]")
	}
	k, err := p.parseIndex(p.seg(6))
	if err != nil {
		return err
	}
	v := &p.values[p.value(f, k)]
	if p.depth() == 7 {
		return p.setValue(v, 7, seenBare, seenValue, k)
	}
	switch string(p.seg(7)) {
	case "value":
		return p.setValue(v, 8, seenValue, seenBare, k)
	case "enum":
		if err := p.single(8, &v.seen, seenEnum); err != nil {
			return err
		}
		v.enum, err = p.nonNegativeInt()
		return err
	}
	return nil // subtype (address parts), …: not needed
}

// setValue stores a value given as bit, refusing one also given as other
// (bare and keyed) rather than silently picking one.
func (p *bodyParser) setValue(v *valueDraft, depth int, bit, other uint16, k int32) error {
	if err := p.single(depth, &v.seen, bit); err != nil {
		return err
	}
	if v.seen&other != 0 {
		// Named by the prefix the two keys share: …[values][k].
		shared := p.form.key()[:p.form.seg[6].end+len("]")]
		return malformed(string(shared), "given both as values[%d] and values[%d][value]", k, k)
	}
	v.value = p.keep()
	return nil
}

func (p *bodyParser) takeTag(c int32) error {
	if p.depth() < 6 {
		return p.fail("want tags[index][id|name]")
	}
	i, err := p.parseIndex(p.seg(4))
	if err != nil {
		return err
	}
	t := &p.tags[p.tag(c, i)]
	switch string(p.seg(5)) {
	case "id": // validated, not kept: the sync works with tag names
		if err := p.single(6, &t.seen, seenID); err != nil {
			return err
		}
		_, err = p.nonNegativeInt()
		return err
	case "name":
		if err := p.single(6, &t.seen, seenName); err != nil {
			return err
		}
		t.name = p.keep()
	}
	return nil
}

// contact returns the draft of contacts[action][index], creating it within
// the MaxWebhookContacts budget.
func (p *bodyParser) contact(s draftSlot) (int32, error) {
	if pos, ok := p.table.find(kindContact, s, p.maxContact[s.parent]); ok {
		return pos, nil
	}
	if len(p.contacts) == MaxWebhookContacts {
		return 0, p.fail("more than %d contacts in one body", MaxWebhookContacts)
	}
	p.maxContact[s.parent] = max(p.maxContact[s.parent], s.index)
	p.contacts = append(p.contacts, contactDraft{maxField: -1, maxTag: -1})
	return p.table.add(kindContact, s), nil
}

// field returns the draft of custom_fields[j] of contact c, creating it.
func (p *bodyParser) field(c, j int32) int32 {
	d := &p.contacts[c]
	s := draftSlot{c, j}
	if pos, ok := p.table.find(kindField, s, d.maxField); ok {
		return pos
	}
	d.maxField = max(d.maxField, j)
	p.fields = append(p.fields, fieldDraft{maxValue: -1})
	return p.table.add(kindField, s)
}

// value returns the draft of values[k] of field f, creating it.
func (p *bodyParser) value(f, k int32) int32 {
	fd := &p.fields[f]
	s := draftSlot{f, k}
	if pos, ok := p.table.find(kindValue, s, fd.maxValue); ok {
		return pos
	}
	fd.maxValue = max(fd.maxValue, k)
	p.values = append(p.values, valueDraft{})
	return p.table.add(kindValue, s)
}

// tag returns the draft of tags[i] of contact c, creating it.
func (p *bodyParser) tag(c, i int32) int32 {
	d := &p.contacts[c]
	s := draftSlot{c, i}
	if pos, ok := p.table.find(kindTag, s, d.maxTag); ok {
		return pos
	}
	d.maxTag = max(d.maxTag, i)
	p.tags = append(p.tags, tagDraft{})
	return p.table.add(kindTag, s)
}

// single checks a leaf key: it must end at depth (a value takes no
// sub-keys) and the key must not have been given before (a second value
// would leave the choice to chance). It marks bit in *seen.
func (p *bodyParser) single(depth int, seen *uint16, bit uint16) error {
	if p.depth() != depth {
		return p.fail("%q takes no sub-keys", p.seg(depth-1))
	}
	if *seen&bit != 0 {
		return p.fail("given more than once")
	}
	*seen |= bit
	return nil
}

// seg is segment i of the current key: seg(0) is its root.
func (p *bodyParser) seg(i int) []byte {
	b := p.form.seg[i]
	return p.form.key()[b.start:b.end]
}

// depth is the number of segments of the current key.
func (p *bodyParser) depth() int { return p.form.nseg }

// fail reports the current key as malformed.
func (p *bodyParser) fail(format string, args ...any) error {
	return malformed(string(p.form.key()), format, args...)
}

// keep decodes the current value into the arena: a string of the payload.
func (p *bodyParser) keep() span {
	off := len(p.arena)
	p.arena, _ = appendUnescaped(p.arena, p.form.value()) // escapes checked by next
	return span{off, len(p.arena)}
}

// decoded is the current value decoded into scratch, to be read, not kept.
func (p *bodyParser) decoded() []byte {
	p.num, _ = appendUnescaped(p.num[:0], p.form.value()) // escapes checked by next
	return p.num
}

// maxIndexDigits is len("10000"), the digits of MaxWebhookIndex.
const maxIndexDigits = 5

// parseIndex accepts canonical decimal indexes 0..MaxWebhookIndex. Leading
// zeros are refused so "01" and "1" cannot name the same item twice.
func (p *bodyParser) parseIndex(s []byte) (int32, error) {
	if len(s) == 1 && '0' <= s[0] && s[0] <= '9' { // the usual
		return int32(s[0] - '0'), nil
	}
	n, ok, _ := parseDigits(s)
	if !ok || (len(s) > 1 && s[0] == '0') {
		return 0, p.fail("index %s is not a decimal number without leading zeros", quoted(s))
	}
	if len(s) > maxIndexDigits {
		return 0, p.fail("index %s is above the limit of %d", quoted(s), MaxWebhookIndex)
	}
	if n > MaxWebhookIndex {
		return 0, p.fail("index %d is above the limit of %d", n, MaxWebhookIndex)
	}
	return int32(n), nil
}

// positiveInt, nonNegativeInt and timestamp read the current value.
func (p *bodyParser) positiveInt() (int64, error) {
	n, err := p.nonNegativeInt()
	if err == nil && n == 0 {
		return 0, p.fail("must be a positive integer, got 0")
	}
	return n, err
}

func (p *bodyParser) nonNegativeInt() (int64, error) {
	n, ok, fits := p.number()
	if !ok {
		return 0, p.fail("%s is not a non-negative integer", quoted(p.decoded()))
	}
	if !fits {
		return 0, p.fail("%s does not fit in 64 bits", quoted(p.decoded()))
	}
	return n, nil
}

func (p *bodyParser) timestamp() (int64, error) {
	n, ok, fits := p.number()
	if !ok || !fits {
		return 0, p.fail("%s is not a unix timestamp", quoted(p.decoded()))
	}
	return n, nil
}

// number parses the current value as parseDigits does. A value of plain
// digits (the usual) is its own decoding; any other is decoded first, as
// "%31" is a digit too.
func (p *bodyParser) number() (n int64, ok, fits bool) {
	if n, ok, fits = parseDigits(p.form.value()); ok {
		return n, ok, fits
	}
	return parseDigits(p.decoded())
}

func (p *bodyParser) contactType(s []byte) (ContactType, error) {
	switch string(s) {
	case string(ContactTypeContact):
		return ContactTypeContact, nil
	case string(ContactTypeCompany):
		return ContactTypeCompany, nil
	}
	return "", p.fail("unknown contact type %s, want contact or company", quoted(s))
}

// parseDigits reads a non-empty run of ASCII digits (leading zeros allowed):
// ok is false for anything else, fits is false above math.MaxInt64.
func parseDigits(s []byte) (n int64, ok, fits bool) {
	if len(s) == 0 {
		return 0, false, false
	}
	const safeDigits = 18 // 10^18-1 < math.MaxInt64: no overflow check needed
	for _, c := range s[:min(len(s), safeDigits)] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		n = n*10 + int64(c-'0')
	}
	fits = true
	for _, c := range s[min(len(s), safeDigits):] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		d := int64(c - '0')
		if fits && n <= (math.MaxInt64-d)/10 {
			n = n*10 + d
		} else {
			fits = false
		}
	}
	return n, true, fits
}

// quoted shows a bad value in an error, cut short: values here should be
// numbers or short words, and a long one is noise (or someone's data).
func quoted(s []byte) string {
	const limit = 32
	if len(s) > limit {
		return strconv.Quote(string(s[:limit])) + "…"
	}
	return strconv.Quote(string(s))
}
