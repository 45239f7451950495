package kommo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// ContactField is one of the account's contact custom fields.
type ContactField struct {
	ID   int64
	Name string
	Type string // text, select, …
	Code string // EMAIL, PHONE; empty for user fields
}

type v4ContactField struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Code string `json:"code"`
}

type contactFieldsPage struct {
	Links    pageLinks `json:"_links"`
	Embedded struct {
		Fields []v4ContactField `json:"custom_fields"`
	} `json:"_embedded"`
}

const contactFieldsPath = "/api/v4/contacts/custom_fields"

// ContactFields lists the account's contact custom fields, page by page.
func (c *Client) ContactFields(ctx context.Context) ([]ContactField, error) {
	var out []ContactField
	err := c.listPages(ctx, contactFieldsPath+"?limit=50&page=1", func(body []byte) (string, error) {
		var p contactFieldsPage
		if err := json.Unmarshal(body, &p); err != nil {
			return "", fmt.Errorf("kommo: GET %s: decoding page: %w", contactFieldsPath, err)
		}
		for _, f := range p.Embedded.Fields {
			out = append(out, ContactField(f))
		}
		if len(p.Embedded.Fields) == 0 {
			return "", nil
		}
		return p.Links.Next.Href, nil
	})
	return out, err
}

// EnsureTextField returns the id of the contact custom field named name
// (compared without case), creating it as a text field when the account
// has none.
func (c *Client) EnsureTextField(ctx context.Context, name string) (int64, error) {
	fields, err := c.ContactFields(ctx)
	if err != nil {
		return 0, err
	}
	for _, f := range fields {
		if strings.EqualFold(strings.TrimSpace(f.Name), strings.TrimSpace(name)) {
			return f.ID, nil
		}
	}
	return c.createTextField(ctx, name)
}

func (c *Client) createTextField(ctx context.Context, name string) (int64, error) {
	body, err := json.Marshal([]map[string]string{{"type": "text", "name": name}})
	if err != nil {
		return 0, fmt.Errorf("kommo: POST %s: %w", contactFieldsPath, err)
	}
	rep, err := c.do(ctx, call{method: "POST", ref: contactFieldsPath, body: body, auth: true})
	if err != nil {
		return 0, err
	}
	var p contactFieldsPage
	if err := json.Unmarshal(rep.body, &p); err != nil || len(p.Embedded.Fields) != 1 || p.Embedded.Fields[0].ID == 0 {
		return 0, fmt.Errorf("kommo: POST %s: the answer names no created field", contactFieldsPath)
	}
	return p.Embedded.Fields[0].ID, nil
}
