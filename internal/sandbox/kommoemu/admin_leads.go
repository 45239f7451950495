package kommoemu

import (
	"net/http"
	"strconv"
)

// registerAdminLeads mounts the leads part of the admin API:
//
//	GET    /_admin/accounts/{sub}/pipelines      → [kommo.Pipeline]
//	POST   /_admin/accounts/{sub}/pipelines {name, statuses: [names]} → kommo.Pipeline
//	GET    /_admin/accounts/{sub}/leads          → [Lead]
//	POST   /_admin/accounts/{sub}/leads Lead     → Lead
//	PUT    /_admin/accounts/{sub}/leads/{id}/status {pipeline_id, status_id} → Lead
//	PUT    /_admin/accounts/{sub}/leads/{id}/contacts {contact_ids} → Lead
//	DELETE /_admin/accounts/{sub}/leads/{id}
func (s *Server) registerAdminLeads(m *http.ServeMux) {
	m.HandleFunc("GET /_admin/accounts/{sub}/pipelines", func(w http.ResponseWriter, r *http.Request) {
		ps, err := s.Pipelines(r.PathValue("sub"))
		adminAnswer(w, ps, err)
	})
	m.HandleFunc("POST /_admin/accounts/{sub}/pipelines", adminDoSub(func(sub string, req struct {
		Name     string   `json:"name"`
		Statuses []string `json:"statuses"`
	}) (any, error) {
		return s.AddPipeline(sub, req.Name, req.Statuses)
	}))
	m.HandleFunc("GET /_admin/accounts/{sub}/leads", func(w http.ResponseWriter, r *http.Request) {
		ls, err := s.Leads(r.PathValue("sub"))
		adminAnswer(w, ls, err)
	})
	m.HandleFunc("POST /_admin/accounts/{sub}/leads", adminDoSub(func(sub string, req Lead) (any, error) {
		return s.CreateLead(sub, req)
	}))
	m.HandleFunc("PUT /_admin/accounts/{sub}/leads/{id}/status", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			PipelineID int64 `json:"pipeline_id"`
			StatusID   int64 `json:"status_id"`
		}
		if !adminDecode(w, r, &req) {
			return
		}
		l, err := s.MoveLead(r.PathValue("sub"), pathID(r), req.PipelineID, req.StatusID)
		adminAnswer(w, l, err)
	})
	m.HandleFunc("PUT /_admin/accounts/{sub}/leads/{id}/contacts", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ContactIDs []int64 `json:"contact_ids"`
		}
		if !adminDecode(w, r, &req) {
			return
		}
		l, err := s.SetLeadContacts(r.PathValue("sub"), pathID(r), req.ContactIDs)
		adminAnswer(w, l, err)
	})
	m.HandleFunc("DELETE /_admin/accounts/{sub}/leads/{id}", func(w http.ResponseWriter, r *http.Request) {
		adminAnswer(w, nil, s.DeleteLead(r.PathValue("sub"), pathID(r)))
	})
}

// pathID is the {id} of the path; a malformed one is 0, which no lead has.
func pathID(r *http.Request) int64 {
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	return id
}
