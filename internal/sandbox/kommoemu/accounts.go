package kommoemu

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// Account is an emulated Kommo account.
type Account struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Subdomain string `json:"subdomain"`
}

// account is an account's state, guarded by Server.mu.
type account struct {
	Account
	contacts  map[int64]*kommo.Contact // people
	companies map[int64]*kommo.Contact
	tags      map[string]int64 // tag name → id
	fieldIDs  map[string]int64 // user field name → id, for fields created without one
	views     contactViews
	hooks     []*hook
	leads     map[int64]*Lead
	pipelines []kommo.Pipeline
	notes     []Note // added through POST /api/v4/contacts/notes

	limiter   *rate.Limiter
	recent429 []time.Time // wall time of rate-limit 429s within the block window
	blocked   bool

	deliveries deliveryQueue
}

var subdomainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// AddAccount creates the account, or returns the existing one of that
// subdomain. Its id comes from the emulator's id sequence.
func (s *Server) AddAccount(subdomain string) (Account, error) {
	if !subdomainRE.MatchString(subdomain) {
		return Account{}, fmt.Errorf("kommoemu: subdomain %q is not a DNS label", truncate.Text(subdomain, 70))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[subdomain]; a != nil {
		return a.Account, nil
	}
	a := &account{
		Account:   Account{ID: 31_000_000 + int64(len(s.accounts))*1_000 + 1, Name: strings.ToUpper(subdomain[:1]) + subdomain[1:], Subdomain: subdomain},
		contacts:  map[int64]*kommo.Contact{},
		companies: map[int64]*kommo.Contact{},
		tags:      map[string]int64{},
		fieldIDs:  map[string]int64{},
		leads:     map[int64]*Lead{},
		limiter:   s.newLimiter(),
	}
	if _, err := s.addPipeline(a, DefaultPipelineName, DefaultStatusNames); err != nil {
		return Account{}, err
	}
	a.deliveries.init()
	s.accounts[subdomain] = a
	s.workers.Add(1)
	go s.deliver(a)
	return a.Account, nil
}

// Accounts lists the accounts by subdomain.
func (s *Server) Accounts() []Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		out = append(out, a.Account)
	}
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(a.Subdomain, b.Subdomain) })
	return out
}

// SetBlocked blocks or unblocks an account by hand (Kommo's support lifts
// blocks; here the test does). Unblocking also forgets recent 429s.
func (s *Server) SetBlocked(subdomain string, blocked bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return err
	}
	a.blocked = blocked
	if !blocked {
		a.recent429 = nil
	}
	return nil
}

// Blocked reports whether the account is blocked.
func (s *Server) Blocked(subdomain string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return false, err
	}
	return a.blocked, nil
}

// ErrNotFound is wrapped by the errors about a missing account, contact or
// webhook.
var ErrNotFound = errors.New("kommoemu: not found")

// account looks an account up; the caller holds s.mu.
func (s *Server) account(subdomain string) (*account, error) {
	a := s.accounts[subdomain]
	if a == nil {
		return nil, fmt.Errorf("%w: account %q", ErrNotFound, truncate.Text(subdomain, 70))
	}
	return a, nil
}
