package controllers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/status"
)

// integrationSeenByBindings is what a binding reads of its integration:
// the spec (base URL, rate limit: the generation), whether it is being
// deleted, the account on record and its Ready condition. The token
// bookkeeping each refresh writes (tokenExpiresAt, lastRefreshTime, the
// Authorized message with the new expiry) is not in it: bindings read the
// token from the token Secret at each call.
type integrationSeenByBindings struct {
	generation int64
	deleting   bool
	accountID  int64
	ready      metav1.ConditionStatus
	reason     string
	message    string
}

func seenByBindings(ki *v1alpha1.KommoIntegration) integrationSeenByBindings {
	v := integrationSeenByBindings{generation: ki.Generation, deleting: !ki.DeletionTimestamp.IsZero(), accountID: ki.Status.AccountID}
	if c := status.Get(ki, v1alpha1.ConditionReady); c != nil {
		v.ready, v.reason, v.message = c.Status, c.Reason, c.Message
	}
	return v
}

// integrationChangedForBindings lets an integration's update through to
// its bindings only when something they read changed. Without it every
// token refresh reconciled each binding again, re-reading its Unisender
// list and fields (getLists, getFields) though nothing of them changed: at
// a thousand tenants, two Unisender calls per tenant per refresh.
func integrationChangedForBindings() predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			old, okOld := e.ObjectOld.(*v1alpha1.KommoIntegration)
			cur, okNew := e.ObjectNew.(*v1alpha1.KommoIntegration)
			return !okOld || !okNew || seenByBindings(old) != seenByBindings(cur)
		},
	}
}
