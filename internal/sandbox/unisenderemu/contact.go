package unisenderemu

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// ContactNotFoundMessage is the error message of getContact for an unknown
// address (code invalid_arg). The real wording is unverified.
const ContactNotFoundMessage = "Contact not found"

type contactEmailJSON struct {
	Email        string `json:"email"`
	AddedAt      string `json:"added_at"`
	Status       string `json:"status"`
	Availability string `json:"availability"`
}

type contactListJSON struct {
	ID      int64  `json:"id"`
	Status  string `json:"status"`
	AddedAt string `json:"added_at"`
}

type contactJSON struct {
	Email  contactEmailJSON  `json:"email"`
	Phone  string            `json:"phone,omitempty"`
	Fields map[string]string `json:"fields,omitempty"`
	Lists  []contactListJSON `json:"lists,omitempty"`
	Tags   []string          `json:"tags,omitempty"`
}

// getContact answers the documented shape: {"email":{email, added_at,
// status, availability}}, plus "fields" with include_fields=1, "lists"
// ([{id, status, added_at}], excluded memberships included) with
// include_lists=1, and phone and tags with include_details=1.
func (s *Server) getContact(a *account, form formValues) (any, *apiError) {
	email := strings.TrimSpace(form.Get("email"))
	if email == "" {
		return nil, errInvalidArg("email is required")
	}
	c := a.find(email, "")
	if c == nil {
		return nil, errInvalidArg(ContactNotFoundMessage)
	}
	out := contactJSON{Email: contactEmailJSON{
		Email: c.email, AddedAt: formatTime(c.addedAt), Status: c.status, Availability: c.availabilityOrDefault(),
	}}
	if form.Get("include_fields") == "1" {
		out.Fields = make(map[string]string, len(a.fields))
		for _, f := range a.fields {
			out.Fields[f.name] = c.fields[f.name]
		}
	}
	if form.Get("include_lists") == "1" {
		out.Lists = make([]contactListJSON, 0, len(c.membership))
		for _, l := range a.lists {
			if m := c.membership[l.id]; m != nil {
				out.Lists = append(out.Lists, contactListJSON{ID: l.id, Status: m.status, AddedAt: formatTime(m.addedAt)})
			}
		}
	}
	if form.Get("include_details") == "1" {
		out.Phone, out.Tags = c.phone, slices.Clone(c.tags)
	}
	return out, nil
}

// isContactInLists answers true or false. A contact counts as in a list when
// it has a membership there that is not excluded (an unsubscribed member is
// still in the list; unverified). condition is "or" (default) or "and".
func (s *Server) isContactInLists(a *account, form formValues) (any, *apiError) {
	email := strings.TrimSpace(form.Get("email"))
	if email == "" {
		return nil, errInvalidArg("email is required")
	}
	ids, ok := idList(form.Get("list_ids"))
	if !ok || len(ids) == 0 {
		return nil, errInvalidArg("list_ids is required: comma-separated list ids")
	}
	condition := strings.ToLower(form.Get("condition"))
	if condition == "" {
		condition = "or"
	}
	if condition != "or" && condition != "and" {
		return nil, errInvalidArg(fmt.Sprintf("condition must be or or and, not %q", truncate.Text(condition, 20)))
	}
	c := a.find(email, "")
	in := func(id int64) bool {
		m := c.membership[id]
		return m != nil && m.status != ListExcluded
	}
	if c == nil {
		return false, nil
	}
	if condition == "and" {
		return !slices.ContainsFunc(ids, func(id int64) bool { return !in(id) }), nil
	}
	return slices.ContainsFunc(ids, in), nil
}
