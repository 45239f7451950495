package kommo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// Lead is a Kommo lead (deal) with its stage and, when listed with its
// contacts, the ids of the contacts linked to it.
type Lead struct {
	ID         int64
	PipelineID int64
	StatusID   int64
	ContactIDs []int64
}

// Pipeline is a lead pipeline with its statuses (142 won and 143 lost
// included).
type Pipeline struct {
	ID       int64
	Name     string
	Statuses []PipelineStatus
}

// PipelineStatus is one stage of a pipeline.
type PipelineStatus struct {
	ID   int64
	Name string
}

type v4Lead struct {
	ID         int64 `json:"id"`
	PipelineID int64 `json:"pipeline_id"`
	StatusID   int64 `json:"status_id"`
	Embedded   struct {
		Contacts []struct {
			ID int64 `json:"id"`
		} `json:"contacts"`
	} `json:"_embedded"`
}

type leadsPage struct {
	Links    pageLinks `json:"_links"`
	Embedded struct {
		Leads []v4Lead `json:"leads"`
	} `json:"_embedded"`
}

// ListLeads streams the leads ids names (at most MaxPageLimit), with their
// contacts, page by page to fn. Leads Kommo does not have (deleted) are not
// listed.
func (c *Client) ListLeads(ctx context.Context, ids []int64, fn func(page []Lead) error) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > MaxPageLimit {
		return fmt.Errorf("kommo: list leads: %d ids, at most %d per listing", len(ids), MaxPageLimit)
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(MaxPageLimit))
	q.Set("page", "1")
	q.Set("with", "contacts")
	for _, id := range ids {
		q.Add("filter[id][]", strconv.FormatInt(id, 10))
	}
	return c.listPages(ctx, "/api/v4/leads?"+q.Encode(), func(body []byte) (string, error) {
		var p leadsPage
		if err := json.Unmarshal(body, &p); err != nil {
			return "", fmt.Errorf("kommo: GET /api/v4/leads: decoding page: %w", err)
		}
		if len(p.Embedded.Leads) == 0 {
			return "", nil
		}
		page := make([]Lead, len(p.Embedded.Leads))
		for i, v := range p.Embedded.Leads {
			page[i] = Lead{ID: v.ID, PipelineID: v.PipelineID, StatusID: v.StatusID}
			for _, ct := range v.Embedded.Contacts {
				page[i].ContactIDs = append(page[i].ContactIDs, ct.ID)
			}
		}
		return p.Links.Next.Href, fn(page)
	})
}

type pipelinesAnswer struct {
	Embedded struct {
		Pipelines []struct {
			ID       int64  `json:"id"`
			Name     string `json:"name"`
			Embedded struct {
				Statuses []struct {
					ID   int64  `json:"id"`
					Name string `json:"name"`
				} `json:"statuses"`
			} `json:"_embedded"`
		} `json:"pipelines"`
	} `json:"_embedded"`
}

// Pipelines reads GET /api/v4/leads/pipelines: every pipeline of the
// account with its statuses.
func (c *Client) Pipelines(ctx context.Context) ([]Pipeline, error) {
	rep, err := c.do(ctx, call{method: "GET", ref: "/api/v4/leads/pipelines", auth: true})
	if err != nil {
		return nil, err
	}
	if rep.status == http.StatusNoContent {
		return nil, nil
	}
	var a pipelinesAnswer
	if err := json.Unmarshal(rep.body, &a); err != nil {
		return nil, fmt.Errorf("kommo: GET /api/v4/leads/pipelines: decoding answer: %w", err)
	}
	out := make([]Pipeline, len(a.Embedded.Pipelines))
	for i, p := range a.Embedded.Pipelines {
		out[i] = Pipeline{ID: p.ID, Name: p.Name}
		for _, s := range p.Embedded.Statuses {
			out[i].Statuses = append(out[i].Statuses, PipelineStatus{ID: s.ID, Name: s.Name})
		}
	}
	return out, nil
}
