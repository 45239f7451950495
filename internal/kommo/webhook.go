package kommo

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Action is what happened to a contact in a webhook event.
type Action string

// The contact actions the sync subscribes to (add_contact, update_contact,
// delete_contact). Other actions under "contacts" are ignored by the parser.
const (
	ActionAdd    Action = "add"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
)

// actionRank orders events: adds, then updates, then deletes. It is also the
// set of actions the parser understands.
var actionRank = map[Action]int{ActionAdd: 0, ActionUpdate: 1, ActionDelete: 2}

// Bounds on one webhook body. Kommo batches "dozens" of contacts per request;
// these limits are far above that and exist so a hostile body cannot make the
// parser hold an unbounded number of drafts.
const (
	MaxWebhookIndex    = 10000 // largest index accepted at any level (contacts, fields, values, tags)
	MaxWebhookContacts = 2000  // most contacts (all actions together) in one body
	maxKeyDepth        = 12    // deepest real key has 8 segments
)

// WebhookPayload is one Kommo webhook request: the account it comes from and
// its contact events, ordered by action (add, update, delete) then by the
// index Kommo gave them.
type WebhookPayload struct {
	AccountID int64
	Subdomain string
	Events    []WebhookEvent
}

// WebhookEvent is one contact (or company, see Contact.Type) and what
// happened to it. A delete carries only the id, the type and the account.
type WebhookEvent struct {
	Action  Action
	Contact Contact
}

// ErrMalformedWebhook matches (errors.Is) every error ParseWebhook returns.
var ErrMalformedWebhook = errors.New("kommo: malformed webhook")

// WebhookError says which key of a webhook body is wrong and why. Values are
// quoted only for fields that should be numbers, and truncated.
type WebhookError struct {
	Key    string // the form key (or key prefix) at fault
	Reason string
}

func (e *WebhookError) Error() string {
	return fmt.Sprintf("kommo webhook: %s: %s", e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrMalformedWebhook) true.
func (e *WebhookError) Is(target error) bool { return target == ErrMalformedWebhook }

func malformed(key, format string, args ...any) error {
	return &WebhookError{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// ParseWebhook reads a Kommo webhook body (already form-decoded) into typed
// events. It reads every contact under contacts[add|update|delete][index],
// whatever the indexes; keys of other entities (leads[…], …) and of other
// contact actions (restore, note, …) are ignored. Any malformed key or value
// under "contacts" or "account" is an error naming the key; it never panics.
func ParseWebhook(form url.Values) (*WebhookPayload, error) {
	// Sorted keys make the reported error the same for the same body.
	keys := make([]string, 0, len(form))
	for k := range form {
		if isOurRoot(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)

	p := &webhookParser{drafts: map[draftKey]*contactDraft{}}
	buf := make([]string, 0, maxKeyDepth)
	for _, key := range keys {
		segs, err := splitKey(key, buf)
		if err != nil {
			return nil, err
		}
		if err := p.take(key, segs, form[key]); err != nil {
			return nil, err
		}
	}
	return p.payload()
}

// isOurRoot reports whether a key belongs to "contacts" or "account", the
// only entities the parser reads. The root ends at the first bracket of
// either kind so that "contacts]x" is inspected (and refused) too.
func isOurRoot(key string) bool {
	root := key
	if i := strings.IndexAny(key, "[]"); i >= 0 {
		root = key[:i]
	}
	return root == "contacts" || root == "account"
}

// splitKey splits a bracketed form key: "a[b][c]" → ["a","b","c"]. Empty
// names, unbalanced or stray brackets, text after a closing bracket and
// overly deep keys are errors. segs is reused as the result's storage.
func splitKey(key string, segs []string) ([]string, error) {
	segs = segs[:0]
	open := strings.IndexByte(key, '[')
	root := key
	if open >= 0 {
		root = key[:open]
	}
	if root == "" {
		return nil, malformed(key, "key has an empty name before '['")
	}
	if strings.IndexByte(root, ']') >= 0 {
		return nil, malformed(key, "']' without a matching '['")
	}
	segs = append(segs, root)
	for rest := key[len(root):]; rest != ""; {
		if rest[0] != '[' {
			return nil, malformed(key, "text after ']' must start a new '[…]'")
		}
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return nil, malformed(key, "'[' without a matching ']'")
		}
		seg := rest[1:end]
		if seg == "" {
			return nil, malformed(key, "empty brackets '[]'")
		}
		if strings.IndexByte(seg, '[') >= 0 {
			return nil, malformed(key, "'[' inside brackets")
		}
		if len(segs) == maxKeyDepth {
			return nil, malformed(key, "key nested deeper than %d levels", maxKeyDepth)
		}
		segs = append(segs, seg)
		rest = rest[end+1:]
	}
	return segs, nil
}

type draftKey struct {
	action Action
	index  int
}

// contactDraft gathers the keys of one contacts[action][index] before they
// are checked as a whole (id present, account consistent, …).
type contactDraft struct {
	draftKey
	c                       Contact
	hasID, hasAccountID     bool
	createdAt, dateCreate   *int64
	updatedAt, lastModified *int64
	fields                  map[int]*fieldDraft
	tags                    map[int]*tagDraft
}

type fieldDraft struct {
	f      CustomField // without Values
	hasID  bool
	values map[int]*valueDraft
}

// valueDraft keeps the bare form "values[k]=x" apart from "values[k][value]=x"
// so a body that gives both is refused instead of silently picking one.
type valueDraft struct {
	v                 FieldValue
	bare              string
	hasBare, hasValue bool
}

type tagDraft struct {
	name string
}

type webhookParser struct {
	accountID    int64
	hasAccountID bool
	subdomain    string
	drafts       map[draftKey]*contactDraft
}

// take routes one key to the account or the contact it belongs to.
func (p *webhookParser) take(key string, segs, vals []string) error {
	if segs[0] == "account" {
		return p.takeAccount(key, segs, vals)
	}
	return p.takeContact(key, segs, vals)
}

func (p *webhookParser) takeAccount(key string, segs, vals []string) error {
	if len(segs) < 2 {
		return malformed(key, "want account[field]")
	}
	switch segs[1] {
	case "id":
		v, err := single(key, segs, 2, vals)
		if err != nil {
			return err
		}
		if p.accountID, err = positiveInt(key, v); err != nil {
			return err
		}
		p.hasAccountID = true
	case "subdomain":
		v, err := single(key, segs, 2, vals)
		if err != nil {
			return err
		}
		p.subdomain = v
	}
	// account[_links][self] is derived from the subdomain; other keys are
	// not needed by the sync.
	return nil
}

func (p *webhookParser) takeContact(key string, segs, vals []string) error {
	if len(segs) < 2 {
		return malformed(key, "want contacts[action][index][field]")
	}
	action := Action(segs[1])
	if _, known := actionRank[action]; !known {
		return nil // restore, note, …: not subscribed to, not an error
	}
	if len(segs) < 4 {
		return malformed(key, "want contacts[%s][index][field]", action)
	}
	index, err := parseIndex(key, segs[2])
	if err != nil {
		return err
	}
	d, err := p.draft(key, draftKey{action, index})
	if err != nil {
		return err
	}
	return d.take(key, segs, vals)
}

// draft returns the draft of contacts[action][index], creating it within
// the MaxWebhookContacts budget.
func (p *webhookParser) draft(key string, k draftKey) (*contactDraft, error) {
	if d, ok := p.drafts[k]; ok {
		return d, nil
	}
	if len(p.drafts) == MaxWebhookContacts {
		return nil, malformed(key, "more than %d contacts in one body", MaxWebhookContacts)
	}
	d := &contactDraft{draftKey: k}
	p.drafts[k] = d
	return d, nil
}

// take stores one contact key: segs[3] is the field name.
func (d *contactDraft) take(key string, segs, vals []string) error {
	field := segs[3]
	switch field {
	case "custom_fields":
		return d.takeCustomField(key, segs, vals)
	case "tags":
		return d.takeTag(key, segs, vals)
	case "id", "name", "first_name", "last_name", "responsible_user_id", "type",
		"account_id", "created_at", "date_create", "updated_at", "last_modified":
		v, err := single(key, segs, 4, vals)
		if err != nil {
			return err
		}
		return d.setScalar(key, field, v)
	}
	// group_id, created_user_id, linked_leads_id[…], …: not needed.
	return nil
}

func (d *contactDraft) setScalar(key, field, v string) error {
	var err error
	switch field {
	case "id":
		d.c.ID, err = positiveInt(key, v)
		d.hasID = true
	case "name":
		d.c.Name = v
	case "first_name":
		d.c.FirstName = v
	case "last_name":
		d.c.LastName = v
	case "type":
		d.c.Type, err = contactType(key, v)
	case "responsible_user_id":
		d.c.ResponsibleUserID, err = nonNegativeInt(key, v)
	case "account_id":
		d.c.AccountID, err = positiveInt(key, v)
		d.hasAccountID = true
	case "created_at":
		d.createdAt, err = timestamp(key, v)
	case "date_create":
		d.dateCreate, err = timestamp(key, v)
	case "updated_at":
		d.updatedAt, err = timestamp(key, v)
	case "last_modified":
		d.lastModified, err = timestamp(key, v)
	}
	return err
}

// takeCustomField stores custom_fields[j][id|name|code] and
// custom_fields[j][values][k], custom_fields[j][values][k][value|enum].
func (d *contactDraft) takeCustomField(key string, segs, vals []string) error {
	if len(segs) < 6 {
		return malformed(key, "want custom_fields[index][attribute]")
	}
	j, err := parseIndex(key, segs[4])
	if err != nil {
		return err
	}
	if d.fields == nil {
		d.fields = map[int]*fieldDraft{}
	}
	f := d.fields[j]
	if f == nil {
		f = &fieldDraft{}
		d.fields[j] = f
	}
	switch segs[5] {
	case "id":
		v, err := single(key, segs, 6, vals)
		if err != nil {
			return err
		}
		f.f.ID, err = positiveInt(key, v)
		f.hasID = true
		return err
	case "name":
		v, err := single(key, segs, 6, vals)
		f.f.Name = v
		return err
	case "code":
		v, err := single(key, segs, 6, vals)
		f.f.Code = v
		return err
	case "values":
		return f.takeValue(key, segs, vals)
	}
	return nil // field_type, … : not needed
}

func (f *fieldDraft) takeValue(key string, segs, vals []string) error {
	if len(segs) < 7 {
		return malformed(key, "want values[index] or values[index][value]")
	}
	k, err := parseIndex(key, segs[6])
	if err != nil {
		return err
	}
	if f.values == nil {
		f.values = map[int]*valueDraft{}
	}
	v := f.values[k]
	if v == nil {
		v = &valueDraft{}
		f.values[k] = v
	}
	if len(segs) == 7 { // a date and similar: values[k]=<unix>, no [value] key
		v.bare, err = single(key, segs, 7, vals)
		v.hasBare = true
		return err
	}
	switch segs[7] {
	case "value":
		v.v.Value, err = single(key, segs, 8, vals)
		v.hasValue = true
		return err
	case "enum":
		s, err := single(key, segs, 8, vals)
		if err != nil {
			return err
		}
		v.v.EnumID, err = nonNegativeInt(key, s)
		return err
	}
	return nil // subtype (address parts), …: not needed
}

func (d *contactDraft) takeTag(key string, segs, vals []string) error {
	if len(segs) < 6 {
		return malformed(key, "want tags[index][id|name]")
	}
	i, err := parseIndex(key, segs[4])
	if err != nil {
		return err
	}
	if d.tags == nil {
		d.tags = map[int]*tagDraft{}
	}
	t := d.tags[i]
	if t == nil {
		t = &tagDraft{}
		d.tags[i] = t
	}
	switch segs[5] {
	case "id": // validated, not kept: the sync works with tag names
		v, err := single(key, segs, 6, vals)
		if err != nil {
			return err
		}
		_, err = nonNegativeInt(key, v)
		return err
	case "name":
		t.name, err = single(key, segs, 6, vals)
		return err
	}
	return nil
}

// payload checks the drafts as wholes and orders the events.
func (p *webhookParser) payload() (*WebhookPayload, error) {
	if !p.hasAccountID {
		return nil, malformed("account[id]", "missing: the body does not say which account it comes from")
	}
	drafts := make([]*contactDraft, 0, len(p.drafts))
	for _, d := range p.drafts {
		drafts = append(drafts, d)
	}
	slices.SortFunc(drafts, func(a, b *contactDraft) int {
		return cmp.Or(cmp.Compare(actionRank[a.action], actionRank[b.action]), cmp.Compare(a.index, b.index))
	})
	out := &WebhookPayload{AccountID: p.accountID, Subdomain: p.subdomain}
	if len(drafts) > 0 {
		out.Events = make([]WebhookEvent, 0, len(drafts))
	}
	for _, d := range drafts {
		c, err := d.contact(p.accountID)
		if err != nil {
			return nil, err
		}
		out.Events = append(out.Events, WebhookEvent{Action: d.action, Contact: c})
	}
	return out, nil
}

func (d *contactDraft) prefix() string {
	return fmt.Sprintf("contacts[%s][%d]", d.action, d.index)
}

func (d *contactDraft) contact(accountID int64) (Contact, error) {
	c := d.c
	if !d.hasID {
		return Contact{}, malformed(d.prefix(), "missing id")
	}
	if c.Type == "" {
		c.Type = ContactTypeContact
	}
	if d.hasAccountID && c.AccountID != accountID {
		return Contact{}, malformed(d.prefix()+"[account_id]",
			"contact of account %d in a body from account[id] %d", c.AccountID, accountID)
	}
	c.AccountID = accountID
	// created_at/updated_at are the current names; date_create/last_modified
	// the legacy ones Kommo still sends alongside.
	c.CreatedAt = firstSet(d.createdAt, d.dateCreate)
	c.UpdatedAt = firstSet(d.updatedAt, d.lastModified)
	var err error
	if c.CustomFields, err = d.customFields(); err != nil {
		return Contact{}, err
	}
	c.Tags = d.tagNames()
	if d.action == ActionDelete {
		// A delete names the contact and nothing more; anything else Kommo
		// might add describes a contact that no longer exists.
		return Contact{ID: c.ID, Type: c.Type, AccountID: c.AccountID}, nil
	}
	c.DeriveContactPoints()
	return c, nil
}

func (d *contactDraft) customFields() ([]CustomField, error) {
	var out []CustomField
	for _, j := range sortedIndexes(d.fields) {
		fd := d.fields[j]
		fieldKey := fmt.Sprintf("%s[custom_fields][%d]", d.prefix(), j)
		if !fd.hasID {
			return nil, malformed(fieldKey, "missing id")
		}
		f := fd.f
		for _, k := range sortedIndexes(fd.values) {
			v := fd.values[k]
			if v.hasBare && v.hasValue {
				return nil, malformed(fmt.Sprintf("%s[values][%d]", fieldKey, k),
					"given both as values[%d] and values[%d][value]", k, k)
			}
			if v.hasBare {
				v.v.Value = v.bare
			}
			f.Values = append(f.Values, v.v)
		}
		out = append(out, f)
	}
	return out, nil
}

func (d *contactDraft) tagNames() []string {
	var out []string
	for _, i := range sortedIndexes(d.tags) {
		if name := d.tags[i].name; name != "" {
			out = append(out, name)
		}
	}
	return out
}

func sortedIndexes[V any](m map[int]V) []int {
	idx := make([]int, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	return idx
}

func firstSet(a, b *int64) int64 {
	if a != nil {
		return *a
	}
	if b != nil {
		return *b
	}
	return 0
}

// single returns the one value of a leaf key: segs must end at depth and the
// key must be given once (two values would leave the choice to chance).
func single(key string, segs []string, depth int, vals []string) (string, error) {
	if len(segs) != depth {
		return "", malformed(key, "%q takes no sub-keys", segs[depth-1])
	}
	if len(vals) != 1 {
		return "", malformed(key, "given %d times, want once", len(vals))
	}
	return vals[0], nil
}

// parseIndex accepts canonical decimal indexes 0..MaxWebhookIndex. Leading
// zeros are refused so "01" and "1" cannot name the same item twice.
func parseIndex(key, s string) (int, error) {
	if !isDigits(s) || (len(s) > 1 && s[0] == '0') {
		return 0, malformed(key, "index %s is not a decimal number without leading zeros", quoted(s))
	}
	if len(s) > 5 {
		return 0, malformed(key, "index %s is above the limit of %d", quoted(s), MaxWebhookIndex)
	}
	n, _ := strconv.Atoi(s) // at most 5 digits: cannot fail
	if n > MaxWebhookIndex {
		return 0, malformed(key, "index %d is above the limit of %d", n, MaxWebhookIndex)
	}
	return n, nil
}

func positiveInt(key, s string) (int64, error) {
	n, err := nonNegativeInt(key, s)
	if err == nil && n == 0 {
		return 0, malformed(key, "must be a positive integer, got 0")
	}
	return n, err
}

func nonNegativeInt(key, s string) (int64, error) {
	if !isDigits(s) {
		return 0, malformed(key, "%s is not a non-negative integer", quoted(s))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, malformed(key, "%s does not fit in 64 bits", quoted(s))
	}
	return n, nil
}

func timestamp(key, s string) (*int64, error) {
	n, err := nonNegativeInt(key, s)
	if err != nil {
		return nil, malformed(key, "%s is not a unix timestamp", quoted(s))
	}
	return &n, nil
}

func contactType(key, s string) (ContactType, error) {
	switch t := ContactType(s); t {
	case ContactTypeContact, ContactTypeCompany:
		return t, nil
	}
	return "", malformed(key, "unknown contact type %s, want contact or company", quoted(s))
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// quoted shows a bad value in an error, cut short: values here should be
// numbers or short words, and a long one is noise (or someone's data).
func quoted(s string) string {
	const limit = 32
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "…"
	}
	return strconv.Quote(s)
}

// EncodeWebhook renders a payload in Kommo's wire shape, as the sandbox
// delivers it: account[subdomain|id|_links][self], then per event
// contacts[action][i][…] with indexes 0.. per action in event order,
// custom_fields[j][id|name|code|values][k][value|enum] and tags[i][name].
// Emails and Phones are not written on their own: like Kommo, they travel as
// the EMAIL/PHONE custom fields. Zero-valued optional fields are left out; a
// delete carries only id and type. ParseWebhook(EncodeWebhook(p)) gives back
// p for any p that ParseWebhook produced.
func EncodeWebhook(p *WebhookPayload) url.Values {
	form := url.Values{}
	if p.Subdomain != "" {
		form.Set("account[subdomain]", p.Subdomain)
		form.Set("account[_links][self]", "https://"+p.Subdomain+".kommo.com")
	}
	form.Set("account[id]", strconv.FormatInt(p.AccountID, 10))
	next := map[Action]int{}
	for _, ev := range p.Events {
		i := next[ev.Action]
		next[ev.Action] = i + 1
		prefix := fmt.Sprintf("contacts[%s][%d]", ev.Action, i)
		encodeContact(form, prefix, ev.Action, &ev.Contact, p.AccountID)
	}
	return form
}

func encodeContact(form url.Values, prefix string, action Action, c *Contact, accountID int64) {
	setInt := func(field string, n int64) {
		if n != 0 {
			form.Set(prefix+"["+field+"]", strconv.FormatInt(n, 10))
		}
	}
	setStr := func(field, s string) {
		if s != "" {
			form.Set(prefix+"["+field+"]", s)
		}
	}
	form.Set(prefix+"[id]", strconv.FormatInt(c.ID, 10))
	setStr("type", string(cmp.Or(c.Type, ContactTypeContact)))
	if action == ActionDelete {
		return
	}
	setStr("name", c.Name)
	setStr("first_name", c.FirstName)
	setStr("last_name", c.LastName)
	setInt("responsible_user_id", c.ResponsibleUserID)
	setInt("date_create", c.CreatedAt)
	setInt("created_at", c.CreatedAt)
	setInt("last_modified", c.UpdatedAt)
	setInt("updated_at", c.UpdatedAt)
	setInt("account_id", cmp.Or(c.AccountID, accountID))
	for j, f := range c.CustomFields {
		fp := fmt.Sprintf("%s[custom_fields][%d]", prefix, j)
		form.Set(fp+"[id]", strconv.FormatInt(f.ID, 10))
		if f.Name != "" {
			form.Set(fp+"[name]", f.Name)
		}
		if f.Code != "" {
			form.Set(fp+"[code]", f.Code)
		}
		for k, v := range f.Values {
			vp := fmt.Sprintf("%s[values][%d]", fp, k)
			form.Set(vp+"[value]", v.Value)
			if v.EnumID != 0 {
				form.Set(vp+"[enum]", strconv.FormatInt(v.EnumID, 10))
			}
		}
	}
	for i, name := range c.Tags {
		form.Set(fmt.Sprintf("%s[tags][%d][name]", prefix, i), name)
	}
}
