package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// EnvelopeVersion is the envelope format this binary writes and reads.
// Bump it when a change is not backward compatible; a worker refuses (and
// the caller buries) jobs of a version it does not know, rather than
// misreading them.
const EnvelopeVersion = 1

// KindWebhook is a job whose payload is the parsed Kommo webhook events.
const KindWebhook = "webhook"

// ErrBadEnvelope marks a job body that cannot be decoded: not JSON, an
// unknown version, or missing fields. Such a job is poison: bury it and
// record a dead letter; retrying cannot help.
var ErrBadEnvelope = errors.New("queue: bad job envelope")

// Envelope is the body of every job: who it is for, what kind it is, and a
// kind-specific payload.
type Envelope struct {
	Version    int             `json:"v"`
	Tenant     string          `json:"tenant"`
	AccountID  int64           `json:"account_id,omitempty"`
	Kind       string          `json:"kind"`
	ReceivedAt time.Time       `json:"received_at"`
	Payload    json.RawMessage `json:"payload,omitempty"`
}

// Encode returns the JSON body of e. A zero Version is filled in with
// EnvelopeVersion.
func (e Envelope) Encode() ([]byte, error) {
	if e.Version == 0 {
		e.Version = EnvelopeVersion
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// Decode parses a job body. Every failure wraps ErrBadEnvelope.
func Decode(body []byte) (Envelope, error) {
	var e Envelope
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrBadEnvelope, err)
	}
	if dec.More() {
		return Envelope{}, fmt.Errorf("%w: data after the JSON object", ErrBadEnvelope)
	}
	if err := e.validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

func (e Envelope) validate() error {
	switch {
	case e.Version != EnvelopeVersion:
		return fmt.Errorf("%w: version %d, this binary reads version %d", ErrBadEnvelope, e.Version, EnvelopeVersion)
	case e.Tenant == "":
		return fmt.Errorf("%w: no tenant", ErrBadEnvelope)
	case e.Kind == "":
		return fmt.Errorf("%w: no kind", ErrBadEnvelope)
	}
	return nil
}
