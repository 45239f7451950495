package kommo

import (
	"encoding/json"
	"testing"
)

// TestAppendJSONIsJSONMarshal checks AppendJSON against encoding/json for
// every fixture and for payloads with empty and nil lists and text that
// needs escaping.
func TestAppendJSONIsJSONMarshal(t *testing.T) {
	payloads := []*WebhookPayload{
		{AccountID: 1},
		{AccountID: 1, Events: []WebhookEvent{}},
		{AccountID: 7, Subdomain: "a<b>&c", Events: []WebhookEvent{{Action: ActionUpdate, Contact: Contact{
			ID: 3, Type: ContactTypeCompany, Name: "Ünïcödé \"quoted\" \\ \n\t\r\b\f\x01\x7f", FirstName: "\u2028\u2029",
			LastName: "bad \xff utf8", Emails: []string{}, Phones: []string{"+1"}, Tags: []string{"vip", ""},
			CustomFields: []CustomField{{ID: 9, Values: []FieldValue{}}, {ID: 10, Name: "n", Code: "EMAIL",
				Values: []FieldValue{{Value: "x@y.z", EnumID: 4, EnumCode: "WORK"}}}},
			ResponsibleUserID: 5, CreatedAt: -1, UpdatedAt: 1 << 62, AccountID: 7,
		}}}},
	}
	for _, name := range fixtureNames(t) {
		p, err := ParseWebhook(fixtureForm(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		payloads = append(payloads, p)
	}
	for i, p := range payloads {
		want, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("payload %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// FuzzAppendJSONString compares the string quoting with encoding/json's.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "<&>", "\"\\", "\x00\x1f\x7f", "é日本", "\u2028\u2029", "\xff\xfe", "a\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got[1:]) != string(want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got[1:], want)
		}
	})
}
