package kommo

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"unicode/utf8"
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

// actionsByRank orders events: adds, then updates, then deletes. It is also
// the set of actions the parser understands.
var actionsByRank = [...]Action{ActionAdd, ActionUpdate, ActionDelete}

// Bounds on one webhook body. Kommo batches "dozens" of contacts per request;
// these limits are far above that and exist so a hostile body cannot make the
// parser hold an unbounded number of drafts. The number of fields, values
// and tags is bounded by the number of pairs, which url.ParseQuery's limit
// (maxFormPairs) bounds.
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
	// Leads are the leads the body names (leads[action][index][id]), by
	// action then index.
	Leads []LeadEvent
}

// WebhookEvent is one contact (or company, see Contact.Type) and what
// happened to it. A delete carries only the id, the type and the account.
type WebhookEvent struct {
	Action  Action
	Contact Contact
}

// ErrMalformedWebhook matches (errors.Is) every error ParseWebhookBody (and
// ParseWebhook) returns.
var ErrMalformedWebhook = errors.New("kommo: malformed webhook")

// WebhookError says which key of a webhook body is wrong and why. Values are
// quoted only for fields that should be numbers, and truncated. A body that
// is not valid form encoding is reported with a Reason starting "malformed
// form encoding" and, when no single key is at fault, Key "(body)".
type WebhookError struct {
	Key    string // the form key (or key prefix) at fault, or "(body)"
	Reason string
}

func (e *WebhookError) Error() string {
	return fmt.Sprintf("kommo webhook: %s: %s", e.Key, e.Reason)
}

// Is makes errors.Is(err, ErrMalformedWebhook) true.
func (e *WebhookError) Is(target error) bool { return target == ErrMalformedWebhook }

// maxErrorKey bounds the key an error names: a hostile body can hold a key
// of nearly the whole body, which is not worth echoing in a 400.
const maxErrorKey = 200

func malformed(key, format string, args ...any) error {
	if len(key) > maxErrorKey {
		cut := maxErrorKey
		for cut > 0 && !utf8.RuneStart(key[cut]) {
			cut--
		}
		key = key[:cut] + "…"
	}
	return &WebhookError{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// ParseWebhookBody parses a raw application/x-www-form-urlencoded Kommo
// webhook body into typed events, in one pass over the body and without
// building a url.Values. It reads every contact under
// contacts[add|update|delete][index], whatever the indexes, and the id of
// every lead under leads[add|update|status|responsible|restore|delete][index]
// (the sync re-reads the contacts of those leads); keys of other entities
// and of other actions (restore of contacts, note, …) are
// ignored. The body must be valid form encoding throughout, as
// url.ParseQuery demands (no bad %-escapes, no ';' separators, at most
// 10000 pairs). Any malformed key or value under "contacts" or "account", or
// a key read twice, is an error naming the key; the first one in body order
// is reported. It never panics. The payload does not alias body, which the
// caller may reuse.
func ParseWebhookBody(body []byte) (*WebhookPayload, error) {
	p := bodyParsers.Get().(*bodyParser)
	defer p.release()
	if err := p.scan(body); err != nil {
		return nil, err
	}
	return p.payload()
}

// ParseWebhook is ParseWebhookBody for a body already decoded into a form.
// The form is encoded back with sorted keys, so the same form always gives
// the same result and the same error.
func ParseWebhook(form url.Values) (*WebhookPayload, error) {
	return ParseWebhookBody([]byte(form.Encode()))
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
	encodeLeads(form, p.AccountID, p.Leads)
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
