package unisenderemu

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Global e-mail statuses, per the reference.
const (
	StatusNew                 = "new"
	StatusInvited             = "invited"
	StatusActive              = "active"
	StatusInactive            = "inactive"
	StatusUnsubscribed        = "unsubscribed"
	StatusBlocked             = "blocked"
	StatusActivationRequested = "activation_requested"
)

// Per-list membership statuses. An excluded contact may be added again; an
// unsubscribed one may not.
const (
	ListActive       = "active"
	ListUnsubscribed = "unsubscribed"
	ListExcluded     = "excluded"
)

var globalStatuses = map[string]bool{
	StatusNew: true, StatusInvited: true, StatusActive: true, StatusInactive: true,
	StatusUnsubscribed: true, StatusBlocked: true, StatusActivationRequested: true,
}

// left reports a global status that a sync must never revive.
func left(status string) bool { return status == StatusUnsubscribed || status == StatusBlocked }

// account is the state behind one API key.
type account struct {
	lists    []*list
	fields   []*field
	contacts map[string]*contact // by lower-case e-mail
	byPhone  map[string]*contact

	hook       *hookState  // setHook's registration and its pending events
	calls      []time.Time // accepted calls in the last minute, for the rate limit
	subscribes []time.Time // accepted subscribe calls in the last minute
}

type list struct {
	id    int64
	title string
}

type field struct {
	id         int64
	name       string
	typ        string
	publicName string
}

type contact struct {
	id         int64
	email      string // lower case; "" for a phone-only contact
	phone      string
	status     string
	addedAt    time.Time
	membership map[int64]*membership
	fields     map[string]string
	tags       []string
	// availability: "" (available), unreachable, mailbox_full, … (bounces)
	availability string
}

type membership struct {
	status  string
	addedAt time.Time
}

func (s *Server) newID() int64 {
	s.nextID++
	return s.nextID
}

// newAccount holds the "Name" user field every Unisender account starts with.
func (s *Server) newAccount() *account {
	return &account{
		fields:   []*field{{id: s.newID(), name: "Name", typ: "string", publicName: "Name"}},
		contacts: make(map[string]*contact),
		byPhone:  make(map[string]*contact),
	}
}

func (a *account) listByID(id int64) *list {
	for _, l := range a.lists {
		if l.id == id {
			return l
		}
	}
	return nil
}

func (a *account) fieldByName(name string) *field {
	for _, f := range a.fields {
		if f.name == name {
			return f
		}
	}
	return nil
}

// unknownList returns the first id that names no list of the account.
func (a *account) unknownList(ids []int64) (int64, bool) {
	for _, id := range ids {
		if a.listByID(id) == nil {
			return id, true
		}
	}
	return 0, false
}

// find looks a contact up by e-mail, or by phone when no e-mail is given.
func (a *account) find(email, phone string) *contact {
	if email != "" {
		return a.contacts[strings.ToLower(email)]
	}
	if phone != "" {
		return a.byPhone[phone]
	}
	return nil
}

func (s *Server) addContact(a *account, email, phone, status string) *contact {
	c := &contact{
		id:         s.newID(),
		email:      strings.ToLower(email),
		status:     status,
		addedAt:    s.now(),
		membership: make(map[int64]*membership),
		fields:     make(map[string]string),
	}
	if c.email != "" {
		a.contacts[c.email] = c
	}
	a.setPhone(c, phone)
	return c
}

func (a *account) setPhone(c *contact, phone string) {
	if phone == "" || phone == c.phone {
		return
	}
	if c.phone != "" && a.byPhone[c.phone] == c {
		delete(a.byPhone, c.phone)
	}
	c.phone = phone
	a.byPhone[phone] = c
}

func (a *account) remove(c *contact) {
	if c.email != "" {
		delete(a.contacts, c.email)
	}
	if c.phone != "" && a.byPhone[c.phone] == c {
		delete(a.byPhone, c.phone)
	}
}

// allContacts returns every contact once, e-mail contacts first.
func (a *account) allContacts() []*contact {
	out := make([]*contact, 0, len(a.contacts)+len(a.byPhone))
	for _, c := range a.contacts {
		out = append(out, c)
	}
	for _, c := range a.byPhone {
		if c.email == "" {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(x, y *contact) int { return cmp.Compare(x.id, y.id) })
	return out
}

// join adds the contact to a list unless it unsubscribed from it; it
// reports whether that refusal happened.
func (c *contact) join(listID int64, now time.Time) (refused bool) {
	m := c.membership[listID]
	switch {
	case m == nil:
		c.membership[listID] = &membership{status: ListActive, addedAt: now}
	case m.status == ListUnsubscribed:
		return true
	default:
		m.status = ListActive
	}
	return false
}

// setListStatus marks the contact excluded from or unsubscribed from a list.
// Exclusion never overrides an unsubscription.
func (c *contact) setListStatus(listID int64, status string, now time.Time) {
	m := c.membership[listID]
	if m == nil {
		if status == ListExcluded {
			return // nothing to exclude from
		}
		m = &membership{addedAt: now}
		c.membership[listID] = m
	}
	if status == ListExcluded && m.status == ListUnsubscribed {
		return
	}
	m.status = status
}

// excludeOthers excludes the contact from every list not in keep.
func (c *contact) excludeOthers(keep []int64, now time.Time) {
	for id := range c.membership {
		if !slices.Contains(keep, id) {
			c.setListStatus(id, ListExcluded, now)
		}
	}
}

func (c *contact) addTags(tags []string) {
	for _, t := range tags {
		if !slices.Contains(c.tags, t) {
			c.tags = append(c.tags, t)
		}
	}
}

// admit applies the per-key rate limits over a sliding minute; only
// accepted calls count.
func (s *Server) admit(a *account, method string) *apiError {
	now := s.now()
	a.calls = withinMinute(a.calls, now)
	if lim := s.opts.RateLimitPerMinute; lim > 0 && len(a.calls) >= lim {
		return &apiError{Code: "api_call_limit_exceeded_for_api_key", Message: "API call limit exceeded for this API key"}
	}
	if method == "subscribe" {
		a.subscribes = withinMinute(a.subscribes, now)
		if lim := s.opts.SubscribeLimitPerMinute; lim > 0 && len(a.subscribes) >= lim {
			return &apiError{Code: "api_call_limit_exceeded_for_api_key", Message: "subscribe call limit exceeded for this API key"}
		}
		a.subscribes = append(a.subscribes, now)
	}
	a.calls = append(a.calls, now)
	return nil
}

func withinMinute(times []time.Time, now time.Time) []time.Time {
	cut := 0
	for cut < len(times) && !times[cut].After(now.Add(-time.Minute)) {
		cut++
	}
	return times[cut:]
}

const timeLayout = "2006-01-02 15:04:05"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }
