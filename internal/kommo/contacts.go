package kommo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// MaxPageLimit is the largest page Kommo serves.
const MaxPageLimit = 250

// Orders accepted by ListContactsOptions.Order.
const (
	OrderUpdatedAsc  = "updated_at:asc"
	OrderUpdatedDesc = "updated_at:desc"
	OrderIDAsc       = "id:asc"
	OrderIDDesc      = "id:desc"
	OrderCreatedAsc  = "created_at:asc"
	OrderCreatedDesc = "created_at:desc"
)

// ListContactsOptions selects and orders contacts.
type ListContactsOptions struct {
	UpdatedFrom int64   // unix seconds, inclusive; 0 = no lower bound
	UpdatedTo   int64   // unix seconds, inclusive; 0 = no upper bound
	IDs         []int64 // only these contacts; nil = all
	Order       string  // "field:asc|desc" with field updated_at, id or created_at; "" = Kommo's default
	Limit       int     // page size; 0 or more than MaxPageLimit means MaxPageLimit
	// WithLeads asks for each contact's lead ids (with=leads): Contact.LeadIDs.
	WithLeads bool
	// Query is Kommo's full-text search (query=): it matches contacts by
	// any field, loosely, so callers check what it returns.
	Query string
}

func (o ListContactsOptions) query() (url.Values, error) {
	q := url.Values{}
	limit := o.Limit
	if limit <= 0 || limit > MaxPageLimit {
		limit = MaxPageLimit
	}
	q.Set("limit", strconv.Itoa(limit))
	q.Set("page", "1")
	if o.UpdatedFrom > 0 {
		q.Set("filter[updated_at][from]", strconv.FormatInt(o.UpdatedFrom, 10))
	}
	if o.UpdatedTo > 0 {
		q.Set("filter[updated_at][to]", strconv.FormatInt(o.UpdatedTo, 10))
	}
	for _, id := range o.IDs {
		q.Add("filter[id][]", strconv.FormatInt(id, 10))
	}
	if o.WithLeads {
		q.Set("with", "leads")
	}
	if o.Query != "" {
		q.Set("query", o.Query)
	}
	if o.Order != "" {
		field, dir, ok := strings.Cut(o.Order, ":")
		if !ok || (field != "updated_at" && field != "id" && field != "created_at") || (dir != "asc" && dir != "desc") {
			return nil, fmt.Errorf("kommo: list contacts: order %q is not field:asc|desc with field updated_at, id or created_at", o.Order)
		}
		q.Set("order["+field+"]", dir)
	}
	return q, nil
}

// ListContacts streams the selected contacts page by page to fn, following
// _links.next until it is absent. An empty page (HTTP 204) ends the listing,
// including an empty first page. An error from fn stops the listing and is
// returned as is.
func (c *Client) ListContacts(ctx context.Context, opts ListContactsOptions, fn func(page []Contact) error) error {
	q, err := opts.query()
	if err != nil {
		return err
	}
	return c.listPages(ctx, "/api/v4/contacts?"+q.Encode(), func(body []byte) (string, error) {
		var p contactsPage
		if err := json.Unmarshal(body, &p); err != nil {
			return "", fmt.Errorf("kommo: GET /api/v4/contacts: decoding page: %w", err)
		}
		if len(p.Embedded.Contacts) == 0 {
			return "", nil
		}
		page := make([]Contact, len(p.Embedded.Contacts))
		for i, v := range p.Embedded.Contacts {
			page[i] = v.toContact()
		}
		return p.Links.Next.Href, fn(page)
	})
}

// listPages GETs ref and the pages its answers link to (_links.next) until
// one has no next link or is empty (HTTP 204). page decodes one answer and
// returns the next link ("" ends the listing); its error stops the listing
// and is returned as is.
func (c *Client) listPages(ctx context.Context, ref string, page func(body []byte) (next string, err error)) error {
	for ref != "" {
		rep, err := c.do(ctx, call{method: "GET", ref: ref, auth: true})
		if err != nil {
			return err
		}
		if rep.status == http.StatusNoContent {
			return nil
		}
		next, err := page(rep.body)
		if err != nil {
			return err
		}
		if next == ref {
			path, _, _ := strings.Cut(ref, "?")
			return fmt.Errorf("kommo: GET %s: next link repeats the current page", path)
		}
		ref = next
	}
	return nil
}

// GetContact reads one contact. A missing one gives ErrNotFound (Kommo
// answers 204 or 404 for it).
func (c *Client) GetContact(ctx context.Context, id int64) (*Contact, error) {
	path := "/api/v4/contacts/" + strconv.FormatInt(id, 10)
	rep, err := c.do(ctx, call{method: "GET", ref: path, auth: true})
	if err != nil {
		return nil, err
	}
	if rep.status == http.StatusNoContent {
		return nil, &APIError{Op: "GET " + path, Status: rep.status, Kind: KindNotFound, Detail: "no such contact"}
	}
	var v v4Contact
	if err := json.Unmarshal(rep.body, &v); err != nil {
		return nil, fmt.Errorf("kommo: GET %s: decoding answer: %w", path, err)
	}
	ct := v.toContact()
	return &ct, nil
}
