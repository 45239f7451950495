package controllers

import (
	"errors"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/outcome"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// unisenderKeyFailure turns a refusal of the key into a stall that says
// what to fix; other errors pass through (transient: retried).
func unisenderKeyFailure(err error, source string) error {
	switch {
	case errors.Is(err, unisender.ErrInvalidAPIKey):
		return outcome.Stall(v1alpha1.ReasonInvalidAPIKey,
			"Unisender refused the API key in %s: put a valid key there (Unisender: account settings → API)", source)
	case errors.Is(err, unisender.ErrAccessDenied):
		return outcome.Stall(v1alpha1.ReasonAccessDenied,
			"Unisender denied access to the API key in %s: enable API access for it in the Unisender account (%v)", source, err)
	case errors.Is(err, unisender.ErrNotEnoughMoney):
		return outcome.Stall(v1alpha1.ReasonNotEnoughMoney,
			"Unisender answered not_enough_money for the account of the key in %s: top up the account (%v)", source, err)
	}
	return err
}
