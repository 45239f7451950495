package queue

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// KindContacts is the kind of the jobs the webhook server puts: its payload
// (ContactsPayload) names contacts of the tenant that Kommo said changed,
// and nothing of their data. The worker reads their current state from
// Kommo: a forged or stale body can cost a read, never a change.
const KindContacts = "contacts"

// MaxContactsPerJob bounds a contacts job to one Kommo read (a page of
// filter[id][]). A webhook naming more contacts becomes several jobs, so a
// job's size is bounded whatever the body: about 40 bytes per contact.
const MaxContactsPerJob = 250

// ContactRef names one contact and what Kommo said happened to it. The
// action is informational (logs, metrics): the worker applies whatever
// Kommo holds when it reads the contact.
type ContactRef struct {
	ID     int64  `json:"id"`
	Action string `json:"action,omitempty"`
}

// ContactsPayload is the payload of a KindContacts job.
type ContactsPayload struct {
	Contacts []ContactRef `json:"contacts"`
}

// AppendContactsJob appends the body of a KindContacts job to b: the same
// bytes as Envelope.Encode with a ContactsPayload, written directly because
// it is the hot path of every webhook. A tenant id or action that is not
// plain text, or a time json.Marshal refuses, goes through Envelope.Encode.
// It refuses (ErrBadEnvelope) what DecodeContacts would refuse: no
// contacts, more than MaxContactsPerJob, or an id that is not positive, so
// the producer never writes a job the worker must bury.
func AppendContactsJob(b []byte, tenantID string, accountID int64, receivedAt time.Time, refs []ContactRef) ([]byte, error) {
	if err := checkContacts(refs); err != nil {
		return nil, err
	}
	if !plainJSONText(tenantID) || !plainActions(refs) || !jsonYear(receivedAt) {
		payload, err := json.Marshal(ContactsPayload{Contacts: refs})
		if err != nil {
			return nil, err
		}
		body, err := Envelope{Tenant: tenantID, AccountID: accountID, Kind: KindContacts,
			ReceivedAt: receivedAt.UTC(), Payload: payload}.Encode()
		return append(b, body...), err
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, EnvelopeVersion, 10)
	b = append(b, `,"tenant":"`...)
	b = append(b, tenantID...)
	b = append(b, '"')
	if accountID != 0 {
		b = append(b, `,"account_id":`...)
		b = strconv.AppendInt(b, accountID, 10)
	}
	b = append(b, `,"kind":"`+KindContacts+`","received_at":"`...)
	b = receivedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","payload":{"contacts":[`...)
	for i, r := range refs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = strconv.AppendInt(b, r.ID, 10)
		if r.Action != "" {
			b = append(b, `,"action":"`...)
			b = append(b, r.Action...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, "]}}"...), nil
}

// DecodeContacts reads the payload of a KindContacts job. Every failure
// wraps ErrBadEnvelope: such a job is poison.
func DecodeContacts(env Envelope) ([]ContactRef, error) {
	var p ContactsPayload
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return nil, fmt.Errorf("%w: contacts payload: %w", ErrBadEnvelope, err)
	}
	if err := checkContacts(p.Contacts); err != nil {
		return nil, err
	}
	return p.Contacts, nil
}

// checkContacts is what a contacts job must name: 1 to MaxContactsPerJob
// contacts, each with a positive id.
func checkContacts(refs []ContactRef) error {
	if len(refs) == 0 || len(refs) > MaxContactsPerJob {
		return fmt.Errorf("%w: a contacts job names %d contacts, want 1 to %d", ErrBadEnvelope, len(refs), MaxContactsPerJob)
	}
	for _, c := range refs {
		if c.ID <= 0 {
			return fmt.Errorf("%w: contact id %d is not a Kommo id", ErrBadEnvelope, c.ID)
		}
	}
	return nil
}

// plainActions reports whether every non-empty action is plain text, so
// the direct encoding writes it as json.Marshal would.
func plainActions(refs []ContactRef) bool {
	for _, r := range refs {
		if r.Action != "" && !plainJSONText(r.Action) {
			return false
		}
	}
	return true
}

// jsonYear reports whether json.Marshal encodes t (years 0 to 9999); the
// slow path returns its error for the others.
func jsonYear(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

// plainJSONText reports whether s needs no escaping in a JSON string (and
// no HTML escaping, which encoding/json applies): tenant ids are DNS names
// joined by a slash, actions are Kommo's words.
func plainJSONText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return s != ""
}
