package queue

import (
	"encoding/json"
	"fmt"
	"time"
)

// KindAddresses is the kind of the jobs that name e-mail addresses
// Unisender's event hook said changed (an unsubscribe, a bounce, a spam
// complaint, a resubscribe). The worker reads each from Unisender and
// writes what it reads back to Kommo (internal/writeback); the body's
// account of what happened is not trusted.
const KindAddresses = "addresses"

// MaxAddressesPerJob bounds an addresses job.
const MaxAddressesPerJob = 250

// maxAddressLen is the longest e-mail address (RFC 5321 path limits).
const maxAddressLen = 320

// AddressesPayload is the payload of a KindAddresses job.
type AddressesPayload struct {
	Emails []string `json:"emails"`
}

// EncodeAddressesJob returns the body of a KindAddresses job; it refuses
// (ErrBadEnvelope) what DecodeAddresses would refuse.
func EncodeAddressesJob(tenantID string, receivedAt time.Time, emails []string) ([]byte, error) {
	if err := checkAddresses(emails); err != nil {
		return nil, err
	}
	payload, err := json.Marshal(AddressesPayload{Emails: emails})
	if err != nil {
		return nil, err
	}
	return Envelope{Tenant: tenantID, Kind: KindAddresses, ReceivedAt: receivedAt.UTC(), Payload: payload}.Encode()
}

// DecodeAddresses reads the payload of a KindAddresses job. Every failure
// wraps ErrBadEnvelope: such a job is poison.
func DecodeAddresses(env Envelope) ([]string, error) {
	var p AddressesPayload
	if err := json.Unmarshal(env.Payload, &p); err != nil {
		return nil, fmt.Errorf("%w: addresses payload: %w", ErrBadEnvelope, err)
	}
	if err := checkAddresses(p.Emails); err != nil {
		return nil, err
	}
	return p.Emails, nil
}

func checkAddresses(emails []string) error {
	if len(emails) == 0 || len(emails) > MaxAddressesPerJob {
		return fmt.Errorf("%w: an addresses job names %d addresses, want 1 to %d", ErrBadEnvelope, len(emails), MaxAddressesPerJob)
	}
	for _, e := range emails {
		if e == "" || len(e) > maxAddressLen {
			return fmt.Errorf("%w: an address of %d bytes, want 1 to %d", ErrBadEnvelope, len(e), maxAddressLen)
		}
	}
	return nil
}
