package kommoemu

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

var (
	seedFirst = []string{"Maria", "Jose", "Ana", "Luis", "Carmen", "Juan", "Laura", "Pedro", "Elena", "Pablo",
		"Sofia", "Diego", "Lucia", "Javier", "Paula", "Carlos", "Marta", "Andres", "Isabel", "Miguel"}
	seedLast = []string{"Garcia", "Lopez", "Martinez", "Sanchez", "Perez", "Gomez", "Martin", "Jimenez", "Ruiz",
		"Hernandez", "Diaz", "Moreno", "Alvarez", "Romero", "Navarro", "Torres", "Dominguez", "Vazquez"}
	seedDomains = []string{"example.com", "example.org", "example.net", "correo.example", "mail.example"}
	seedTags    = []string{"newsletter", "vip", "lead", "customer", "partner"}
)

// SeedContacts adds n generated contacts with realistic names, e-mails and
// phones: about one in ten has no e-mail, one in six has two, most have a
// phone, some have tags. created_at and updated_at are spread over the two
// years before the clock's now. Seeding models contacts that existed
// before any integration, so it delivers no webhooks. The data depends only
// on Options.Seed and the order of calls.
func (s *Server) SeedContacts(subdomain string, n int) error {
	if n < 0 || n > 10_000_000 {
		return fmt.Errorf("kommoemu: cannot seed %d contacts", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return err
	}
	now := s.now().Unix()
	const span = 2 * 365 * 24 * 3600
	for range n {
		c := s.seedContact(a)
		c.CreatedAt = now - s.rng.Int64N(span)
		c.UpdatedAt = c.CreatedAt + s.rng.Int64N(now-c.CreatedAt+1)
		s.normalize(a, &c)
		a.store(&c)
	}
	return nil
}

func (s *Server) seedContact(a *account) kommo.Contact {
	r := s.rng
	first, last := seedFirst[r.IntN(len(seedFirst))], seedLast[r.IntN(len(seedLast))]
	c := kommo.Contact{
		ID: s.newID(), Type: kommo.ContactTypeContact, AccountID: a.ID,
		FirstName: first, LastName: last, Name: first + " " + last,
		ResponsibleUserID: 7_700_101 + r.Int64N(3),
	}
	local := strings.ToLower(first) + "." + strings.ToLower(last)
	switch p := r.IntN(100); {
	case p < 10: // no e-mail
		c.Emails = []string{}
	case p < 26:
		c.Emails = []string{
			fmt.Sprintf("%s%d@%s", local, c.ID, seedDomains[r.IntN(len(seedDomains))]),
			fmt.Sprintf("%c%s.%d@%s", local[0], strings.ToLower(last), c.ID, seedDomains[r.IntN(len(seedDomains))]),
		}
	default:
		c.Emails = []string{fmt.Sprintf("%s%d@%s", local, c.ID, seedDomains[r.IntN(len(seedDomains))])}
	}
	if r.IntN(100) < 70 {
		c.Phones = []string{fmt.Sprintf("+34 6%02d %03d %03d", r.IntN(100), r.IntN(1000), r.IntN(1000))}
	}
	if r.IntN(100) < 30 {
		c.Tags = []string{seedTags[r.IntN(len(seedTags))]}
	}
	return c
}

// SeedLeads gives about one seeded contact in five a lead in the first
// pipeline: a third of them won, a third lost, the rest open. Like
// SeedContacts it delivers no webhooks, and its data depends only on
// Options.Seed and the order of calls.
func (s *Server) SeedLeads(subdomain string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return err
	}
	p := a.pipelines[0]
	open := p.Statuses[:len(p.Statuses)-2]
	for _, id := range slices.Sorted(maps.Keys(a.contacts)) {
		if s.rng.IntN(5) != 0 {
			continue
		}
		status := open[s.rng.IntN(len(open))].ID
		switch s.rng.IntN(3) {
		case 0:
			status = StatusWon
		case 1:
			status = StatusLost
		}
		c := a.contacts[id]
		l := &Lead{ID: s.newID(), Name: c.Name + "'s deal", PipelineID: p.ID, StatusID: status,
			ContactIDs: []int64{id}, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
		a.leads[l.ID] = l
	}
	return nil
}
