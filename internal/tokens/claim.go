package tokens

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Claim is a refresh claim written on the token Secret: Holder is about to
// spend the stored refresh token (or authorization code) and nobody else
// may until Deadline.
//
// The claim makes the refresh exclusive across processes without leader
// election: it is written with the resourceVersion that was read, so of two
// claimants one gets a Conflict; the new pair is persisted with the
// resourceVersion the claim write returned, so a holder whose claim expired
// and was taken over cannot overwrite the successor's pair. A holder that
// dies between the refresh and the persist leaves the old pair stored and
// the claim expiring; the next holder refreshes with the old refresh token,
// which Kommo still accepts because the lost new pair was never used.
//
// A holder releases its claim early only after a definite refusal from
// Kommo. After a timeout or a server error the request may still be acted
// on, so the claim is kept to its deadline: the call is bounded by
// CallDeadline, half the claim's lifetime earlier, and a request still in
// flight is over before anyone spends the refresh token again.
type Claim struct {
	Holder   string
	Deadline time.Time
}

// String is the annotation value: "<holder>/<deadline RFC 3339>".
func (c Claim) String() string {
	return c.Holder + "/" + c.Deadline.UTC().Format(time.RFC3339Nano)
}

// LiveAt reports whether the claim still holds at now.
func (c Claim) LiveAt(now time.Time) bool { return now.Before(c.Deadline) }

// ParseClaim reads an annotation value; a malformed one is no claim.
func ParseClaim(v string) (Claim, bool) {
	i := strings.LastIndexByte(v, '/')
	if i <= 0 {
		return Claim{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, v[i+1:])
	if err != nil {
		return Claim{}, false
	}
	return Claim{Holder: v[:i], Deadline: t}, true
}

// ClaimOf returns the claim on s, if any.
func ClaimOf(s *corev1.Secret) (Claim, bool) {
	v, ok := s.Annotations[ClaimAnnotation]
	if !ok {
		return Claim{}, false
	}
	return ParseClaim(v)
}

// ClaimedError: another holder's claim is live; come back after Until.
type ClaimedError struct {
	Holder string
	Until  time.Time
}

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("token refresh claimed by %s until %s", e.Holder, e.Until.UTC().Format(time.RFC3339))
}

// Writer makes the writes of the rotation protocol on token Secrets.
type Writer struct {
	Client client.Client
	// Holder identifies this process (and reconciler) in claims; it must be
	// unique among the processes that may refresh.
	Holder string
	// TTL is how long a claim holds. The refresh must be done well within
	// it: the caller bounds the Kommo call with CallDeadline.
	TTL time.Duration
	Now func() time.Time
}

// Claim marks s as being refreshed by w.Holder. It fails with a
// *ClaimedError, without writing, when another live claim exists (a claim
// of w.Holder itself counts too: it is what a crashed predecessor with the
// same identity left behind), and with a Conflict when s changed since it
// was read. On success s holds the claim and the new resourceVersion.
func (w *Writer) Claim(ctx context.Context, s *corev1.Secret) (Claim, error) {
	now := w.Now()
	if c, ok := ClaimOf(s); ok && c.LiveAt(now) {
		return Claim{}, &ClaimedError{Holder: c.Holder, Until: c.Deadline}
	}
	c := Claim{Holder: w.Holder, Deadline: now.Add(w.TTL)}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[ClaimAnnotation] = c.String()
	if err := w.Client.Update(ctx, s); err != nil {
		return Claim{}, fmt.Errorf("claiming token refresh on Secret %s: %w", s.Name, err)
	}
	return c, nil
}

// CallDeadline is the latest time the Kommo call of a claim may still be
// under way: half the claim's lifetime, so that a late request cannot reach
// Kommo after another holder has taken over.
func (w *Writer) CallDeadline(c Claim) time.Time { return c.Deadline.Add(-w.TTL / 2) }

// Persist stores pair in s, records when it was obtained and clears the
// claim, with the resourceVersion s carries (the claim's). extra
// annotations are set alongside (e.g. the hash of a spent code). A
// Conflict means another holder took over: the pair must be dropped.
func (w *Writer) Persist(ctx context.Context, s *corev1.Secret, pair Pair, extra map[string]string) error {
	pair.Store(s)
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	delete(s.Annotations, ClaimAnnotation)
	s.Annotations[ObtainedAtAnnotation] = w.Now().UTC().Format(time.RFC3339)
	for k, v := range extra {
		s.Annotations[k] = v
	}
	if err := w.Client.Update(ctx, s); err != nil {
		return fmt.Errorf("persisting token pair in Secret %s: %w", s.Name, err)
	}
	return nil
}

// Release clears w's claim without changing the pair, setting the extra
// annotations (e.g. the hash of a code Kommo refused). Used after a failed
// refresh so others need not wait for the claim to expire.
func (w *Writer) Release(ctx context.Context, s *corev1.Secret, extra map[string]string) error {
	delete(s.Annotations, ClaimAnnotation)
	for k, v := range extra {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
	if err := w.Client.Update(ctx, s); err != nil {
		return fmt.Errorf("releasing token refresh claim on Secret %s: %w", s.Name, err)
	}
	return nil
}

// ObtainedAt is when the stored pair was obtained, if recorded.
func ObtainedAt(s *corev1.Secret) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s.Annotations[ObtainedAtAnnotation])
	return t, err == nil
}
