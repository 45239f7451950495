package kommoemu

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

type v4Lead struct {
	ID         int64           `json:"id"`
	Name       string          `json:"name"`
	Price      int64           `json:"price"`
	PipelineID int64           `json:"pipeline_id"`
	StatusID   int64           `json:"status_id"`
	CreatedAt  int64           `json:"created_at"`
	UpdatedAt  int64           `json:"updated_at"`
	AccountID  int64           `json:"account_id"`
	Links      map[string]link `json:"_links"`
	Embedded   map[string]any  `json:"_embedded"`
}

type v4LinkedContact struct {
	ID     int64           `json:"id"`
	IsMain bool            `json:"is_main"`
	Links  map[string]link `json:"_links"`
}

// v4LeadRef is a lead as GET /api/v4/contacts?with=leads embeds it: the id
// and a link, not the stage (the reference's best guess).
type v4LeadRef struct {
	ID    int64           `json:"id"`
	Links map[string]link `json:"_links"`
}

// serveLeads is GET /api/v4/leads: page, limit, filter[id][] and
// with=contacts (the linked contacts, the first one main); 204 when empty.
func (s *Server) serveLeads(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	q := r.URL.Query()
	lq, errs := parseListQuery(q)
	if len(errs) > 0 {
		writeValidation(w, errs...)
		return
	}
	withContacts := slices.Contains(strings.Split(q.Get("with"), ","), "contacts")
	s.mu.Lock()
	var all []*Lead
	for _, l := range r.acct.leads {
		if lq.filter.ids == nil || lq.filter.ids[l.ID] {
			all = append(all, l)
		}
	}
	sortLeads(all)
	from := min((lq.page-1)*lq.limit, len(all))
	to := min(from+lq.limit, len(all))
	leads := make([]v4Lead, 0, to-from)
	for _, l := range all[from:to] {
		leads = append(leads, renderLead(r, l, withContacts))
	}
	s.mu.Unlock()
	if len(leads) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	links := map[string]link{"self": {listURL(r, "/api/v4/leads", q, lq.page)}}
	if to < len(all) {
		links["next"] = link{listURL(r, "/api/v4/leads", q, lq.page+1)}
	}
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_page": lq.page, "_links": links, "_embedded": map[string]any{"leads": leads},
	})
}

func renderLead(r *request, l *Lead, withContacts bool) v4Lead {
	v := v4Lead{ID: l.ID, Name: l.Name, PipelineID: l.PipelineID, StatusID: l.StatusID,
		CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt, AccountID: r.acct.ID,
		Links:    map[string]link{"self": {r.base + "/api/v4/leads/" + strconv.FormatInt(l.ID, 10)}},
		Embedded: map[string]any{"tags": []any{}, "companies": []any{}},
	}
	if withContacts {
		contacts := make([]v4LinkedContact, len(l.ContactIDs))
		for i, id := range l.ContactIDs {
			contacts[i] = v4LinkedContact{ID: id, IsMain: i == 0,
				Links: map[string]link{"self": {r.base + "/api/v4/contacts/" + strconv.FormatInt(id, 10)}}}
		}
		v.Embedded["contacts"] = contacts
	}
	return v
}

// servePipelines is GET /api/v4/leads/pipelines.
func (s *Server) servePipelines(w http.ResponseWriter, r *request) {
	if !s.authenticate(w, r) {
		return
	}
	s.mu.Lock()
	pipelines := make([]map[string]any, len(r.acct.pipelines))
	for i, p := range r.acct.pipelines {
		statuses := make([]map[string]any, len(p.Statuses))
		for j, st := range p.Statuses {
			typ := 0
			if j == 0 {
				typ = 1 // the first status takes unsorted leads
			}
			statuses[j] = map[string]any{"id": st.ID, "name": st.Name, "sort": 10 * (j + 1),
				"is_editable": st.ID != StatusWon && st.ID != StatusLost, "pipeline_id": p.ID, "type": typ, "account_id": r.acct.ID}
		}
		pipelines[i] = map[string]any{"id": p.ID, "name": p.Name, "sort": i + 1, "is_main": i == 0,
			"is_unsorted_on": true, "is_archive": false, "account_id": r.acct.ID,
			"_embedded": map[string]any{"statuses": statuses}}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, halJSON, map[string]any{
		"_total_items": len(pipelines),
		"_links":       map[string]link{"self": {r.base + "/api/v4/leads/pipelines"}},
		"_embedded":    map[string]any{"pipelines": pipelines},
	})
}

// leadRefs are the contact's leads as with=leads embeds them.
func leadRefs(r *request, ids []int64) []v4LeadRef {
	out := make([]v4LeadRef, len(ids))
	for i, id := range ids {
		out[i] = v4LeadRef{ID: id, Links: map[string]link{"self": {r.base + "/api/v4/leads/" + strconv.FormatInt(id, 10)}}}
	}
	return out
}

// listURL is the absolute link to another page of the same listing.
func listURL(r *request, path string, q url.Values, pageNo int) string {
	next := maps.Clone(q)
	next.Set("page", strconv.Itoa(pageNo))
	return r.base + path + "?" + next.Encode()
}
