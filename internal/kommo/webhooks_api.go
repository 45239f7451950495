package kommo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// Webhook settings (events) this project subscribes to.
const (
	SettingAddContact    = "add_contact"
	SettingUpdateContact = "update_contact"
	SettingDeleteContact = "delete_contact"
)

// Webhook is a registered webhook. Destination carries the secret that
// authenticates deliveries: show it only through RedactDestination.
type Webhook struct {
	ID          int64    `json:"id"`
	Destination string   `json:"destination"`
	Settings    []string `json:"settings"`
	Disabled    bool     `json:"disabled"`
	Sort        int      `json:"sort"`
	CreatedAt   int64    `json:"created_at"`
	UpdatedAt   int64    `json:"updated_at"`
}

const webhooksPath = "/api/v4/webhooks"

// ListWebhooks returns the account's webhooks, disabled ones included.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	rep, err := c.do(ctx, call{method: "GET", ref: webhooksPath, auth: true})
	if err != nil {
		return nil, err
	}
	if rep.status == http.StatusNoContent {
		return nil, nil
	}
	var list struct {
		Embedded struct {
			Webhooks []Webhook `json:"webhooks"`
		} `json:"_embedded"`
	}
	if err := json.Unmarshal(rep.body, &list); err != nil {
		return nil, fmt.Errorf("kommo: GET %s: decoding answer: %w", webhooksPath, err)
	}
	return list.Embedded.Webhooks, nil
}

// SubscribeWebhook registers destination for the given settings (e.g.
// SettingAddContact). Subscribing an existing destination again replaces its
// settings.
func (c *Client) SubscribeWebhook(ctx context.Context, destination string, settings []string) (*Webhook, error) {
	body, err := json.Marshal(struct {
		Destination string   `json:"destination"`
		Settings    []string `json:"settings"`
	}{destination, settings})
	if err != nil {
		return nil, fmt.Errorf("kommo: subscribe webhook %s: %w", RedactDestination(destination), err)
	}
	rep, err := c.do(ctx, call{method: "POST", ref: webhooksPath, body: body, auth: true, secrets: []string{destination}})
	if err != nil {
		return nil, err
	}
	var w Webhook
	if err := json.Unmarshal(rep.body, &w); err != nil {
		return nil, fmt.Errorf("kommo: subscribe webhook %s: decoding answer: %w", RedactDestination(destination), err)
	}
	return &w, nil
}

// UnsubscribeWebhook removes destination. A destination that is not
// registered counts as removed.
func (c *Client) UnsubscribeWebhook(ctx context.Context, destination string) error {
	body, err := json.Marshal(struct {
		Destination string `json:"destination"`
	}{destination})
	if err != nil {
		return fmt.Errorf("kommo: unsubscribe webhook %s: %w", RedactDestination(destination), err)
	}
	_, err = c.do(ctx, call{method: "DELETE", ref: webhooksPath, body: body, auth: true, secrets: []string{destination}})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// RedactDestination shows a webhook URL without the secret in its path and
// query: "https://hooks.example.com/[redacted]".
func RedactDestination(destination string) string {
	u, err := url.Parse(destination)
	if err != nil || u.Host == "" {
		return "[redacted]"
	}
	if u.Path == "" && u.RawQuery == "" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + "/[redacted]"
}
