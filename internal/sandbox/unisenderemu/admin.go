package unisenderemu

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"time"
)

// Errors of the admin API.
var (
	ErrUnknownKey     = errors.New("unisenderemu: unknown API key")
	ErrUnknownContact = errors.New("unisenderemu: unknown contact")
	ErrUnknownList    = errors.New("unisenderemu: unknown list")
	ErrInvalidStatus  = errors.New("unisenderemu: invalid status")
)

// List is a list as the admin API shows it.
type List struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
}

// Field is a user field as the admin API shows it.
type Field struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// Member is a contact with a membership in one list.
type Member struct {
	Email      string            `json:"email"`
	Phone      string            `json:"phone,omitempty"`
	Status     string            `json:"status"`      // global e-mail status
	ListStatus string            `json:"list_status"` // ListActive, ListUnsubscribed or ListExcluded
	Fields     map[string]string `json:"fields"`
	Tags       []string          `json:"tags"`
}

// Contact is a contact with all its memberships.
type Contact struct {
	ID      int64             `json:"id"`
	Email   string            `json:"email"`
	Phone   string            `json:"phone,omitempty"`
	Status  string            `json:"status"`
	AddedAt time.Time         `json:"added_at"`
	Lists   map[int64]string  `json:"lists"` // list id → membership status
	Fields  map[string]string `json:"fields"`
	Tags    []string          `json:"tags"`
}

// AddAPIKey creates an account for key (with the "Name" field every account
// has). Adding a key twice keeps the first account.
func (s *Server) AddAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accounts[key] == nil {
		s.accounts[key] = s.newAccount()
	}
}

// RemoveAPIKey deletes the account; its key then answers invalid_api_key.
func (s *Server) RemoveAPIKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accounts, key)
}

// Lists returns the account's lists in creation order (nil for an unknown key).
func (s *Server) Lists(key string) []List {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[key]
	if a == nil {
		return nil
	}
	out := make([]List, len(a.lists))
	for i, l := range a.lists {
		out[i] = List{ID: l.id, Title: l.title}
	}
	return out
}

// Fields returns the account's user fields in creation order.
func (s *Server) Fields(key string) []Field {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[key]
	if a == nil {
		return nil
	}
	out := make([]Field, len(a.fields))
	for i, f := range a.fields {
		out[i] = Field{ID: f.id, Name: f.name, Type: f.typ}
	}
	return out
}

// ListMembers returns every contact with a membership in the list, whatever
// its ListStatus (filter on ListActive for who would receive mail), sorted
// by e-mail then phone.
func (s *Server) ListMembers(key string, listID int64) []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[key]
	if a == nil {
		return nil
	}
	var out []Member
	for _, c := range a.allContacts() {
		if m := c.membership[listID]; m != nil {
			out = append(out, Member{
				Email: c.email, Phone: c.phone, Status: c.status, ListStatus: m.status,
				Fields: maps.Clone(c.fields), Tags: slices.Clone(c.tags),
			})
		}
	}
	slices.SortFunc(out, func(x, y Member) int {
		return strings.Compare(x.Email+"\x00"+x.Phone, y.Email+"\x00"+y.Phone)
	})
	return out
}

// Contact returns the contact with this e-mail (any case).
func (s *Server) Contact(key, email string) (Contact, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[key]
	if a == nil {
		return Contact{}, false
	}
	c := a.find(email, "")
	if c == nil {
		return Contact{}, false
	}
	return c.view(), true
}

// Contacts returns every contact of the account in creation order.
func (s *Server) Contacts(key string) []Contact {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[key]
	if a == nil {
		return nil
	}
	var out []Contact
	for _, c := range a.allContacts() {
		out = append(out, c.view())
	}
	return out
}

func (c *contact) view() Contact {
	v := Contact{
		ID: c.id, Email: c.email, Phone: c.phone, Status: c.status, AddedAt: c.addedAt,
		Lists: make(map[int64]string, len(c.membership)), Fields: maps.Clone(c.fields), Tags: slices.Clone(c.tags),
	}
	for id, m := range c.membership {
		v.Lists[id] = m.status
	}
	return v
}

// SetContactStatus sets the global status of a contact, as a recipient
// clicking "unsubscribe" or the service blocking an address would.
func (s *Server) SetContactStatus(key, email, status string) error {
	if !globalStatuses[status] {
		return ErrInvalidStatus
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.adminContact(key, email)
	if err != nil {
		return err
	}
	if c.status != status {
		s.queueHookEvent(s.accounts[key], statusEvent(status), c, status)
	}
	c.status = status
	return nil
}

// statusEvent is the hook event of a change to a global status: an
// unsubscribe, a subscribe (active again) or another e-mail status change.
func statusEvent(status string) string {
	switch status {
	case StatusUnsubscribed:
		return "unsubscribe"
	case StatusActive:
		return "subscribe"
	}
	return "email_status"
}

// SetListStatus sets a contact's membership status in one list
// (ListActive, ListUnsubscribed or ListExcluded), as an unsubscribe from a
// single list would.
func (s *Server) SetListStatus(key, email string, listID int64, status string) error {
	if status != ListActive && status != ListUnsubscribed && status != ListExcluded {
		return ErrInvalidStatus
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.adminContact(key, email)
	if err != nil {
		return err
	}
	if s.accounts[key].listByID(listID) == nil {
		return ErrUnknownList
	}
	m := c.membership[listID]
	if m == nil {
		m = &membership{addedAt: s.now()}
		c.membership[listID] = m
	}
	m.status = status
	return nil
}

func (s *Server) adminContact(key, email string) (*contact, error) {
	a := s.accounts[key]
	if a == nil {
		return nil, ErrUnknownKey
	}
	c := a.find(email, "")
	if c == nil {
		return nil, ErrUnknownContact
	}
	return c, nil
}
