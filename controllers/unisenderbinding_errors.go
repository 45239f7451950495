package controllers

import (
	"errors"
	"fmt"
	"time"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// The steps of the UnisenderBinding reconciler return one of two kinds of
// error besides plain (transient, retried) ones; finishBinding turns each
// into conditions and a requeue. No message ever holds a secret: client
// errors come sanitized from internal/kommo and internal/unisender, and ours
// name Secrets and keys only.

// bindingStall is permanent: a human must act (the message says what). No
// retry until the spec or a watched object changes.
type bindingStall struct {
	reason  string
	message string
}

func (e *bindingStall) Error() string { return e.reason + ": " + e.message }

func stallBinding(reason, format string, args ...any) error {
	return &bindingStall{reason: reason, message: fmt.Sprintf(format, args...)}
}

// bindingWait: the binding waits for something outside it (the
// KommoIntegration to become Ready, a Secret to appear). Not a failure;
// Ready=False with the reason, Reconciling=True, looked at again after
// `after` and whenever the awaited object changes.
type bindingWait struct {
	reason  string
	message string
	after   time.Duration
}

func (e *bindingWait) Error() string { return e.reason + ": " + e.message }

func waitBinding(after time.Duration, reason, format string, args ...any) error {
	return &bindingWait{reason: reason, message: fmt.Sprintf(format, args...), after: after}
}

// unisenderKeyFailure turns a refusal of the key into a stall that says
// what to fix; other errors pass through (transient: retried).
func unisenderKeyFailure(err error, source string) error {
	switch {
	case errors.Is(err, unisender.ErrInvalidAPIKey):
		return stallBinding(v1alpha1.ReasonInvalidAPIKey,
			"Unisender refused the API key in %s: put a valid key there (Unisender: account settings → API)", source)
	case errors.Is(err, unisender.ErrAccessDenied):
		return stallBinding(v1alpha1.ReasonAccessDenied,
			"Unisender denied access to the API key in %s: enable API access for it in the Unisender account (%v)", source, err)
	case errors.Is(err, unisender.ErrNotEnoughMoney):
		return stallBinding(v1alpha1.ReasonNotEnoughMoney,
			"Unisender answered not_enough_money for the account of the key in %s: top up the account (%v)", source, err)
	}
	return err
}
