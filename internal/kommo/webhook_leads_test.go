package kommo

import (
	"errors"
	"reflect"
	"testing"
)

// TestSegmentLeadWebhookWireShape: a lead webhook in Kommo's wire shape
// (status_id, old_status_id, pipeline_id, old_pipeline_id, account_id)
// parses to the leads it names, by action then index; what the sandbox
// encodes parses back to the same ids.
func TestSegmentLeadWebhookWireShape(t *testing.T) {
	p := &WebhookPayload{AccountID: 31, Subdomain: "acme", Leads: []LeadEvent{
		{Action: LeadActionStatus, Lead: Lead{ID: 900, PipelineID: 7, StatusID: 142}, OldStatusID: 55, OldPipelineID: 6},
		{Action: LeadActionAdd, Lead: Lead{ID: 901, PipelineID: 7, StatusID: 55}},
		{Action: LeadActionDelete, Lead: Lead{ID: 902, PipelineID: 7, StatusID: 143}},
	}}
	form := EncodeWebhook(p)
	for key, want := range map[string]string{
		"leads[status][0][id]": "900", "leads[status][0][status_id]": "142", "leads[status][0][old_status_id]": "55",
		"leads[status][0][pipeline_id]": "7", "leads[status][0][old_pipeline_id]": "6", "leads[status][0][account_id]": "31",
		"leads[delete][0][id]": "902", "leads[delete][0][status_id]": "143", "leads[delete][0][account_id]": "",
	} {
		if got := form.Get(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	got, err := ParseWebhook(form)
	if err != nil {
		t.Fatal(err)
	}
	want := []LeadEvent{
		{Action: LeadActionAdd, Lead: Lead{ID: 901}},
		{Action: LeadActionStatus, Lead: Lead{ID: 900}},
		{Action: LeadActionDelete, Lead: Lead{ID: 902}},
	}
	if !reflect.DeepEqual(got.Leads, want) || len(got.Events) != 0 {
		t.Fatalf("parsed leads %+v (contacts %d), want %+v", got.Leads, len(got.Events), want)
	}
}

func TestSegmentLeadWebhookRefusesMalformedLeads(t *testing.T) {
	for body, key := range map[string]string{
		"account[id]=1&leads[status][0][id]=abc":                "leads[status][0][id]",
		"account[id]=1&leads[status][0][id]=0":                  "leads[status][0][id]",
		"account[id]=1&leads[status][0][status_id]=142":         "leads[status][0]",
		"account[id]=1&leads[status][x][id]=1":                  "leads[status][x][id]",
		"account[id]=1&leads[status][0][id][more]=1":            "leads[status][0][id][more]",
		"account[id]=1&leads[add][0][id]=1&leads[add][0][id]=1": "leads[add][0][id]",
	} {
		_, err := ParseWebhookBody([]byte(body))
		var we *WebhookError
		if !errors.As(err, &we) || we.Key != key {
			t.Errorf("%s: error %v, want one naming %s", body, err, key)
		}
	}
}
