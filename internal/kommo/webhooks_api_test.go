package kommo_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
)

func TestWebhookSubscribeListUnsubscribe(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	c := e.client(t)
	ctx := context.Background()
	dest := "https://hooks.example/kommo/webhooks/ns.name/9f8e7d6c5b4a"
	settings := []string{kommo.SettingAddContact, kommo.SettingUpdateContact, kommo.SettingDeleteContact}

	if hooks, err := c.ListWebhooks(ctx); err != nil || len(hooks) != 0 {
		t.Fatalf("empty registry: %v %v", hooks, err)
	}
	w, err := c.SubscribeWebhook(ctx, dest, settings)
	if err != nil {
		t.Fatal(err)
	}
	if w.ID == 0 || w.Destination != dest || !slices.Equal(w.Settings, settings) || w.Disabled {
		t.Errorf("subscribed %+v", w)
	}
	hooks, err := c.ListWebhooks(ctx)
	if err != nil || len(hooks) != 1 || hooks[0].ID != w.ID || !slices.Equal(hooks[0].Settings, settings) {
		t.Fatalf("listing %+v %v", hooks, err)
	}
	if err := c.UnsubscribeWebhook(ctx, dest); err != nil {
		t.Fatal(err)
	}
	if hooks, _ := c.ListWebhooks(ctx); len(hooks) != 0 {
		t.Errorf("after unsubscribe: %+v", hooks)
	}
	if err := c.UnsubscribeWebhook(ctx, dest); err != nil {
		t.Errorf("unsubscribing a gone destination: %v, want nil", err)
	}
	if _, err := c.SubscribeWebhook(ctx, dest, []string{"add_kontact"}); !errors.Is(err, kommo.ErrBadRequest) {
		t.Errorf("unknown setting: %v, want ErrBadRequest", err)
	}
}

func TestRedactDestination(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.example/kommo/webhooks/ns.name/secret": "https://hooks.example/[redacted]",
		"https://user:pw@hooks.example:8443/x?k=secret":       "https://hooks.example:8443/[redacted]",
		"https://hooks.example":                               "https://hooks.example",
		"::not a url":                                         "[redacted]",
	} {
		if got := kommo.RedactDestination(in); got != want {
			t.Errorf("RedactDestination(%q) = %q, want %q", in, got, want)
		}
	}
}

// No error the client returns carries the access token, the client secret,
// the refresh token or the webhook URL's secret.
func TestErrorsNeverCarrySecrets(t *testing.T) {
	e := newEmu(t, kommoemu.Options{})
	ctx := context.Background()
	const hookSecret = "hook-secret-5b4a3c2d"
	dest := "https://hooks.example/kommo/webhooks/ns.name/" + hookSecret
	access := e.longLived(t)
	c := e.client(t, kommo.WithTokenSource(kommo.StaticToken(access)), kommo.WithMaxRetries(1))
	first, err := c.ExchangeCode(ctx, creds, e.code(t))
	if err != nil {
		t.Fatal(err)
	}
	second, _ := c.Refresh(ctx, creds, first.RefreshToken)
	_, _ = e.client(t, kommo.WithTokenSource(kommo.StaticToken(second.AccessToken))).Account(ctx)

	var errs []error
	collect := func(_ any, err error) {
		if err == nil {
			t.Error("expected an error")
		}
		errs = append(errs, err)
	}
	bad := creds
	bad.ClientSecret += "-wrong"
	collect(c.ExchangeCode(ctx, bad, "some-code"))
	collect(c.Refresh(ctx, creds, first.RefreshToken))
	collect(e.client(t, kommo.WithTokenSource(kommo.StaticToken(access+"x"))).Account(ctx))
	collect(c.SubscribeWebhook(ctx, dest, []string{"nonsense"}))
	_ = e.emu.SetBlocked("acme", true)
	collect(c.SubscribeWebhook(ctx, dest, []string{kommo.SettingAddContact}))
	collect(nil, c.UnsubscribeWebhook(ctx, dest))
	_ = e.emu.SetBlocked("acme", false)
	e.srv.Close() // network errors too
	collect(c.SubscribeWebhook(ctx, dest, []string{kommo.SettingAddContact}))
	collect(c.Refresh(ctx, creds, second.RefreshToken))

	for _, err := range errs {
		if err == nil {
			continue
		}
		msg := err.Error()
		for name, secret := range map[string]string{"access token": access, "client secret": clientSecret,
			"refresh token": first.RefreshToken, "second refresh token": second.RefreshToken, "webhook secret": hookSecret} {
			if strings.Contains(msg, secret) {
				t.Errorf("error %q carries the %s", msg, name)
			}
		}
	}
}
