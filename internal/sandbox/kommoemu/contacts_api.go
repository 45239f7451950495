package kommoemu

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

const halJSON = "application/hal+json"

type link struct {
	Href string `json:"href"`
}

// v4Contact is a contact in API v4's shape.
type v4Contact struct {
	ID                 int64           `json:"id"`
	Name               string          `json:"name"`
	FirstName          string          `json:"first_name"`
	LastName           string          `json:"last_name"`
	ResponsibleUserID  int64           `json:"responsible_user_id"`
	GroupID            int64           `json:"group_id"`
	CreatedBy          int64           `json:"created_by"`
	UpdatedBy          int64           `json:"updated_by"`
	CreatedAt          int64           `json:"created_at"`
	UpdatedAt          int64           `json:"updated_at"`
	ClosestTaskAt      *int64          `json:"closest_task_at"`
	IsDeleted          bool            `json:"is_deleted"`
	IsUnsorted         bool            `json:"is_unsorted"`
	CustomFieldsValues []v4Field       `json:"custom_fields_values"` // null when none, as Kommo sends
	AccountID          int64           `json:"account_id"`
	Links              map[string]link `json:"_links"`
	Embedded           v4ContactEmbeds `json:"_embedded"`
}

type v4ContactEmbeds struct {
	Tags      []v4Tag     `json:"tags"`
	Companies []any       `json:"companies"`
	Leads     []v4LeadRef `json:"leads,omitempty"` // with=leads only
}

type v4Tag struct {
	ID    int64   `json:"id"`
	Name  string  `json:"name"`
	Color *string `json:"color"`
}

type v4Field struct {
	FieldID   int64     `json:"field_id"`
	FieldName string    `json:"field_name"`
	FieldCode *string   `json:"field_code"`
	FieldType string    `json:"field_type"`
	Values    []v4Value `json:"values"`
}

type v4Value struct {
	Value    string `json:"value"`
	EnumID   int64  `json:"enum_id,omitempty"`
	EnumCode string `json:"enum_code,omitempty"`
}

// renderContact converts a stored contact; the caller holds s.mu.
func renderContact(a *account, c *kommo.Contact, base string) v4Contact {
	v := v4Contact{
		ID: c.ID, Name: c.Name, FirstName: c.FirstName, LastName: c.LastName,
		ResponsibleUserID: c.ResponsibleUserID, CreatedBy: c.ResponsibleUserID, UpdatedBy: c.ResponsibleUserID,
		CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, AccountID: c.AccountID,
		Links:    map[string]link{"self": {base + "/api/v4/contacts/" + strconv.FormatInt(c.ID, 10)}},
		Embedded: v4ContactEmbeds{Tags: []v4Tag{}, Companies: []any{}},
	}
	for _, f := range c.CustomFields {
		vf := v4Field{FieldID: f.ID, FieldName: f.Name, FieldType: "text", Values: []v4Value{}}
		if f.Code != "" {
			code := f.Code
			vf.FieldCode, vf.FieldType = &code, "multitext"
		}
		for _, val := range f.Values {
			vf.Values = append(vf.Values, v4Value{Value: val.Value, EnumID: val.EnumID, EnumCode: val.EnumCode})
		}
		v.CustomFieldsValues = append(v.CustomFieldsValues, vf)
	}
	for _, t := range c.Tags {
		v.Embedded.Tags = append(v.Embedded.Tags, v4Tag{ID: a.tags[t], Name: t})
	}
	return v
}

// serveContacts is GET /api/v4/contacts: a HAL page, 204 when empty.
func (s *Server) serveContacts(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	q := r.URL.Query()
	lq, errs := parseListQuery(q)
	if len(errs) > 0 {
		writeValidation(w, errs...)
		return
	}
	s.mu.Lock()
	items, more := page(r.acct.sorted(lq.order), lq.filter, lq.page, lq.limit)
	contacts := make([]v4Contact, len(items))
	var leads map[int64][]int64
	if slices.Contains(strings.Split(q.Get("with"), ","), "leads") {
		leads = r.acct.leadsByContact()
	}
	for i, c := range items {
		contacts[i] = renderContact(r.acct, c, r.base)
		if leads != nil {
			contacts[i].Embedded.Leads = leadRefs(r, leads[c.ID])
		}
	}
	s.mu.Unlock()
	if len(contacts) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	links := map[string]link{"self": {pageURL(r, q, lq.page)}}
	if more || (s.opts.NextOnFullPage && len(contacts) == lq.limit) {
		links["next"] = link{pageURL(r, q, lq.page+1)}
	}
	if lq.page > 1 {
		links["prev"] = link{pageURL(r, q, lq.page-1)}
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_page":     lq.page,
		"_links":    links,
		"_embedded": map[string]any{"contacts": contacts},
	})
}

// pageURL is the absolute link to another page of the same listing.
func pageURL(r *request, q url.Values, pageNo int) string {
	return listURL(r, "/api/v4/contacts", q, pageNo)
}

// serveContact is GET /api/v4/contacts/{id}. Like Kommo's v4 API it answers
// 204 for an id with no contact (deleted, a company's, or never there).
func (s *Server) serveContact(w http.ResponseWriter, r *request) {
	id, err := strconv.ParseInt(strings.TrimPrefix(r.path, "/api/v4/contacts/"), 10, 64)
	if err != nil {
		writeProblem(w, http.StatusNotFound, "Not found", "no such endpoint", "")
		return
	}
	if !s.authenticate(w, r) {
		return
	}
	s.mu.Lock()
	c := r.acct.contacts[id]
	var v v4Contact
	if c != nil {
		v = renderContact(r.acct, c, r.base)
	}
	s.mu.Unlock()
	if c == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, halJSON, v)
}

// serveAccount is GET /api/v4/account.
func (s *Server) serveAccount(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"id": r.acct.ID, "name": r.acct.Name, "subdomain": r.acct.Subdomain,
		"country": "ES", "currency": "EUR", "currency_symbol": "€", "customers_mode": "disabled",
		"is_unsorted_on": true, "is_technical_account": false, "contact_name_display_order": 1,
		"_links": map[string]link{"self": {r.base + "/api/v4/account"}},
	})
}
