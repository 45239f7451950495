package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
	"github.com/kommo-unisender/kommo-unisender/internal/unisender"
)

// clientCache keeps one Kommo client per integration and one Unisender
// client per API key, so that the reconciles and the import runs of a
// tenant share the client's rate limiter: Kommo's 7 requests per second
// and Unisender's calls per minute are budgets of the account and the key,
// not of one caller.
type clientCache struct {
	mu        sync.Mutex
	kommo     map[string]*kommo.Client
	unisender map[string]*unisender.Client // by SHA-256 of the key: the map never holds a key in clear
}

// kommoClientFor returns the client of the integration's account; it reads
// the access token from the integration's token Secret through the cache
// (the KommoIntegration reconciler keeps it fresh).
func (r *UnisenderBindingReconciler) kommoClientFor(ki *v1alpha1.KommoIntegration) *kommo.Client {
	base, rps := ki.Spec.APIBaseURL(), ki.Spec.RequestsPerSecond()
	id := fmt.Sprintf("%s/%s|%s|%d", ki.Namespace, ki.Name, base, rps)
	c := &r.clients
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.kommo[id]; ok {
		return cl
	}
	ts := tokens.NewSource(r.Client, ki.Namespace, ki.Name)
	newClient := r.NewKommoClient
	if newClient == nil {
		newClient = defaultKommoClient
	}
	cl := newClient(base, rps, ts)
	if c.kommo == nil {
		c.kommo = map[string]*kommo.Client{}
	}
	c.kommo[id] = cl
	return cl
}

func defaultKommoClient(baseURL string, rps int, ts kommo.TokenSource) *kommo.Client {
	return kommo.NewClient(baseURL,
		kommo.WithRateLimit(float64(rps), 1),
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
