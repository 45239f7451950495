package kommoemu

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// CreateContact adds a contact (or, with Type company, a company) to the
// account and queues its add_* webhook delivery. ID 0 takes the next id;
// CreatedAt and UpdatedAt come from Options.Clock. E-mails and phones may
// be given as Emails/Phones or as EMAIL/PHONE custom fields (see
// UpdateContact for how the two combine). It returns the stored contact.
func (s *Server) CreateContact(subdomain string, c kommo.Contact) (kommo.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return kommo.Contact{}, err
	}
	c = cloneContact(c)
	if c.Type == "" {
		c.Type = kommo.ContactTypeContact
	}
	if c.Type != kommo.ContactTypeContact && c.Type != kommo.ContactTypeCompany {
		return kommo.Contact{}, fmt.Errorf("kommoemu: contact type %q is neither contact nor company", truncate.Text(string(c.Type), 20))
	}
	if c.ID == 0 {
		c.ID = s.newID()
	} else if a.find(c.ID) != nil {
		return kommo.Contact{}, fmt.Errorf("kommoemu: contact %d exists", c.ID)
	}
	now := s.now().Unix()
	c.CreatedAt, c.UpdatedAt, c.AccountID = now, now, a.ID
	s.normalize(a, &c)
	a.store(&c)
	s.enqueue(a, kommo.ActionAdd, c)
	return cloneContact(c), nil
}

// UpdateContact replaces a contact's data (everything but ID, Type,
// CreatedAt and AccountID) and queues its update_* delivery. UpdatedAt
// becomes the clock's time, and always grows: a second update within the
// same second gets the next second. Emails/Phones, when not nil and
// different from the EMAIL/PHONE fields, replace those fields' values;
// nil leaves the fields as given.
func (s *Server) UpdateContact(subdomain string, c kommo.Contact) (kommo.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return kommo.Contact{}, err
	}
	old := a.find(c.ID)
	if old == nil {
		return kommo.Contact{}, fmt.Errorf("%w: contact %d", ErrNotFound, c.ID)
	}
	c = cloneContact(c)
	c.Type, c.CreatedAt, c.AccountID = old.Type, old.CreatedAt, a.ID
	c.UpdatedAt = max(s.now().Unix(), old.UpdatedAt+1)
	s.normalize(a, &c)
	a.store(&c)
	s.enqueue(a, kommo.ActionUpdate, c)
	return cloneContact(c), nil
}

// DeleteContact removes a contact or company and queues its delete_*
// delivery, which carries only the id and type, as Kommo's does.
func (s *Server) DeleteContact(subdomain string, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return err
	}
	old := a.find(id)
	if old == nil {
		return fmt.Errorf("%w: contact %d", ErrNotFound, id)
	}
	if old.Type == kommo.ContactTypeCompany {
		delete(a.companies, id)
	} else {
		delete(a.contacts, id)
		a.views.changed()
	}
	s.enqueue(a, kommo.ActionDelete, kommo.Contact{ID: id, Type: old.Type})
	return nil
}

// Contact returns one contact or company.
func (s *Server) Contact(subdomain string, id int64) (kommo.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return kommo.Contact{}, err
	}
	c := a.find(id)
	if c == nil {
		return kommo.Contact{}, fmt.Errorf("%w: contact %d", ErrNotFound, id)
	}
	return cloneContact(*c), nil
}

// Contacts returns the account's contacts and companies by id.
func (s *Server) Contacts(subdomain string) ([]kommo.Contact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return nil, err
	}
	out := make([]kommo.Contact, 0, len(a.contacts)+len(a.companies))
	for _, m := range []map[int64]*kommo.Contact{a.contacts, a.companies} {
		for _, c := range m {
			out = append(out, cloneContact(*c))
		}
	}
	slices.SortFunc(out, func(x, y kommo.Contact) int { return cmp.Compare(x.ID, y.ID) })
	return out, nil
}

func (a *account) find(id int64) *kommo.Contact {
	if c := a.contacts[id]; c != nil {
		return c
	}
	return a.companies[id]
}

func (a *account) store(c *kommo.Contact) {
	if c.Type == kommo.ContactTypeCompany {
		a.companies[c.ID] = c
		return
	}
	a.contacts[c.ID] = c
	a.views.changed()
}

// normalize fills names and ids Kommo would fill: the EMAIL/PHONE fields
// from Emails/Phones, field ids and enum ids, the name, tag ids.
func (s *Server) normalize(a *account, c *kommo.Contact) {
	c.CustomFields = withContactPoints(c.CustomFields, kommo.FieldCodeEmail, c.Emails)
	c.CustomFields = withContactPoints(c.CustomFields, kommo.FieldCodePhone, c.Phones)
	for i := range c.CustomFields {
		s.fillField(a, &c.CustomFields[i])
	}
	c.DeriveContactPoints()
	if c.Name == "" {
		c.Name = strings.TrimSpace(c.FirstName + " " + c.LastName)
	}
	for _, t := range c.Tags {
		if _, ok := a.tags[t]; !ok {
			a.tags[t] = s.newID()
		}
	}
}

func cloneContact(c kommo.Contact) kommo.Contact {
	c.Emails = slices.Clone(c.Emails)
	c.Phones = slices.Clone(c.Phones)
	c.Tags = slices.Clone(c.Tags)
	c.CustomFields = slices.Clone(c.CustomFields)
	for i := range c.CustomFields {
		c.CustomFields[i].Values = slices.Clone(c.CustomFields[i].Values)
	}
	return c
}
