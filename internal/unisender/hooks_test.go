package unisender

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSetHookErrorLeavesTheURLOut: an error answer quoting the hook URL
// (whose path holds the route secret) reaches the caller without it.
func TestSetHookErrorLeavesTheURLOut(t *testing.T) {
	const hookURL = "https://hooks.example.com/unisender/hooks/ns.b/route-secret-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"error":"hook_url ` + hookURL + ` is not reachable","code":"invalid_arg"}`))
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "key-0123456789", WithMaxRetries(0))
	err := c.SetHook(context.Background(), Hook{URL: hookURL, Events: []string{"unsubscribe"}})
	if err == nil {
		t.Fatal("no error")
	}
	if strings.Contains(err.Error(), "route-secret") {
		t.Fatalf("the error shows the hook URL: %v", err)
	}
	if !strings.Contains(err.Error(), "<hook URL>") {
		t.Errorf("the error does not say where the URL was: %v", err)
	}
}
