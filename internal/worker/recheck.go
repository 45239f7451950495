package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/mapping"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// KindRecheck is the kind of the jobs the worker puts for itself to make
// Unisender agree with the store on a set of addresses (see recheckWriter).
const KindRecheck = "recheck"

// recheckPayload is the payload of a recheck job.
type recheckPayload struct {
	Emails []string `json:"emails"`
}

// Why rechecks exist: syncer.Apply pushes to Unisender inside the store
// transaction and commits after Unisender accepted. If the commit never
// happens — the worker dies after Unisender applied the rows, or the answer
// is lost and the call reported as failed — Unisender holds changes the
// store does not know. Retrying the same events would repeat them, but the
// events may come back after newer ones of the same contacts, and then
// they are stale: an address Unisender took in stays in the list although
// no contact holds it (or one it excluded stays out although a contact
// holds it).
//
// So before each push the worker puts a delayed recheck job naming the
// addresses the push touches, durably, in beanstalkd; once the batch has
// committed, it deletes that job. A recheck job that survives — because
// the commit did not happen — is processed like a contacts job, under the
// tenant's lock: the live contacts holding its addresses are read from
// Kommo again and committed, and the addresses no live contact holds leave
// the list as the deletion policy says (syncer.Commit's verify). Any push
// whose commit was lost is thereby corrected after the fact.

// recheckWriter wraps the tenant's Unisender importer: each import is
// preceded by a recheck job for its addresses, put in the worker's tube
// with RecheckDelay.
type recheckWriter struct {
	w      *Worker
	tenant tenant.Key
	next   syncer.Importer

	mu   sync.Mutex
	jobs []uint64
}

func (r *recheckWriter) ImportContacts(ctx context.Context, req unisender.ImportRequest) (*unisender.ImportResult, error) {
	col := slices.Index(req.FieldNames, mapping.ColumnEmail)
	if col < 0 {
		return r.next.ImportContacts(ctx, req)
	}
	emails := make([]string, 0, len(req.Rows))
	for _, row := range req.Rows {
		emails = append(emails, row[col])
	}
	encode := func(emails []string) ([]byte, error) { return recheckEnvelope(r.tenant, emails) }
	put := func(body []byte) error {
		id, err := r.w.cfg.Producer.Put(ctx, r.w.cfg.Tube, body, recheckPriority, r.w.cfg.RecheckDelay, recheckTTR)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.jobs = append(r.jobs, id)
		r.mu.Unlock()
		return nil
	}
	// A push's addresses can outgrow beanstalkd's max-job-size (long,
	// escaped addresses): they are split over as many jobs as needed.
	if err := queue.PutWithin(emails, r.w.cfg.MaxJobBytes, encode, put); err != nil {
		return nil, fmt.Errorf("putting the recheck job before the push: %w", err)
	}
	return r.next.ImportContacts(ctx, req)
}

// committed deletes the recheck jobs: the store now knows what was pushed.
// A job that cannot be deleted runs later and changes nothing.
func (r *recheckWriter) committed(c *queue.Consumer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range r.jobs {
		ctx, cancel := settleContext()
		if err := c.Delete(ctx, id); err != nil && !errors.Is(err, queue.ErrNotFound) {
			r.w.cfg.Log.V(1).Info("deleting a recheck job failed; it will run and change nothing", "job", id, "error", err.Error())
		}
		cancel()
	}
	r.jobs = nil
}

const (
	// recheckPriority runs rechecks after the webhook jobs that are ready
	// (priority 1024) — they repair, they do not carry news.
	recheckPriority = 2048
	recheckTTR      = 2 * time.Minute
)

// smallestRecheckJobBound is the size of the largest recheck job naming
// one address: the longest tenant id and an address of 254 characters
// that JSON escapes six-fold.
var smallestRecheckJobBound = func() int {
	key := tenant.Key{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("b", 253)}
	body, err := recheckEnvelope(key, []string{strings.Repeat("\x01", 254)})
	if err != nil {
		panic(err)
	}
	return len(body)
}()

func recheckEnvelope(key tenant.Key, emails []string) ([]byte, error) {
	raw, err := json.Marshal(recheckPayload{Emails: emails})
	if err != nil {
		return nil, err
	}
	return queue.Envelope{Version: queue.EnvelopeVersion, Tenant: key.String(), Kind: KindRecheck,
		ReceivedAt: time.Now().UTC(), Payload: raw}.Encode()
}

func decodeRecheck(env queue.Envelope) ([]string, error) {
	var p recheckPayload
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return nil, fmt.Errorf("recheck payload: %w", err)
	}
	return p.Emails, nil
}
