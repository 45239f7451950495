// Package sandbox is the `sandbox` subcommand: the Kommo and Unisender
// emulators served standalone, each on its own address, with their admin
// APIs, optionally seeded with one tenant for `make dev` and manual testing.
package sandbox

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

// options are the subcommand's flags.
type options struct {
	kommoListen, unisenderListen string
	accessTokenTTL               time.Duration
	rateLimit                    float64
	batchWindow                  time.Duration
	hookRetry                    time.Duration
	hookMaxAttempts              int
	seed                         seedOptions
}

// seedOptions describe the tenant created at start-up (none without a subdomain).
type seedOptions struct {
	subdomain, clientID, clientSecret, redirectURI, unisenderKey string
	contacts                                                     int
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.StringVar(&o.kommoListen, "kommo-listen", "127.0.0.1:8081", "address of the Kommo emulator (accounts under /_acct/<subdomain>/, admin under /_admin/)")
	fs.StringVar(&o.unisenderListen, "unisender-listen", "127.0.0.1:8082", "address of the Unisender emulator (/en/api/<method>, admin under /_admin/)")
	fs.DurationVar(&o.accessTokenTTL, "access-token-ttl", 24*time.Hour, "lifetime of Kommo access tokens (short values exercise refreshes)")
	fs.Float64Var(&o.rateLimit, "kommo-rate-limit", 7, "Kommo requests per second per account; negative = unlimited")
	fs.DurationVar(&o.batchWindow, "webhook-batch-window", 200*time.Millisecond, "Kommo gathers changes for this long into one webhook delivery")
	fs.DurationVar(&o.hookRetry, "unisender-hook-retry-interval", unisenderemu.DefaultHookRetryInterval, "Unisender retries a failed event hook delivery after this long")
	fs.IntVar(&o.hookMaxAttempts, "unisender-hook-max-attempts", unisenderemu.DefaultHookMaxAttempts, "failed event hook deliveries after which Unisender stops the hook")
	fs.StringVar(&o.seed.subdomain, "seed-subdomain", "", "create this Kommo account at start-up")
	fs.IntVar(&o.seed.contacts, "seed-contacts", 0, "contacts to create in the seeded account")
	fs.StringVar(&o.seed.clientID, "seed-client-id", "", "register this OAuth client")
	fs.StringVar(&o.seed.redirectURI, "seed-redirect-uri", "", "the OAuth client's redirect URI")
	fs.StringVar(&o.seed.unisenderKey, "seed-unisender-key", "", "create a Unisender account with this API key")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	// The client secret comes from the environment so it stays out of `ps`.
	o.seed.clientSecret = os.Getenv("SANDBOX_CLIENT_SECRET")
	return o, nil
}

// Run serves both emulators until ctx ends.
func Run(ctx context.Context, args []string) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	kommo := kommoemu.New(kommoemu.Options{
		AccessTokenTTL: o.accessTokenTTL, RateLimit: o.rateLimit,
		WebhookBatchWindow: o.batchWindow, NextOnFullPage: true,
	})
	defer kommo.Close()
	unisender := unisenderemu.New(unisenderemu.Options{HookRetryInterval: o.hookRetry, HookMaxAttempts: o.hookMaxAttempts})
	defer unisender.Close()
	if err := seed(kommo, unisender, o.seed); err != nil {
		return err
	}
	errc := make(chan error, 2)
	servers := []*http.Server{
		serve(ctx, o.kommoListen, kommo, errc),
		serve(ctx, o.unisenderListen, unisender, errc),
	}
	fmt.Fprintf(os.Stderr, "sandbox: Kommo emulator on http://%s, Unisender emulator on http://%s\n", o.kommoListen, o.unisenderListen)
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shutdown)
	}
	return err
}

func serve(ctx context.Context, addr string, h http.Handler, errc chan<- error) *http.Server {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve %s: %w", addr, err)
		}
	}()
	return srv
}

func seed(k *kommoemu.Server, u *unisenderemu.Server, o seedOptions) error {
	if o.unisenderKey != "" {
		u.AddAPIKey(o.unisenderKey)
	}
	if o.subdomain == "" {
		return nil
	}
	if _, err := k.AddAccount(o.subdomain); err != nil {
		return fmt.Errorf("seed account: %w", err)
	}
	if o.clientID != "" {
		if err := k.RegisterClient(o.clientID, o.clientSecret, o.redirectURI); err != nil {
			return fmt.Errorf("seed OAuth client: %w", err)
		}
	}
	if o.contacts > 0 {
		if err := k.SeedContacts(o.subdomain, o.contacts); err != nil {
			return fmt.Errorf("seed contacts: %w", err)
		}
		if err := k.SeedLeads(o.subdomain); err != nil {
			return fmt.Errorf("seed leads: %w", err)
		}
	}
	return nil
}
