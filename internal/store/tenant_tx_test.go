package store

import (
	"context"
	"testing"
	"time"
)

// A tenant's transaction that has applied a contact the store did not know
// (and waits, as the commit waits on Unisender) holds up no other tenant:
// the next tenant in key order, which has no rows yet, applies its own new
// contact meanwhile. At REPEATABLE READ the first transaction's gap lock on
// its missing key reaches past its last row into the other tenant's keys.
func TestTenantTxHoldsUpNoOtherTenant(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	first, next := "a-tenant/list", "b-tenant/list" // next sorts after first
	apply(t, s, first, ContactState{ID: 10, ReadAt: 1, Emails: []string{"old@example.com"}})
	applied, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.InTenantTx(ctx, func(tx *Tx) error {
			if _, err := tx.ApplyContacts(ctx, first, []ContactState{{ID: 20, ReadAt: 2, Emails: []string{"new@example.com"}}}); err != nil {
				close(applied)
				return err
			}
			close(applied)
			<-release // the Unisender call of this commit
			return nil
		})
	}()
	<-applied
	defer func() {
		close(release)
		if err := <-held; err != nil {
			t.Errorf("the held transaction: %v", err)
		}
	}()
	octx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	err := s.InTenantTx(octx, func(tx *Tx) error {
		_, err := tx.ApplyContacts(octx, next, []ContactState{{ID: 5, ReadAt: 2, Emails: []string{"other@example.com"}}})
		return err
	})
	if err != nil {
		t.Fatalf("the other tenant's transaction, while the first one is open: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	}
}
