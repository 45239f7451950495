package importer

import (
	"context"
	"errors"
	"fmt"
)

// ErrAccountMismatch: the run's Kommo token reads another account than the
// one the KommoIntegration holds on record (Job.AccountID). Such a token
// answers "no such contact" for every id the store holds, so its sweep
// would empty the list, and its listing would fill the list with another
// account's contacts: the run stops before either.
var ErrAccountMismatch = errors.New("the Kommo token belongs to another account than the KommoIntegration's status.accountID")

// checkAccount asks Kommo which account the token reads (one request) and
// refuses to go on when it is not the one on record. A job without an
// account on record (Job.AccountID 0) is not checked.
func (r *run) checkAccount(ctx context.Context) error {
	if r.job.AccountID == 0 {
		return nil
	}
	acct, err := r.job.Kommo.Account(ctx)
	if err != nil {
		return fmt.Errorf("checking the Kommo token's account before syncing: %w", err)
	}
	if acct.ID != r.job.AccountID {
		return fmt.Errorf("%w: the token reads account %d, the integration is on record for account %d; nothing was synced or removed. "+
			"Give the KommoIntegration a token of account %d (or, if the tenant really moved, create a new KommoIntegration and binding for the new account)",
			ErrAccountMismatch, acct.ID, r.job.AccountID, r.job.AccountID)
	}
	return nil
}
