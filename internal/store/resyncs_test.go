package store

import (
	"context"
	"testing"
	"time"
)

// Resync requests of a tenant add up until the manager takes them; taking
// one removes it unless a worker renewed it meanwhile.
func TestResyncRequestsAddUpAndAreDoneOnce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if reqs, err := s.ResyncRequests(ctx); err != nil || len(reqs) != 0 {
		t.Fatalf("ResyncRequests on a fresh database = %v, %v", reqs, err)
	}
	if err := s.RequestResync(ctx, "shop/main", 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := s.RequestResync(ctx, "shop/other", 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := s.RequestResync(ctx, "shop/main", 3); err != nil {
		t.Fatal(err)
	}
	reqs, err := s.ResyncRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 || reqs[0].Tenant != "shop/other" || reqs[0].DroppedJobs != 1 ||
		reqs[1].Tenant != "shop/main" || reqs[1].DroppedJobs != 5 {
		t.Fatalf("requests = %+v; want shop/other (1) then shop/main (2+3, renewed last)", reqs)
	}

	// A worker renews shop/main's request after the manager read it: taking
	// the request read leaves the renewed one for the next round.
	time.Sleep(2 * time.Millisecond)
	if err := s.RequestResync(ctx, "shop/main", 1); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if err := s.DoneResyncRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	left, err := s.ResyncRequests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Tenant != "shop/main" || !left[0].RequestedAt.After(reqs[1].RequestedAt) {
		t.Fatalf("requests left = %+v; want only the renewed shop/main", left)
	}
	if err := s.DoneResyncRequest(ctx, left[0]); err != nil {
		t.Fatal(err)
	}
	if reqs, err := s.ResyncRequests(ctx); err != nil || len(reqs) != 0 {
		t.Fatalf("requests after taking all = %v, %v", reqs, err)
	}
	if err := s.RequestResync(ctx, "", 1); err == nil {
		t.Fatal("RequestResync accepted an empty tenant")
	}
}
