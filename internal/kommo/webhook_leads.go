package kommo

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strconv"
)

// Lead actions of webhooks: the keys under leads[…] and, with "_lead", the
// webhook settings. Each can change which leads a contact has or their
// stage, so each names leads whose contacts the sync re-reads.
const (
	LeadActionAdd         Action = "add"
	LeadActionUpdate      Action = "update"
	LeadActionDelete      Action = "delete"
	LeadActionRestore     Action = "restore"
	LeadActionStatus      Action = "status"
	LeadActionResponsible Action = "responsible"
)

// leadActions orders lead events and is the set the parser reads.
var leadActions = [...]Action{LeadActionAdd, LeadActionUpdate, LeadActionStatus, LeadActionResponsible, LeadActionRestore, LeadActionDelete}

// LeadSettings are the webhook settings of every lead action.
func LeadSettings() []string {
	out := make([]string, len(leadActions))
	for i, a := range leadActions {
		out[i] = string(a) + "_lead"
	}
	return out
}

// MaxWebhookLeads bounds the leads of one webhook body, like
// MaxWebhookContacts the contacts.
const MaxWebhookLeads = 2000

// LeadEvent is one lead a webhook names and what happened to it. The
// parser keeps only the id: the sync reads the lead from Kommo. The stage
// fields are what the sandbox sends, in Kommo's wire shape.
type LeadEvent struct {
	Action        Action
	Lead          Lead
	OldStatusID   int64
	OldPipelineID int64
}

// leadDraft is leads[action][index] while the body is read.
type leadDraft struct {
	rank  int
	index int32
	id    int64
}

// takeLead reads leads[action][index][id]; the lead's other keys are not
// needed (its stage is read from Kommo) and other actions are ignored.
func (p *bodyParser) takeLead() error {
	if p.depth() < 2 {
		return p.fail("want leads[action][index][field]")
	}
	rank := slices.Index(leadActions[:], Action(p.seg(1)))
	if rank < 0 {
		return nil // note, …: not subscribed to, not an error
	}
	if p.depth() < 4 {
		return p.fail("want leads[%s][index][field]", leadActions[rank])
	}
	index, err := p.parseIndex(p.seg(2))
	if err != nil {
		return err
	}
	pos, err := p.lead(rank, index)
	if err != nil {
		return err
	}
	if string(p.seg(3)) != "id" {
		return nil
	}
	if p.depth() != 4 {
		return p.fail("%q takes no sub-keys", p.seg(3))
	}
	if p.leads[pos].id != 0 {
		return p.fail("given more than once")
	}
	p.leads[pos].id, err = p.positiveInt()
	return err
}

// lead returns the draft of leads[action][index], creating it within
// MaxWebhookLeads.
func (p *bodyParser) lead(rank int, index int32) (int, error) {
	key := leadSlot{rank, index}
	if pos, ok := p.leadIndex[key]; ok {
		return pos, nil
	}
	if len(p.leads) == MaxWebhookLeads {
		return 0, p.fail("more than %d leads in one body", MaxWebhookLeads)
	}
	if p.leadIndex == nil {
		p.leadIndex = map[leadSlot]int{}
	}
	p.leadIndex[key] = len(p.leads)
	p.leads = append(p.leads, leadDraft{rank: rank, index: index})
	return len(p.leads) - 1, nil
}

type leadSlot struct {
	rank  int
	index int32
}

// leadEvents are the lead drafts as events, by action then index.
func (p *bodyParser) leadEvents() ([]LeadEvent, error) {
	if len(p.leads) == 0 {
		return nil, nil
	}
	drafts := slices.Clone(p.leads)
	slices.SortFunc(drafts, func(a, b leadDraft) int { return cmp.Or(cmp.Compare(a.rank, b.rank), cmp.Compare(a.index, b.index)) })
	out := make([]LeadEvent, len(drafts))
	for i, d := range drafts {
		if d.id == 0 {
			return nil, malformed(fmt.Sprintf("leads[%s][%d]", leadActions[d.rank], d.index), "missing id")
		}
		out[i] = LeadEvent{Action: leadActions[d.rank], Lead: Lead{ID: d.id}}
	}
	return out, nil
}

// encodeLeads writes lead events in Kommo's wire shape:
// leads[action][i][id|status_id|pipeline_id|old_status_id|old_pipeline_id|account_id],
// zero values left out.
func encodeLeads(form url.Values, accountID int64, events []LeadEvent) {
	next := map[Action]int{}
	for _, ev := range events {
		i := next[ev.Action]
		next[ev.Action] = i + 1
		prefix := fmt.Sprintf("leads[%s][%d]", ev.Action, i)
		for _, f := range []struct {
			name string
			n    int64
		}{
			{"id", ev.Lead.ID}, {"status_id", ev.Lead.StatusID}, {"pipeline_id", ev.Lead.PipelineID},
			{"old_status_id", ev.OldStatusID}, {"old_pipeline_id", ev.OldPipelineID},
		} {
			if f.n != 0 {
				form.Set(prefix+"["+f.name+"]", strconv.FormatInt(f.n, 10))
			}
		}
		if ev.Action != LeadActionDelete { // a delete carries id, status_id and pipeline_id only
			form.Set(prefix+"[account_id]", strconv.FormatInt(accountID, 10))
		}
	}
}
