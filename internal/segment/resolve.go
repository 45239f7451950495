package segment

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
)

// UnresolvedError says which pipeline or status of a selector the account
// does not have, and which it has: the binding shows it as a condition.
type UnresolvedError struct{ msg string }

func (e *UnresolvedError) Error() string { return e.msg }

// Resolve turns spec.selector.leads into ids with the account's pipelines
// (GET /api/v4/leads/pipelines). Names are compared case-insensitively;
// a name or id the account does not have is an UnresolvedError naming the
// ones it has. Won (142) and lost (143) are statuses of every pipeline.
func Resolve(sel *v1alpha1.LeadSelector, pipelines []kommo.Pipeline) ([]v1alpha1.ResolvedPipeline, error) {
	out := make([]v1alpha1.ResolvedPipeline, 0, len(sel.Pipelines))
	for _, want := range sel.Pipelines {
		i := slices.IndexFunc(pipelines, func(p kommo.Pipeline) bool {
			return (want.ID != 0 && p.ID == want.ID) || (want.Name != "" && strings.EqualFold(p.Name, want.Name))
		})
		if i < 0 {
			return nil, &UnresolvedError{fmt.Sprintf("the Kommo account has no pipeline %s; it has %s",
				describe(want.ID, want.Name), pipelineNames(pipelines))}
		}
		p := pipelines[i]
		r := v1alpha1.ResolvedPipeline{ID: p.ID, Name: want.Name}
		for _, st := range want.Statuses {
			id, err := resolveStatus(p, st)
			if err != nil {
				return nil, err
			}
			r.StatusIDs = append(r.StatusIDs, id)
		}
		out = append(out, r)
	}
	return out, nil
}

func resolveStatus(p kommo.Pipeline, want v1alpha1.StatusSelector) (int64, error) {
	if want.ID == v1alpha1.StatusWon || want.ID == v1alpha1.StatusLost {
		return want.ID, nil
	}
	for _, s := range p.Statuses {
		if (want.ID != 0 && s.ID == want.ID) || (want.Name != "" && strings.EqualFold(s.Name, want.Name)) {
			return s.ID, nil
		}
	}
	names := make([]string, len(p.Statuses))
	for i, s := range p.Statuses {
		names[i] = fmt.Sprintf("%q (%d)", s.Name, s.ID)
	}
	return 0, &UnresolvedError{fmt.Sprintf("pipeline %q (%d) has no status %s; it has %s",
		p.Name, p.ID, describe(want.ID, want.Name), strings.Join(names, ", "))}
}

func describe(id int64, name string) string {
	if name != "" {
		return fmt.Sprintf("named %q", name)
	}
	return fmt.Sprintf("with id %d", id)
}

func pipelineNames(pipelines []kommo.Pipeline) string {
	if len(pipelines) == 0 {
		return "none"
	}
	names := make([]string, len(pipelines))
	for i, p := range pipelines {
		names[i] = fmt.Sprintf("%q (%d)", p.Name, p.ID)
	}
	return strings.Join(names, ", ")
}
