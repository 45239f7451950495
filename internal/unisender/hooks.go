package unisender

import (
	"context"
	"net/url"
	"strconv"
	"strings"
)

// Hook is a setHook registration. URL carries the secret that
// authenticates deliveries: never log it.
type Hook struct {
	URL         string
	Events      []string
	EventFormat string // json_post or http_get (unverified values)
}

// SetHook registers (or replaces: same URL) the account's event hook and
// makes it active, which restarts a hook Unisender stopped after failed
// deliveries.
func (c *Client) SetHook(ctx context.Context, h Hook) error {
	form := url.Values{"hook_url": {h.URL}, "status": {"active"}}
	if h.EventFormat != "" {
		form.Set("event_format", h.EventFormat)
	}
	for i, e := range h.Events {
		form.Set("events["+strconv.Itoa(i)+"]", e)
	}
	_, err := c.call(ctx, "setHook", form, c.maxRetries, nil)
	if err != nil {
		// Unisender's message might quote the URL, whose path holds a secret.
		msg := strings.ReplaceAll(err.Error(), h.URL, "<hook URL>")
		return &hookError{err: err, msg: "registering the Unisender event hook: " + msg}
	}
	return nil
}

// hookError is a setHook failure whose message leaves the hook URL out;
// Unwrap keeps it classifiable (IsTransient, IsPermanentForTenant).
type hookError struct {
	err error
	msg string
}

func (e *hookError) Error() string { return e.msg }
func (e *hookError) Unwrap() error { return e.err }

// MaxExportPage is the most contacts one legacy exportContacts call returns.
const MaxExportPage = 1000

// ExportedContact is one row of exportContacts.
type ExportedContact struct {
	Email        string
	Status       string // global e-mail status
	Availability string
}

// ExportList streams the contacts of a list (legacy, synchronous
// exportContacts with list_id, pages of MaxExportPage) with their e-mail
// status and availability to fn.
func (c *Client) ExportList(ctx context.Context, listID int64, fn func(page []ExportedContact) error) error {
	for offset := 0; ; offset += MaxExportPage {
		form := url.Values{
			"list_id": {strconv.FormatInt(listID, 10)}, "offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(MaxExportPage)},
			"field_names[0]": {"email"}, "field_names[1]": {"email_status"}, "field_names[2]": {"email_availability"},
		}
		var res struct {
			FieldNames []string       `json:"field_names"`
			Data       [][]flexString `json:"data"`
		}
		if _, err := c.call(ctx, "exportContacts", form, c.maxRetries, &res); err != nil {
			return err
		}
		page := exportedRows(res.FieldNames, res.Data)
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if len(res.Data) < MaxExportPage {
			return nil
		}
	}
}

// exportedRows reads the rows by the columns' names, in whatever order
// Unisender sends them.
func exportedRows(names []string, data [][]flexString) []ExportedContact {
	col := map[string]int{}
	for i, n := range names {
		col[strings.ToLower(n)] = i
	}
	cell := func(row []flexString, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return string(row[i])
		}
		return ""
	}
	out := make([]ExportedContact, 0, len(data))
	for _, row := range data {
		if e := cell(row, "email"); e != "" {
			out = append(out, ExportedContact{Email: e, Status: cell(row, "email_status"), Availability: cell(row, "email_availability")})
		}
	}
	return out
}
