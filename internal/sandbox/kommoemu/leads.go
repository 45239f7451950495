package kommoemu

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// Kommo's closing statuses, present in every pipeline.
const (
	StatusWon  int64 = 142
	StatusLost int64 = 143
)

// Lead is an emulated lead: its stage and the contacts linked to it.
type Lead struct {
	ID         int64   `json:"id"`
	Name       string  `json:"name"`
	PipelineID int64   `json:"pipeline_id"`
	StatusID   int64   `json:"status_id"`
	ContactIDs []int64 `json:"contact_ids"`
	CreatedAt  int64   `json:"created_at"`
	UpdatedAt  int64   `json:"updated_at"`
}

// DefaultPipelineName is the pipeline every account starts with, with the
// statuses in DefaultStatusNames and then won and lost.
const DefaultPipelineName = "Sales"

// DefaultStatusNames are the open statuses of the default pipeline.
var DefaultStatusNames = []string{"Incoming leads", "Contact made", "Negotiation"}

// AddPipeline adds a pipeline with the named open statuses; Kommo adds won
// (142) and lost (143) to every pipeline.
func (s *Server) AddPipeline(subdomain, name string, statuses []string) (kommo.Pipeline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return kommo.Pipeline{}, err
	}
	return s.addPipeline(a, name, statuses)
}

func (s *Server) addPipeline(a *account, name string, statuses []string) (kommo.Pipeline, error) {
	if strings.TrimSpace(name) == "" {
		return kommo.Pipeline{}, badRequest("a pipeline needs a name")
	}
	p := kommo.Pipeline{ID: s.newID(), Name: name}
	for _, st := range statuses {
		p.Statuses = append(p.Statuses, kommo.PipelineStatus{ID: s.newID(), Name: st})
	}
	p.Statuses = append(p.Statuses, kommo.PipelineStatus{ID: StatusWon, Name: "Closed - won"},
		kommo.PipelineStatus{ID: StatusLost, Name: "Closed - lost"})
	a.pipelines = append(a.pipelines, p)
	return clonePipeline(p), nil
}

// Pipelines returns the account's pipelines.
func (s *Server) Pipelines(subdomain string) ([]kommo.Pipeline, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return nil, err
	}
	out := make([]kommo.Pipeline, len(a.pipelines))
	for i, p := range a.pipelines {
		out[i] = clonePipeline(p)
	}
	return out, nil
}

// CreateLead adds a lead in a pipeline's status, linked to contacts, and
// queues its add_lead delivery. A zero pipeline means the first one and a
// zero status its first status.
func (s *Server) CreateLead(subdomain string, l Lead) (Lead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return Lead{}, err
	}
	if err := a.checkStage(&l.PipelineID, &l.StatusID); err != nil {
		return Lead{}, err
	}
	if err := a.checkContacts(l.ContactIDs); err != nil {
		return Lead{}, err
	}
	l.ID = s.newID()
	l.CreatedAt = s.now().Unix()
	l.UpdatedAt = l.CreatedAt
	l.ContactIDs = slices.Clone(l.ContactIDs)
	a.leads[l.ID] = &l
	s.enqueueLead(a, kommo.LeadEvent{Action: kommo.LeadActionAdd, Lead: l.wire()})
	return l.clone(), nil
}

// MoveLead puts a lead in another status (and pipeline: 0 keeps it) and
// queues its status_lead delivery, with old_status_id and, when the
// pipeline changes, old_pipeline_id (unless Options.OmitOldPipelineID).
func (s *Server) MoveLead(subdomain string, id, pipelineID, statusID int64) (Lead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return Lead{}, err
	}
	l := a.leads[id]
	if l == nil {
		return Lead{}, fmt.Errorf("%w: lead %d", ErrNotFound, id)
	}
	if pipelineID == 0 {
		pipelineID = l.PipelineID
	}
	if err := a.checkStage(&pipelineID, &statusID); err != nil {
		return Lead{}, err
	}
	ev := kommo.LeadEvent{Action: kommo.LeadActionStatus, OldStatusID: l.StatusID}
	if pipelineID != l.PipelineID && !s.opts.OmitOldPipelineID {
		ev.OldPipelineID = l.PipelineID
	}
	l.PipelineID, l.StatusID = pipelineID, statusID
	l.UpdatedAt = max(s.now().Unix(), l.UpdatedAt+1)
	ev.Lead = l.wire()
	s.enqueueLead(a, ev)
	return l.clone(), nil
}

// SetLeadContacts replaces the contacts linked to a lead and queues its
// update_lead delivery.
func (s *Server) SetLeadContacts(subdomain string, id int64, contactIDs []int64) (Lead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return Lead{}, err
	}
	l := a.leads[id]
	if l == nil {
		return Lead{}, fmt.Errorf("%w: lead %d", ErrNotFound, id)
	}
	if err := a.checkContacts(contactIDs); err != nil {
		return Lead{}, err
	}
	l.ContactIDs = slices.Clone(contactIDs)
	l.UpdatedAt = max(s.now().Unix(), l.UpdatedAt+1)
	s.enqueueLead(a, kommo.LeadEvent{Action: kommo.LeadActionUpdate, Lead: l.wire()})
	return l.clone(), nil
}

// DeleteLead removes a lead and queues its delete_lead delivery (id,
// status_id and pipeline_id only, as Kommo's).
func (s *Server) DeleteLead(subdomain string, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return err
	}
	l := a.leads[id]
	if l == nil {
		return fmt.Errorf("%w: lead %d", ErrNotFound, id)
	}
	delete(a.leads, id)
	s.enqueueLead(a, kommo.LeadEvent{Action: kommo.LeadActionDelete,
		Lead: kommo.Lead{ID: l.ID, PipelineID: l.PipelineID, StatusID: l.StatusID}})
	return nil
}

// Leads returns the account's leads by id.
func (s *Server) Leads(subdomain string) ([]Lead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.account(subdomain)
	if err != nil {
		return nil, err
	}
	out := make([]Lead, 0, len(a.leads))
	for _, id := range slices.Sorted(maps.Keys(a.leads)) {
		out = append(out, a.leads[id].clone())
	}
	return out, nil
}

// checkStage fills a zero pipeline (the first) and status (the pipeline's
// first) and refuses ones the account does not have.
func (a *account) checkStage(pipelineID, statusID *int64) error {
	if len(a.pipelines) == 0 {
		return badRequest("the account has no pipeline")
	}
	i := 0
	if *pipelineID != 0 {
		i = slices.IndexFunc(a.pipelines, func(p kommo.Pipeline) bool { return p.ID == *pipelineID })
		if i < 0 {
			return badRequest(fmt.Sprintf("no pipeline %d", *pipelineID))
		}
	}
	p := a.pipelines[i]
	*pipelineID = p.ID
	if *statusID == 0 {
		*statusID = p.Statuses[0].ID
	}
	if !slices.ContainsFunc(p.Statuses, func(st kommo.PipelineStatus) bool { return st.ID == *statusID }) {
		return badRequest(fmt.Sprintf("pipeline %d has no status %d", p.ID, *statusID))
	}
	return nil
}

func (a *account) checkContacts(ids []int64) error {
	for _, id := range ids {
		if a.contacts[id] == nil {
			return fmt.Errorf("%w: contact %d", ErrNotFound, id)
		}
	}
	return nil
}

// leadsByContact indexes the leads by the contacts linked to them, each
// contact's leads by id.
func (a *account) leadsByContact() map[int64][]int64 {
	out := map[int64][]int64{}
	for _, l := range a.leads {
		for _, c := range l.ContactIDs {
			out[c] = append(out[c], l.ID)
		}
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}

// enqueueLead queues a lead change if some enabled hook wants it; the
// caller holds s.mu.
func (s *Server) enqueueLead(a *account, ev kommo.LeadEvent) {
	if !slices.ContainsFunc(a.hooks, func(h *hook) bool { return !h.disabled && h.wantsLead(ev.Action) }) {
		return
	}
	a.deliveries.leads = append(a.deliveries.leads, ev)
	signal(a.deliveries.wake)
}

func (h *hook) wantsLead(action kommo.Action) bool {
	return slices.Contains(h.settings, string(action)+"_lead")
}

func (l *Lead) wire() kommo.Lead {
	return kommo.Lead{ID: l.ID, PipelineID: l.PipelineID, StatusID: l.StatusID}
}

func (l *Lead) clone() Lead {
	c := *l
	c.ContactIDs = slices.Clone(l.ContactIDs)
	return c
}

func clonePipeline(p kommo.Pipeline) kommo.Pipeline {
	p.Statuses = slices.Clone(p.Statuses)
	return p
}

func sortLeads(ls []*Lead) {
	slices.SortFunc(ls, func(x, y *Lead) int { return cmp.Compare(x.ID, y.ID) })
}
