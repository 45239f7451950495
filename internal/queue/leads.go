package queue

import (
	"encoding/json"
	"fmt"
	"time"
)

// KindLeads is the kind of the jobs that name leads Kommo said changed (a
// lead webhook: created, moved to another stage, deleted, …). The worker
// re-reads the contacts of those leads, for bindings whose selector looks
// at leads: a lead's stage decides which list its contacts belong in.
const KindLeads = "leads"

// MaxLeadsPerJob bounds a leads job to one Kommo read of the leads.
const MaxLeadsPerJob = 250

// LeadRef names one lead and what Kommo said happened to it (informational).
type LeadRef struct {
	ID     int64  `json:"id"`
	Action string `json:"action,omitempty"`
}

// LeadsPayload is the payload of a KindLeads job.
type LeadsPayload struct {
	Leads []LeadRef `json:"leads"`
}

// EncodeLeadsJob returns the body of a KindLeads job; it refuses
// (ErrBadEnvelope) what DecodeLeads would refuse.
func EncodeLeadsJob(tenantID string, accountID int64, receivedAt time.Time, refs []LeadRef) ([]byte, error) {
	if err := checkLeads(refs); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(LeadsPayload{Leads: refs})
	if err != nil {
		return nil, err
	}
	return Envelope{Tenant: tenantID, AccountID: accountID, Kind: KindLeads, ReceivedAt: receivedAt.UTC(), Payload: payload}.Encode()
}

// DecodeLeads reads the payload of a KindLeads job. Every failure wraps
// ErrBadEnvelope: such a job is poison.
func DecodeLeads(env Envelope) ([]LeadRef, error) {
	var p LeadsPayload
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return nil, fmt.Errorf("%w: leads payload: %w", ErrBadEnvelope, err)
	}
	if err := checkLeads(p.Leads); err != nil {
		return nil, err
	}
	return p.Leads, nil
}

func checkLeads(refs []LeadRef) error {
	if len(refs) == 0 || len(refs) > MaxLeadsPerJob {
		return fmt.Errorf("%w: a leads job names %d leads, want 1 to %d", ErrBadEnvelope, len(refs), MaxLeadsPerJob)
	}
	for _, l := range refs {
		if l.ID <= 0 {
			return fmt.Errorf("%w: lead id %d is not a Kommo id", ErrBadEnvelope, l.ID)
		}
	}
	return nil
}
