package writeback

import (
	"context"
	"errors"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// Unisender reads addresses from Unisender: one (getContact) or a whole
// list with its statuses (legacy exportContacts); *unisender.Client is one.
type Unisender interface {
	GetContact(ctx context.Context, email string, opts unisender.GetContactOptions) (*unisender.Contact, error)
	ExportList(ctx context.Context, listID int64, fn func(page []unisender.ExportedContact) error) error
}

// OutcomeOf is the reported outcome of an address with Unisender's global
// e-mail status and availability: the status first (an opt-out or a block
// outweighs a bounce), then the availability; "" for none reported.
func OutcomeOf(spec *v1alpha1.WriteBack, status, availability string) v1alpha1.WriteBackOutcome {
	for _, o := range []v1alpha1.WriteBackOutcome{v1alpha1.WriteBackOutcome(status), v1alpha1.WriteBackOutcome(availability)} {
		if o != "" && spec.Reports(o) {
			return o
		}
	}
	return ""
}

// ReadStates reads the named addresses from Unisender (one getContact
// each, within the key's rate limit). An address Unisender does not know,
// or that is not in the list, is skipped: nothing of the list to report.
func ReadStates(ctx context.Context, tg Target, emails []string) ([]State, error) {
	var out []State
	for _, email := range emails {
		c, err := tg.Unisender.GetContact(ctx, email, unisender.GetContactOptions{IncludeLists: true})
		if errors.Is(err, unisender.ErrContactNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if inList(c, tg.ListID) {
			out = append(out, State{Email: email, Outcome: OutcomeOf(tg.Spec, c.Status, c.Availability)})
		}
	}
	return out, nil
}

func inList(c *unisender.Contact, listID int64) bool {
	for _, l := range c.Lists {
		if l.ID == listID {
			return true
		}
	}
	return false
}
