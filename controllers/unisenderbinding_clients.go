package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/budget"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// clientCache keeps two Kommo clients per integration (one per lane) and
// one Unisender client per API key, so that the reconciles and the import
// runs of a tenant share the clients' pacers. Kommo's 7 requests per
// second are the integration's across every process: both lanes take from
// its shared budget in the store (internal/budget), which the workers draw
// on too.
type clientCache struct {
	mu        sync.Mutex
	kommo     map[string]*kommo.Client
	unisender map[string]*unisender.Client // by SHA-256 of the key: the map never holds a key in clear
}

// kommoLane says which share of an integration's request budget a client
// takes from.
type kommoLane int

const (
	// laneForeground: webhook registration and removal, which a reconcile
	// waits on (the budget's foreground taker).
	laneForeground kommoLane = iota
	// laneBackground: the initial import, resyncs and sweeps, which never
	// take more than the budget's background share.
	laneBackground
)

func (l kommoLane) String() string {
	if l == laneBackground {
		return "background"
	}
	return "foreground"
}

// kommoClientFor returns the client of the integration's account for a
// lane; it reads the access token from the integration's token Secret
// through the cache (the KommoIntegration reconciler keeps it fresh).
func (r *UnisenderBindingReconciler) kommoClientFor(ki *v1alpha1.KommoIntegration, lane kommoLane) *kommo.Client {
	base, rps := ki.Spec.APIBaseURL(), ki.Spec.RequestsPerSecond()
	id := fmt.Sprintf("%s/%s|%s|%d|%s", ki.Namespace, ki.Name, base, rps, lane)
	c := &r.clients
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.kommo[id]; ok {
		return cl
	}
	ts := tokens.NewSource(r.Client, ki.Namespace, ki.Name)
	var b kommo.Budget
	if r.Store != nil { // SetupWithManager requires it; a hand-built reconciler may lack it
		kb := budget.Kommo(r.Store, ki.Namespace, ki.Name, rps)
		b = kb.Foreground()
		if lane == laneBackground {
			b = kb.Background()
		}
	}
	newClient := r.NewKommoClient
	if newClient == nil {
		newClient = defaultKommoClient
	}
	cl := newClient(base, rps, ts, b)
	if c.kommo == nil {
		c.kommo = map[string]*kommo.Client{}
	}
	c.kommo[id] = cl
	return cl
}

func defaultKommoClient(baseURL string, rps int, ts kommo.TokenSource, b kommo.Budget) *kommo.Client {
	return kommo.NewClient(baseURL,
		kommo.WithRateLimit(float64(rps), 1),
		kommo.WithBudget(b),
		kommo.WithTokenSource(ts),
		kommo.WithUserAgent("kommo-unisender-manager"))
}

// unisenderClientFor returns the client for an API key.
func (r *UnisenderBindingReconciler) unisenderClientFor(apiKey string) *unisender.Client {
	sum := sha256.Sum256([]byte(apiKey))
	id := hex.EncodeToString(sum[:])
	c := &r.clients
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.unisender[id]; ok {
		return cl
	}
	var cl *unisender.Client
	if r.NewUnisenderClient != nil {
		cl = r.NewUnisenderClient(apiKey)
	} else {
		base := r.UnisenderBaseURL
		if base == "" {
			base = unisender.DefaultBaseURL
		}
		cl = unisender.NewClient(base, apiKey)
	}
	if c.unisender == nil {
		c.unisender = map[string]*unisender.Client{}
	}
	c.unisender[id] = cl
	return cl
}
