package unisender

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// List is a mailing list.
type List struct {
	ID    int64
	Title string
}

// Field is a user field.
type Field struct {
	ID   int64
	Name string
	Type string // string, text, number, date or bool
}

// Validate checks that the key works with one cheap call (getLists).
func (c *Client) Validate(ctx context.Context) error {
	_, err := c.GetLists(ctx)
	return err
}

// GetLists returns the account's lists.
func (c *Client) GetLists(ctx context.Context) ([]List, error) {
	var rows []struct {
		ID    flexInt `json:"id"`
		Title string  `json:"title"`
	}
	if _, err := c.call(ctx, "getLists", url.Values{}, c.maxRetries, &rows); err != nil {
		return nil, err
	}
	out := make([]List, len(rows))
	for i, r := range rows {
		out[i] = List{ID: int64(r.ID), Title: r.Title}
	}
	return out, nil
}

// CreateList creates a list and returns its id. Titles are unique. If an
// attempt failed transiently and the retry is refused as a duplicate, the
// first attempt got through without its answer: the id of the list with
// that title is returned.
func (c *Client) CreateList(ctx context.Context, title string) (int64, error) {
	var res struct {
		ID flexInt `json:"id"`
	}
	o, err := c.call(ctx, "createList", url.Values{"title": {title}}, c.maxRetries, &res)
	if err != nil && o.retried && errors.Is(err, ErrInvalidArgument) {
		if id, found := c.findList(ctx, title); found {
			return id, nil
		}
	}
	if err != nil {
		return 0, err
	}
	return int64(res.ID), nil
}

func (c *Client) findList(ctx context.Context, title string) (int64, bool) {
	lists, err := c.GetLists(ctx)
	if err != nil {
		return 0, false
	}
	for _, l := range lists {
		if l.Title == strings.TrimSpace(title) {
			return l.ID, true
		}
	}
	return 0, false
}

// GetFields returns the account's user fields.
func (c *Client) GetFields(ctx context.Context) ([]Field, error) {
	var rows []struct {
		ID   flexInt `json:"id"`
		Name string  `json:"name"`
		Type string  `json:"type"`
	}
	if _, err := c.call(ctx, "getFields", url.Values{}, c.maxRetries, &rows); err != nil {
		return nil, err
	}
	out := make([]Field, len(rows))
	for i, r := range rows {
		out[i] = Field{ID: int64(r.ID), Name: r.Name, Type: r.Type}
	}
	return out, nil
}

// CreateField creates a user field (name: Latin letters, digits, _ and -,
// starting with a letter; fieldType: string, text, number, date or bool)
// and returns its id. Like CreateList, a duplicate refusal after a lost
// answer returns the id of the field with that name.
func (c *Client) CreateField(ctx context.Context, name, fieldType string) (int64, error) {
	var res struct {
		ID flexInt `json:"id"`
	}
	o, err := c.call(ctx, "createField", url.Values{"name": {name}, "type": {fieldType}}, c.maxRetries, &res)
	if err != nil && o.retried && errors.Is(err, ErrInvalidArgument) {
		if fields, ferr := c.GetFields(ctx); ferr == nil {
			for _, f := range fields {
				if f.Name == name {
					return f.ID, nil
				}
			}
		}
	}
	if err != nil {
		return 0, err
	}
	return int64(res.ID), nil
}

// SubscribeRequest are the arguments of subscribe.
type SubscribeRequest struct {
	ListIDs []int64
	// Fields are fields[…]: "email" and/or "phone", plus user fields by name.
	Fields map[string]string
	Tags   []string
	// DoubleOptin: 0 sends an invitation, 3 adds without a letter (consent
	// held), 4 adds if already new/active, else invites.
	DoubleOptin int
	// Overwrite: 0 adds, 1 replaces all fields and tags and removes from
	// other lists (never use it on someone who left), 2 replaces the passed
	// fields only.
	Overwrite int
}

// Subscribe adds one contact to lists and returns its person id.
func (c *Client) Subscribe(ctx context.Context, req SubscribeRequest) (int64, error) {
	form := url.Values{
		"list_ids":     {joinIDs(req.ListIDs)},
		"double_optin": {strconv.Itoa(req.DoubleOptin)},
		"overwrite":    {strconv.Itoa(req.Overwrite)},
	}
	setMap(form, "fields", req.Fields)
	if len(req.Tags) > 0 {
		form.Set("tags", strings.Join(req.Tags, ","))
	}
	var res struct {
		PersonID flexInt `json:"person_id"`
	}
	if _, err := c.call(ctx, "subscribe", form, c.maxRetries, &res); err != nil {
		return 0, err
	}
	return int64(res.PersonID), nil
}

// Contact types for Exclude.
const (
	ContactEmail = "email"
	ContactPhone = "phone"
)

// Exclude removes a contact (contactType ContactEmail or ContactPhone) from
// listIDs, or from all lists when listIDs is empty, without unsubscribing
// it: it can be added again.
func (c *Client) Exclude(ctx context.Context, contactType, contact string, listIDs []int64) error {
	form := url.Values{"contact_type": {contactType}, "contact": {contact}}
	if len(listIDs) > 0 {
		form.Set("list_ids", joinIDs(listIDs))
	}
	_, err := c.call(ctx, "exclude", form, c.maxRetries, nil)
	return err
}

// GetContactOptions choose the optional parts of getContact.
type GetContactOptions struct {
	IncludeLists   bool
	IncludeFields  bool
	IncludeDetails bool
}

// Contact is what getContact reports.
type Contact struct {
	Email  string
	Status string // global: new, invited, active, inactive, unsubscribed, blocked, activation_requested
	// Availability: available, unreachable, temp_unreachable, mailbox_full,
	// spam_rejected or spam_folder.
	Availability string
	Lists        []ListMembership
	Fields       map[string]string
	// Tags are the contact's tags, with IncludeDetails (an array or a
	// comma-separated string: which one Unisender sends is unverified).
	Tags []string
}

// ListMembership is a contact's status in one list.
type ListMembership struct {
	ID     int64
	Status string
}

// GetContact returns one contact. An unknown address gives an error that
// matches ErrContactNotFound.
func (c *Client) GetContact(ctx context.Context, email string, opts GetContactOptions) (*Contact, error) {
	form := url.Values{
		"email":           {email},
		"include_lists":   {boolArg(opts.IncludeLists)},
		"include_fields":  {boolArg(opts.IncludeFields)},
		"include_details": {boolArg(opts.IncludeDetails)},
	}
	var res struct {
		Email struct {
			Email        string `json:"email"`
			Status       string `json:"status"`
			Availability string `json:"availability"`
		} `json:"email"`
		Fields flexMap `json:"fields"`
		Lists  []struct {
			ID     flexInt `json:"id"`
			Status string  `json:"status"`
		} `json:"lists"`
		Tags flexList `json:"tags"`
	}
	if _, err := c.call(ctx, "getContact", form, c.maxRetries, &res); err != nil {
		return nil, err
	}
	out := &Contact{Email: res.Email.Email, Status: res.Email.Status, Availability: res.Email.Availability, Fields: map[string]string(res.Fields), Tags: res.Tags}
	for _, l := range res.Lists {
		out.Lists = append(out.Lists, ListMembership{ID: int64(l.ID), Status: l.Status})
	}
	return out, nil
}
