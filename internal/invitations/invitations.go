// Package invitations sends the double opt-in invitations that the sync
// queues (spec.doubleOptin Invite or InviteUnknown): one Unisender
// subscribe call per address a binding brought into its list.
//
// The webhook sync and the import record a pending invitation in the
// transaction that records the contacts (store.Tx.QueueInvitations), so an
// invitation exists exactly when the import that added its address
// committed, and at most once per tenant and address. The worker drains
// them in the background with a Drainer, one tenant at a time under the
// tenant's MySQL lock, each API key within its subscribe budget (Unisender
// allows 300 subscribe calls per minute per key), so a large import is
// invited over minutes while the webhook sync goes on.
//
// For each due invitation the Drainer:
//
//   - drops it when no live contact holds the address any more (the
//     contact was deleted or the address removed before the invitation
//     went out), so the address counts as new if it comes back;
//   - asks Unisender for the contact (getContact, which the subscribe
//     budget does not cover) and records it as failed, without a subscribe
//     call, when the address is unsubscribed or blocked (globally or from
//     the list: subscribe must never try to revive it) or not in the
//     account (the import refused it);
//   - otherwise calls subscribe with the list, the address, the name,
//     double_optin from the binding and overwrite=0, and records it as sent.
//
// A transient failure is retried later with a growing delay, and given up
// (failed) after MaxAttempts; a refusal of the request is recorded as
// failed with Unisender's reason; a refused key or account defers the
// tenant's invitations without counting an attempt. A binding that no
// longer invites (switched to ConsentHeld, or gone) has its pending
// invitations dropped unsent.
//
// Delivery is at most once per address as far as the store knows; a
// subscribe call whose answer is lost (or a crash between the answer and
// the record) is repeated, which Unisender treats as the same subscription.
package invitations

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// DefaultSubscribePerMinute is Unisender's limit of subscribe calls per API
// key.
const DefaultSubscribePerMinute = 300

// Outcomes of an invitation, as Config.Observe and the metrics name them.
const (
	OutcomeSent      = "sent"      // subscribe accepted
	OutcomeFailed    = "failed"    // never to be sent: refused, unsubscribed, not in Unisender, too many failures
	OutcomeRetried   = "retried"   // a transient failure; due again later
	OutcomeSkipped   = "skipped"   // the address left the list before it went out
	OutcomeCancelled = "cancelled" // the binding stopped inviting
)

// Budgets holds one subscribe budget per API key, in the store
// (store.TakeCall), so that every tenant using a key, in every worker
// replica, draws from the same budget. A budget is named by the key's
// digest (syncer.Inviter.KeyID), never the key.
type Budgets struct {
	store    *store.Store
	interval time.Duration
}

// NewBudgets returns budgets of perMinute subscribe calls per key, spread
// evenly (no burst, so no sliding minute ever holds more);
// perMinute <= 0 means DefaultSubscribePerMinute.
func NewBudgets(st *store.Store, perMinute int) *Budgets {
	if perMinute <= 0 {
		perMinute = DefaultSubscribePerMinute
	}
	return &Budgets{store: st, interval: time.Minute / time.Duration(perMinute)}
}

// bucketPrefix keeps these budgets apart from any other kind of call.
const bucketPrefix = "subscribe:"

// Config configures a Drainer. Store and Budgets are required.
type Config struct {
	Store   *store.Store
	Budgets *Budgets
	// BatchSize is how many due invitations one step reads, default 50.
	BatchSize int
	// BackoffBase and BackoffMax bound the delay before retrying a
	// transient failure: BackoffBase doubled per attempt, default 30s and
	// 1h.
	BackoffBase, BackoffMax time.Duration
	// MaxAttempts: after this many transient failures an invitation is
	// given up as failed, default 12 (about half a day with the defaults).
	MaxAttempts int
	// TenantFailureDelay defers a tenant's invitations after Unisender
	// refused its key or account, default 10m.
	TenantFailureDelay time.Duration
	// Observe, if set, is told how many invitations of a tenant ended with
	// an outcome.
	Observe func(tenant, outcome string, n int)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Drainer sends due invitations. It is safe for concurrent use on
// different tenants; the caller serializes the work on one tenant (the
// worker holds the tenant's lock).
type Drainer struct {
	cfg Config
}

// New returns a Drainer.
func New(cfg Config) (*Drainer, error) {
	if cfg.Store == nil || cfg.Budgets == nil {
		return nil, errors.New("invitations: a store and budgets are required")
	}
	setDefault(&cfg.BatchSize, 50)
	setDefault(&cfg.BackoffBase, 30*time.Second)
	setDefault(&cfg.BackoffMax, time.Hour)
	setDefault(&cfg.MaxAttempts, 12)
	setDefault(&cfg.TenantFailureDelay, 10*time.Minute)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Drainer{cfg: cfg}, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// StepResult counts what a step did.
type StepResult struct {
	Counts map[string]int // by outcome
	// More is set when the step ended with due invitations left that the
	// budget can afford now: call Step again without waiting.
	More bool
}

// Step sends the tenant's due invitations for about slice (the time it may
// hold the tenant), as fast as the tenant's key budget allows. The caller
// must hold the tenant's lock, so that no sync changes the tenant's
// contacts meanwhile. t is the tenant as resolved now: one whose
// DoubleOptin does not invite has its pending invitations dropped. The
// error is a store failure, or Unisender's refusal of the tenant's key
// (the invitations are then deferred by TenantFailureDelay).
func (d *Drainer) Step(ctx context.Context, t syncer.Tenant, slice time.Duration) (StepResult, error) {
	res := StepResult{Counts: map[string]int{}}
	defer d.observe(t.Key, res.Counts)
	if !t.DoubleOptin.Invites() {
		n, err := d.cfg.Store.CancelInvitations(ctx, t.Key)
		res.Counts[OutcomeCancelled] += int(n)
		return res, err
	}
	if t.Inviter == nil || t.Mapper == nil {
		return res, fmt.Errorf("invitations: tenant %s has no Unisender client or mapping", t.Key)
	}
	until := time.Now().Add(slice) // the budget runs on real time
	due, err := d.cfg.Store.DueInvitations(ctx, t.Key, d.cfg.Now(), d.cfg.BatchSize)
	if err != nil {
		return res, err
	}
	keyID := t.Inviter.KeyID()
	for _, inv := range due {
		if !inv.Held {
			if _, err := d.cfg.Store.DropInvitation(ctx, t.Key, inv.Email); err != nil {
				return res, err
			}
			res.Counts[OutcomeSkipped]++
			continue
		}
		answer, err := d.cfg.Budgets.take(ctx, keyID, until, slice)
		switch {
		case err != nil || answer == budgetLater:
			return res, err
		case answer == budgetNextSlice:
			res.More = true
			return res, nil
		}
		outcome, err := d.invite(ctx, t, inv)
		if outcome != "" {
			res.Counts[outcome]++
		}
		if err != nil || outcome == OutcomeRetried {
			return res, err // Unisender is struggling or refused the key: leave the rest for later
		}
	}
	res.More = len(due) == d.cfg.BatchSize
	return res, nil
}

func (d *Drainer) observe(tenant string, counts map[string]int) {
	if d.cfg.Observe == nil {
		return
	}
	for outcome, n := range counts {
		if n > 0 {
			d.cfg.Observe(tenant, outcome, n)
		}
	}
}

type budgetAnswer int

const (
	budgetNow       budgetAnswer = iota // a call was taken from the budget
	budgetNextSlice                     // affordable soon, but after this slice
	budgetLater                         // not affordable within a slice
)

// take takes the key's next call, waiting for it if it comes before until.
// Another replica may take the call waited for: then it waits again.
func (b *Budgets) take(ctx context.Context, keyID string, until time.Time, slice time.Duration) (budgetAnswer, error) {
	for {
		wait, err := b.store.TakeCall(ctx, bucketPrefix+keyID, b.interval)
		switch {
		case err != nil:
			return budgetLater, err
		case wait == 0:
			return budgetNow, nil
		case wait > slice:
			return budgetLater, nil
		case time.Now().Add(wait).After(until):
			return budgetNextSlice, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return budgetLater, nil
		}
	}
}

// invite settles one invitation whose address the tenant still holds.
func (d *Drainer) invite(ctx context.Context, t syncer.Tenant, inv store.Invitation) (string, error) {
	listID := t.Mapper.ListID()
	c, err := t.Inviter.GetContact(ctx, inv.Email, unisender.GetContactOptions{IncludeLists: true})
	if errors.Is(err, unisender.ErrContactNotFound) {
		return d.fail(ctx, t, inv, "not in the Unisender account: the import did not add the address")
	}
	if err != nil {
		return d.failure(ctx, t, inv, err)
	}
	if reason := refusal(c, listID); reason != "" {
		return d.fail(ctx, t, inv, reason)
	}
	fields := map[string]string{"email": inv.Email}
	if inv.Name != "" {
		fields[t.Mapper.NameField()] = inv.Name
	}
	_, err = t.Inviter.Subscribe(ctx, unisender.SubscribeRequest{
		ListIDs: []int64{listID}, Fields: fields,
		DoubleOptin: t.DoubleOptin.APIValue(),
		Overwrite:   0, // add only: never replace a contact's data or lists
	})
	if err != nil {
		return d.failure(ctx, t, inv, err)
	}
	return OutcomeSent, d.cfg.Store.MarkInvitationSent(ctx, t.Key, inv.Email)
}

// refusal says why an address must not be subscribed: it unsubscribed or
// was blocked, in the account or from the list. Subscribing it would be an
// attempt to revive it.
func refusal(c *unisender.Contact, listID int64) string {
	switch c.Status {
	case "unsubscribed", "blocked":
		return "the address is " + c.Status + " in Unisender"
	}
	for _, l := range c.Lists {
		if l.ID == listID && l.Status == "unsubscribed" {
			return "the address unsubscribed from the list"
		}
	}
	return ""
}

// failure handles a failed Unisender call by its kind.
func (d *Drainer) failure(ctx context.Context, t syncer.Tenant, inv store.Invitation, err error) (string, error) {
	switch {
	case ctx.Err() != nil:
		return "", ctx.Err() // shutting down: the invitation stays due
	case unisender.IsPermanentForTenant(err):
		if derr := d.cfg.Store.DeferInvitations(ctx, t.Key, d.cfg.Now().Add(d.cfg.TenantFailureDelay)); derr != nil {
			return "", errors.Join(err, derr)
		}
		return "", fmt.Errorf("invitations deferred by %v: %w", d.cfg.TenantFailureDelay, err)
	case unisender.IsPermanentForRequest(err):
		return d.fail(ctx, t, inv, err.Error())
	}
	// Transient, or an error of unknown kind: retry later, within reason.
	if inv.Attempts+1 >= d.cfg.MaxAttempts {
		return d.fail(ctx, t, inv, fmt.Sprintf("gave up after %d attempts: %v", inv.Attempts+1, err))
	}
	at := d.cfg.Now().Add(d.backoff(inv.Attempts))
	return OutcomeRetried, d.cfg.Store.RetryInvitation(ctx, t.Key, inv.Email, at, err.Error())
}

func (d *Drainer) fail(ctx context.Context, t syncer.Tenant, inv store.Invitation, reason string) (string, error) {
	return OutcomeFailed, d.cfg.Store.MarkInvitationFailed(ctx, t.Key, inv.Email, reason)
}

// backoff is BackoffBase doubled per earlier attempt, capped at BackoffMax.
func (d *Drainer) backoff(attempts int) time.Duration {
	delay := d.cfg.BackoffBase << min(attempts, 30)
	if delay <= 0 || delay > d.cfg.BackoffMax {
		return d.cfg.BackoffMax
	}
	return delay
}
