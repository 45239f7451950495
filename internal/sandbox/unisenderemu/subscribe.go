package unisenderemu

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/truncate"
)

// subscribe adds one contact to lists. double_optin: 0 invites (a new
// address becomes invited), 3 adds as active (consent held), 4 keeps a
// new/active address as is and invites the rest. overwrite: 0 only fills
// missing fields and adds tags, 1 replaces all fields and tags and excludes
// the contact from lists not named, 2 replaces the fields passed and adds
// tags. A contact that unsubscribed or was blocked is left untouched, as is
// a list it unsubscribed from; each such call counts a revival attempt.
func (s *Server) subscribe(a *account, form formValues) (any, *apiError) {
	req, aerr := readSubscribe(a, form)
	if aerr != nil {
		return nil, aerr
	}
	now := s.now()
	c := a.find(req.email, req.phone)
	if c != nil && left(c.status) {
		s.stats.revivals++
		return map[string]int64{"person_id": c.id}, nil
	}
	if c == nil {
		c = s.addContact(a, req.email, req.phone, StatusNew)
	}
	c.status = statusAfterSubscribe(c.status, req.doubleOptin)
	refused := false
	for _, id := range req.listIDs {
		refused = c.join(id, now) || refused
	}
	if refused {
		s.stats.revivals++
	}
	if req.overwrite == 1 {
		c.excludeOthers(req.listIDs, now)
	}
	applySubscribedData(a, c, req)
	return map[string]int64{"person_id": c.id}, nil
}

type subscribeRequest struct {
	listIDs      []int64
	email, phone string
	fields       map[string]string // user fields only
	tags         []string
	doubleOptin  int
	overwrite    int
}

func readSubscribe(a *account, form formValues) (subscribeRequest, *apiError) {
	var req subscribeRequest
	ids, ok := idList(form.Get("list_ids"))
	if !ok || len(ids) == 0 {
		return req, errInvalidArg("list_ids is required: comma-separated list ids")
	}
	if id, bad := a.unknownList(ids); bad {
		return req, errInvalidArg(fmt.Sprintf("Unknown list id %d", id))
	}
	req.listIDs = ids
	fields := mapParam(form, "fields")
	req.email, req.phone = strings.TrimSpace(fields["email"]), strings.TrimSpace(fields["phone"])
	delete(fields, "email")
	delete(fields, "phone")
	switch {
	case req.email == "" && req.phone == "":
		return req, errInvalidArg("fields[email] or fields[phone] is required")
	case req.email != "" && !validEmail(req.email):
		return req, errInvalidArg("Invalid email address")
	case req.phone != "" && !validPhone(req.phone):
		return req, errInvalidArg("Invalid phone: want international format like +79261232323")
	}
	for name, v := range fields {
		f := a.fieldByName(name)
		if f == nil {
			return req, errInvalidArg(fmt.Sprintf("Unknown field %q", truncate.Text(name, 60)))
		}
		if !validFieldValue(f.typ, v) {
			return req, errInvalidArg(fmt.Sprintf("Value of %s does not fit type %s", f.name, f.typ))
		}
	}
	req.fields = fields
	if req.tags = tagList(form.Get("tags")); len(req.tags) > MaxTags {
		return req, errInvalidArg(fmt.Sprintf("Too many tags: at most %d", MaxTags))
	}
	var aerr *apiError
	if req.doubleOptin, aerr = choice(form, "double_optin", 0, 3, 4); aerr != nil {
		return req, aerr
	}
	if req.overwrite, aerr = choice(form, "overwrite", 0, 1, 2); aerr != nil {
		return req, aerr
	}
	return req, nil
}

// choice reads an integer argument that must be one of allowed; empty means
// the first.
func choice(form formValues, name string, allowed ...int) (int, *apiError) {
	v := form.Get(name)
	if v == "" {
		return allowed[0], nil
	}
	for _, a := range allowed {
		if v == fmt.Sprint(a) {
			return a, nil
		}
	}
	return 0, errInvalidArg(fmt.Sprintf("%s must be one of %v", name, allowed))
}

func statusAfterSubscribe(status string, doubleOptin int) string {
	switch {
	case doubleOptin == 3 && (status == StatusNew || status == StatusInvited):
		return StatusActive
	case doubleOptin != 3 && status == StatusNew:
		return StatusInvited
	}
	return status
}

func applySubscribedData(a *account, c *contact, req subscribeRequest) {
	switch req.overwrite {
	case 0:
		for name, v := range req.fields {
			if _, has := c.fields[name]; !has && v != "" {
				c.fields[name] = v
			}
		}
		if c.phone == "" {
			a.setPhone(c, req.phone)
		}
		c.addTags(req.tags)
	case 1:
		c.fields = make(map[string]string, len(req.fields))
		for name, v := range req.fields {
			if v != "" {
				c.fields[name] = v
			}
		}
		a.setPhone(c, req.phone)
		c.tags = slices.Clone(req.tags)
	case 2:
		for name, v := range req.fields {
			if v == "" {
				delete(c.fields, name)
			} else {
				c.fields[name] = v
			}
		}
		a.setPhone(c, req.phone)
		c.addTags(req.tags)
	}
}

// exclude removes a contact from lists (all of them without list_ids)
// without unsubscribing it. An unknown contact is not an error: the call is
// idempotent (unverified against the real API).
func (s *Server) exclude(a *account, form formValues) (any, *apiError) {
	return s.leaveLists(a, form, ListExcluded)
}

// unsubscribe marks a contact unsubscribed from the lists named, or
// globally without list_ids; the API cannot undo it.
func (s *Server) unsubscribe(a *account, form formValues) (any, *apiError) {
	return s.leaveLists(a, form, ListUnsubscribed)
}

func (s *Server) leaveLists(a *account, form formValues, status string) (any, *apiError) {
	contactType, value := form.Get("contact_type"), strings.TrimSpace(form.Get("contact"))
	if contactType != "email" && contactType != "phone" {
		return nil, errInvalidArg("contact_type must be email or phone")
	}
	if value == "" {
		return nil, errInvalidArg("contact is required")
	}
	ids, ok := idList(form.Get("list_ids"))
	if !ok {
		return nil, errInvalidArg("list_ids: comma-separated list ids")
	}
	if id, bad := a.unknownList(ids); bad {
		return nil, errInvalidArg(fmt.Sprintf("Unknown list id %d", id))
	}
	var c *contact
	if contactType == "email" {
		c = a.find(value, "")
	} else {
		c = a.find("", value)
	}
	if c != nil {
		leave(c, ids, status, s.now())
	}
	return struct{}{}, nil
}

func leave(c *contact, ids []int64, status string, now time.Time) {
	if len(ids) == 0 {
		if status == ListUnsubscribed && !left(c.status) {
			c.status = StatusUnsubscribed
		}
		for id := range c.membership {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		c.setListStatus(id, status, now)
	}
}
