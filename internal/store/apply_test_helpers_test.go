package store

import "context"

// ApplyContact applies one contact version in its own transaction (the
// tests' shorthand for Tx.ApplyContact).
func (s *Store) ApplyContact(ctx context.Context, tenant string, c ContactState) (ApplyResult, error) {
	var res ApplyResult
	err := s.InTx(ctx, func(tx *Tx) error {
		var err error
		res, err = tx.ApplyContact(ctx, tenant, c)
		return err
	})
	return res, err
}
