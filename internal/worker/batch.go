package worker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sleep"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// idleReserveWait is how long a reserve waits for the first job of a
// batch; it also bounds how late a goroutine notices shutdown.
const idleReserveWait = time.Second

// pollInterval spaces the non-blocking reserves that fill a batch while its
// window is open (beanstalkd's reserve timeout counts whole seconds).
const pollInterval = 5 * time.Millisecond

// entry is one reserved job, decoded.
type entry struct {
	job    *queue.Job
	env    queue.Envelope
	tenant tenant.Key
	// contacts are the ids the job names (a contacts job, or a webhook job
	// of an earlier version, whose contact data is ignored).
	contacts []int64
	// recheck holds the addresses of a recheck job (KindRecheck).
	recheck []string
	// leads are the ids a leads job names (queue.KindLeads): their
	// contacts are re-read.
	leads []int64
	// addresses are the e-mail addresses an addresses job names
	// (queue.KindAddresses): read from Unisender and written back to Kommo.
	addresses []string
	// poison says why the job can never be processed; nil for a good job.
	poison error
	// settled is set once the job was deleted, released or buried, so the
	// heartbeat stops touching it.
	settled atomic.Bool
}

// weight is what the job counts toward MaxEvents: the contacts it names,
// and at least one so that empty or poison jobs cannot grow a batch
// unbounded.
func (e *entry) weight() int { return max(1, len(e.contacts)+len(e.leads)+len(e.addresses)) }

// decodeEntry decodes a job's envelope and payload. Anything this binary
// cannot read is poison.
func decodeEntry(j *queue.Job) *entry {
	e := &entry{job: j}
	env, err := queue.Decode(j.Body)
	if err != nil {
		e.poison = err
		return e
	}
	e.env = env
	if env.Kind != queue.KindContacts && env.Kind != queue.KindWebhook && env.Kind != KindRecheck && env.Kind != queue.KindLeads &&
		env.Kind != queue.KindAddresses {
		e.poison = fmt.Errorf("%w: job kind %q is not one this worker processes", queue.ErrBadEnvelope, truncate.Text(env.Kind, 40))
		return e
	}
	if e.tenant, err = tenant.Parse(env.Tenant); err != nil {
		e.poison = fmt.Errorf("%w: %w", queue.ErrBadEnvelope, err)
		return e
	}
	switch env.Kind {
	case KindRecheck:
		e.recheck, err = decodeRecheck(env)
	case queue.KindContacts:
		e.contacts, err = decodeContacts(env)
	case queue.KindLeads:
		e.leads, err = decodeLeads(env)
	case queue.KindAddresses:
		e.addresses, err = queue.DecodeAddresses(env)
	default:
		e.contacts, err = decodeWebhookIDs(env)
	}
	if err != nil {
		e.poison = fmt.Errorf("%w: %w", queue.ErrBadEnvelope, err)
	}
	return e
}

func decodeContacts(env queue.Envelope) ([]int64, error) {
	refs, err := queue.DecodeContacts(env)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return ids, nil
}

func decodeLeads(env queue.Envelope) ([]int64, error) {
	refs, err := queue.DecodeLeads(env)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return ids, nil
}

// decodeWebhookIDs reads the ids of a webhook job that an earlier version
// of the webhook server put with the whole payload (a kommo.WebhookPayload):
// its contact data is ignored like any other body's, the contacts are read
// from Kommo.
func decodeWebhookIDs(env queue.Envelope) ([]int64, error) {
	if len(env.Payload) == 0 {
		return nil, errors.New("no payload")
	}
	var p kommo.WebhookPayload
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return nil, fmt.Errorf("webhook payload: %w", err)
	}
	ids := make([]int64, 0, len(p.Events))
	for i, ev := range p.Events {
		if ev.Contact.ID <= 0 {
			return nil, fmt.Errorf("event %d: contact id %d is not a Kommo id", i, ev.Contact.ID)
		}
		if !ev.Contact.IsCompany() {
			ids = append(ids, ev.Contact.ID)
		}
	}
	return ids, nil
}

// batch is what one goroutine reserved in one go.
type batch struct {
	entries []*entry
	weight  int
}

func (b *batch) add(e *entry) {
	b.entries = append(b.entries, e)
	b.weight += e.weight()
}

// group is the good jobs of one tenant in a batch, in reservation order.
type group struct {
	tenant  tenant.Key
	entries []*entry
	// pri is the most urgent (lowest) beanstalkd priority of its jobs.
	pri uint32
}

// split returns the poison jobs and the good ones grouped by tenant. The
// groups are applied one after another, so they are ordered by priority:
// the webhook server gives a tenant that drained its admission bucket a
// later priority, and a quiet tenant's job that joined the batch after a
// flooding tenant's is applied first. Equal priorities keep the order
// their tenants first appear in.
func (b *batch) split() (poison []*entry, groups []*group) {
	byTenant := map[tenant.Key]*group{}
	for _, e := range b.entries {
		if e.poison != nil {
			poison = append(poison, e)
			continue
		}
		g := byTenant[e.tenant]
		if g == nil {
			g = &group{tenant: e.tenant, pri: e.job.Pri}
			byTenant[e.tenant] = g
			groups = append(groups, g)
		}
		g.entries = append(g.entries, e)
		g.pri = min(g.pri, e.job.Pri)
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return cmp.Compare(a.pri, b.pri) })
	return poison, groups
}

// named gathers what entries name: the contact ids, the addresses of
// recheck jobs and the ids of leads, each once.
func named(entries []*entry) (ids []int64, emails []string, leads []int64) {
	for _, e := range entries {
		ids = append(ids, e.contacts...)
		emails = append(emails, e.recheck...)
		leads = append(leads, e.leads...)
	}
	slices.Sort(ids)
	slices.Sort(emails)
	slices.Sort(leads)
	return slices.Compact(ids), slices.Compact(emails), slices.Compact(leads)
}

// errIdle is gather's answer when no job came within idleReserveWait, or
// ctx ended: nothing to process, and nothing wrong.
var errIdle = errors.New("no job to reserve")

// gather reserves a batch: it waits up to idleReserveWait for a first job
// (errIdle if none came or ctx ended), then takes every job that is ready,
// and waits BatchWindow for more, until MaxEvents. A job reserved before an
// error is kept in the batch: it is settled normally, and if the
// connection broke beanstalkd has already put it back.
func (w *Worker) gather(ctx context.Context, c *queue.Consumer) (*batch, error) {
	first, err := c.Reserve(ctx, idleReserveWait)
	switch {
	case errors.Is(err, queue.ErrTimeout), errors.Is(err, queue.ErrDeadlineSoon), ctx.Err() != nil:
		return nil, errIdle
	case err != nil:
		return nil, err
	}
	b := &batch{}
	b.add(decodeEntry(first))
	deadline := time.Now().Add(w.cfg.BatchWindow)
	for b.weight < w.cfg.MaxEvents && ctx.Err() == nil {
		j, err := c.Reserve(ctx, 0)
		if err == nil {
			b.add(decodeEntry(j))
			continue
		}
		wait := time.Until(deadline)
		if !errors.Is(err, queue.ErrTimeout) || wait <= 0 {
			break
		}
		_ = sleep.For(ctx, min(pollInterval, wait))
	}
	return b, nil
}
