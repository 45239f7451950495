package worker

import (
	"context"
	"errors"

	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// ErrTenantGone is returned (wrapped) by a TenantResolver when the tenant's
// UnisenderBinding no longer exists or is being deleted: its events are
// deleted, since nobody syncs them any more.
var ErrTenantGone = errors.New("tenant gone")

// ErrTenantNotReady is returned (wrapped, with the reason) when the tenant
// exists but its events must wait: no Unisender list yet, no API key yet, a
// suspended integration, or a spec change the operator has not applied yet.
var ErrTenantNotReady = errors.New("tenant not ready")

// ErrTenantSuspended is returned (wrapped) when the tenant's
// UnisenderBinding is suspended: its events are deleted rather than parked
// (they would come back every NotReadyDelay until MaxJobAge), since
// lifting spec.suspend starts a resync that lists what Kommo changed
// meanwhile and sweeps what it deleted.
var ErrTenantSuspended = errors.New("tenant suspended")

// TenantResolver gives the worker what the sync needs to know of a tenant.
// Any error other than ErrTenantGone, ErrTenantSuspended and
// ErrTenantNotReady is retried with
// backoff. It is called once per tenant per batch, so it should be cheap
// (read from a cache).
type TenantResolver interface {
	Resolve(ctx context.Context, key tenant.Key) (syncer.Tenant, error)
}

// KeyForgetter is implemented by resolvers that cache API keys: the worker
// calls Forget when Unisender refused a tenant's key or account, so that a
// key the user fixes is read again rather than served from the cache.
type KeyForgetter interface {
	Forget(key tenant.Key)
}
