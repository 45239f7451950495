package kommo

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseWebhook feeds raw request bodies through url.ParseQuery and
// ParseWebhook. The seed corpus (every shared fixture plus edge cases) runs
// in plain `go test`; `go test -fuzz=FuzzParseWebhook` explores from there.
func FuzzParseWebhook(f *testing.F) {
	for _, name := range fixtureNames(f) {
		f.Add(fixtureBody(f, name))
	}
	for _, seed := range []string{
		"",
		"account[id]=1",
		"account[id]=1&contacts[add][0][id]=2",
		"account[id]=1&contacts[add][10000][id]=2&contacts[delete][3][id]=4&contacts[update][0][id]=5&contacts[update][0][type]=company",
		"account[id]=1&contacts[add][0][id]=2&contacts[add][0][custom_fields][4][id]=3&contacts[add][0][custom_fields][4][values][0]=1104537600",
		"account[id]=1&contacts[add][0][id]=2&contacts[add][0][custom_fields][0][id]=3&contacts[add][0][custom_fields][0][code]=EMAIL&contacts[add][0][custom_fields][0][values][1][value]=%20a%40b.c%20&contacts[add][0][custom_fields][0][values][1][enum]=9",
		"account[id]=1&contacts[add][0][id]=2&contacts[add][0][tags][3][id]=4&contacts[add][0][tags][3][name]=vip",
		"account[id]=1&contacts[restore][0][id]=2&leads[add][0][id]=3&contacts[note][x]=1",
		"account[id]=1&contacts[add][0][id]=2&contacts[add][0][account_id]=1&contacts[add][0][date_create]=5&contacts[add][0][last_modified]=6",
		"account[id]=1&contacts[add][01][id]=2",
		"account[id]=1&contacts[add]=2",
		"account[id]=1&contacts[add][0][id=2",
		"account[id]=1&contacts]=2",
		"account[id]=1&contacts[add][0][id]=2&contacts[add][0][id]=3",
		"account[id]=99999999999999999999",
		"account%5Bid%5D=1&contacts%5Badd%5D%5B0%5D%5Bid%5D=2",
		"account[id]=1&contacts[add][0][id]=2&%zz=1",
		"account[id]=1;contacts[add][0][id]=2",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, body string) {
		// ParseQuery keeps the pairs it could decode even when it reports a
		// bad one; the parser must cope with whatever the server hands it.
		form, _ := url.ParseQuery(body)
		p, err := ParseWebhook(form)
		if err != nil {
			if p != nil {
				t.Fatalf("payload returned with error %v", err)
			}
			if !errors.Is(err, ErrMalformedWebhook) {
				t.Fatalf("error %v (%T) is not ErrMalformedWebhook", err, err)
			}
			return
		}
		checkPayloadInvariants(t, p)

		wire, err := url.ParseQuery(EncodeWebhook(p).Encode())
		if err != nil {
			t.Fatalf("EncodeWebhook produced an undecodable body: %v", err)
		}
		again, err := ParseWebhook(wire)
		if err != nil {
			t.Fatalf("re-parsing the encoded payload: %v\npayload %+v", err, p)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip changed the payload:\n got %+v\nwant %+v", again, p)
		}
	})
}

func checkPayloadInvariants(t *testing.T, p *WebhookPayload) {
	t.Helper()
	if p.AccountID <= 0 {
		t.Fatalf("account id %d", p.AccountID)
	}
	if len(p.Events) > MaxWebhookContacts {
		t.Fatalf("%d events, above the cap %d", len(p.Events), MaxWebhookContacts)
	}
	lastRank := -1
	for i, ev := range p.Events {
		rank, known := actionRank[ev.Action]
		if !known {
			t.Fatalf("event %d has action %q", i, ev.Action)
		}
		if rank < lastRank {
			t.Fatalf("event %d (%s) out of action order", i, ev.Action)
		}
		lastRank = rank
		c := ev.Contact
		if c.ID <= 0 {
			t.Fatalf("event %d has contact id %d", i, c.ID)
		}
		if c.Type != ContactTypeContact && c.Type != ContactTypeCompany {
			t.Fatalf("event %d has type %q", i, c.Type)
		}
		if c.AccountID != p.AccountID {
			t.Fatalf("event %d has account %d in a body of account %d", i, c.AccountID, p.AccountID)
		}
		for _, e := range c.Emails {
			if e == "" || e != strings.TrimSpace(e) {
				t.Fatalf("event %d has untrimmed or empty e-mail %q", i, e)
			}
		}
	}
}
