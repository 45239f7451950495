package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// referenceContactsJob is what AppendContactsJob must write: the envelope
// of a json.Marshal'ed ContactsPayload, by Envelope.Encode.
func referenceContactsJob(tenantID string, accountID int64, at time.Time, refs []ContactRef) ([]byte, error) {
	payload, err := json.Marshal(ContactsPayload{Contacts: refs})
	if err != nil {
		return nil, err
	}
	return Envelope{Tenant: tenantID, AccountID: accountID, Kind: KindContacts,
		ReceivedAt: at.UTC(), Payload: payload}.Encode()
}

// refsOf makes n refs with ids from first on and actions cycling through
// actions.
func refsOf(n int, first int64, actions ...string) []ContactRef {
	refs := make([]ContactRef, n)
	for i := range refs {
		refs[i] = ContactRef{ID: first + int64(i), Action: actions[i%len(actions)]}
	}
	return refs
}

// TestAppendContactsJobIsTheEnvelope: the hand-written job body is
// byte-for-byte Envelope.Encode of the json.Marshal'ed payload, appended to
// what b held, and queue.Decode + DecodeContacts give the refs back.
func TestAppendContactsJobIsTheEnvelope(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 890123000, time.FixedZone("X", 3600))
	cases := []struct {
		name    string
		tenant  string
		account int64
		at      time.Time
		refs    []ContactRef
	}{
		{"one add", "shop/news.letter", 31415926, at, []ContactRef{{ID: 5100201, Action: "add"}}},
		{"no account yet", "shop/news.letter", 0, at, []ContactRef{{ID: 1, Action: "update"}}},
		{"negative account", "shop/news.letter", -7, at, []ContactRef{{ID: 1, Action: "update"}}},
		{"no action", "shop/news.letter", 1, at, []ContactRef{{ID: 9, Action: ""}, {ID: 10, Action: "delete"}}},
		{"whole seconds, UTC", "a/b", 1, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), refsOf(3, 1, "add")},
		{"largest id", "a/b", math.MaxInt64, at, []ContactRef{{ID: math.MaxInt64, Action: "delete"}}},
		{"a full job", "shop/news.letter", 31415926, at, refsOf(MaxContactsPerJob, 5_100_000, "add", "update", "delete")},
		{"tenant to escape", `odd/na"me<&>`, 1, at, refsOf(2, 1, "add")},
		{"tenant with a control char", "odd/na\nme", 1, at, refsOf(2, 1, "add")},
		{"non-ASCII tenant", "ünï/cødé", 1, at, refsOf(2, 1, "add")},
		{"action to escape", "a/b", 1, at, []ContactRef{{ID: 1, Action: `up"date<`}, {ID: 2, Action: "add"}}},
		{"non-ASCII action", "a/b", 1, at, []ContactRef{{ID: 1, Action: "añadir"}}},
		{"year 0", "a/b", 1, time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), refsOf(1, 1, "add")},
		{"year 9999, zone ahead", "a/b", 1, time.Date(9999, 12, 31, 23, 0, 0, 1, time.FixedZone("E", 14*3600)), refsOf(1, 1, "add")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want, err := referenceContactsJob(tc.tenant, tc.account, tc.at, tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			prefix := []byte("prefix-")
			got, err := AppendContactsJob(slices.Clip(prefix), tc.tenant, tc.account, tc.at, tc.refs)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, prefix) {
				t.Fatalf("what b held is gone: %q", got)
			}
			if got := got[len(prefix):]; !bytes.Equal(got, want) {
				t.Fatalf("\n got %s\nwant %s", got, want)
			}
			// Into a buffer with room, as the webhook server calls it.
			roomy := make([]byte, 0, 64<<10)
			if got, _ := AppendContactsJob(roomy, tc.tenant, tc.account, tc.at, tc.refs); !bytes.Equal(got, want) {
				t.Fatalf("into a roomy buffer:\n got %s\nwant %s", got, want)
			}
			env, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if env.Kind != KindContacts || env.Tenant != tc.tenant || env.AccountID != tc.account || !env.ReceivedAt.Equal(tc.at) {
				t.Errorf("envelope %+v", env)
			}
			refs, err := DecodeContacts(env)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(refs, tc.refs) {
				t.Errorf("decoded %v, want %v", refs, tc.refs)
			}
		})
	}
}

// TestAppendContactsJobRefusesWhatTheWorkerWouldBury: a job with no
// contacts, too many, or an id that is not positive is never written.
func TestAppendContactsJobRefusesWhatTheWorkerWouldBury(t *testing.T) {
	at := time.Now()
	cases := map[string][]ContactRef{
		"nil":          nil,
		"empty":        {},
		"251 contacts": refsOf(MaxContactsPerJob+1, 1, "add"),
		"id 0":         {{ID: 1, Action: "add"}, {ID: 0, Action: "add"}},
		"negative id":  {{ID: -5, Action: "delete"}},
	}
	for name, refs := range cases {
		for _, tenant := range []string{"a/b", `odd/"quoted"`} {
			b, err := AppendContactsJob(nil, tenant, 1, at, refs)
			if !errors.Is(err, ErrBadEnvelope) {
				t.Errorf("%s, tenant %q: %q, %v; want ErrBadEnvelope", name, tenant, b, err)
			}
		}
	}
	if _, err := AppendContactsJob(nil, "", 1, at, refsOf(1, 1, "add")); !errors.Is(err, ErrBadEnvelope) {
		t.Errorf("no tenant: %v; want ErrBadEnvelope", err)
	}
	if _, err := AppendContactsJob(nil, "a/b", 1, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), refsOf(1, 1, "add")); err == nil {
		t.Error("year 10000 (json.Marshal refuses it) was encoded")
	}
}

// TestDecodeContactsRefusesPoison: every payload a worker cannot act on
// is ErrBadEnvelope, and the bounds themselves are accepted.
func TestDecodeContactsRefusesPoison(t *testing.T) {
	env := func(payload string) Envelope {
		return Envelope{Version: EnvelopeVersion, Tenant: "a/b", Kind: KindContacts,
			ReceivedAt: time.Now().UTC(), Payload: json.RawMessage(payload)}
	}
	many := func(n int) string {
		b, _ := json.Marshal(ContactsPayload{Contacts: refsOf(n, 1, "add")})
		return string(b)
	}
	bad := map[string]string{
		"no payload":       ``,
		"not JSON":         `{"contacts":[`,
		"a string":         `"contacts"`,
		"no contacts key":  `{}`,
		"contacts null":    `{"contacts":null}`,
		"zero contacts":    `{"contacts":[]}`,
		"251 contacts":     many(MaxContactsPerJob + 1),
		"2000 contacts":    many(2000),
		"id 0":             `{"contacts":[{"id":1},{"id":0}]}`,
		"negative id":      `{"contacts":[{"id":-3,"action":"delete"}]}`,
		"no id":            `{"contacts":[{"action":"add"}]}`,
		"id as a string":   `{"contacts":[{"id":"5"}]}`,
		"fractional id":    `{"contacts":[{"id":1.5}]}`,
		"id beyond int64":  `{"contacts":[{"id":9223372036854775808}]}`,
		"contacts object":  `{"contacts":{"id":1}}`,
		"contact a number": `{"contacts":[5]}`,
	}
	for name, payload := range bad {
		if refs, err := DecodeContacts(env(payload)); !errors.Is(err, ErrBadEnvelope) {
			t.Errorf("%s: %v, %v; want ErrBadEnvelope", name, refs, err)
		}
	}
	good := map[string]int{
		`{"contacts":[{"id":1}]}`:                   1,
		`{"contacts":[{"id":9223372036854775807}]}`: 1,
		many(MaxContactsPerJob):                     MaxContactsPerJob,
	}
	for payload, n := range good {
		refs, err := DecodeContacts(env(payload))
		if err != nil || len(refs) != n {
			t.Errorf("%.60s…: %d refs, %v; want %d", payload, len(refs), err, n)
		}
	}
}

// TestContactsJobSizeIsBounded: a full job of the largest ids stays within
// the bound the webhook server's tests assert (45 bytes per contact plus
// the envelope), far below beanstalkd's default max-job-size (65535).
func TestContactsJobSizeIsBounded(t *testing.T) {
	tenant := strings.Repeat("n", 63) + "/" + strings.Repeat("b", 253)
	body, err := AppendContactsJob(nil, tenant, math.MaxInt64, time.Now(), refsOf(MaxContactsPerJob, math.MaxInt64-MaxContactsPerJob, "update"))
	if err != nil {
		t.Fatal(err)
	}
	if bound := 256 + len(tenant) + 45*MaxContactsPerJob; len(body) > bound {
		t.Fatalf("a full job is %d bytes, bound %d", len(body), bound)
	}
	t.Logf("a full job of the largest ids: %d bytes", len(body))
}

// FuzzAppendContactsJob: for any tenant, account, time and refs,
// AppendContactsJob either refuses what DecodeContacts or Envelope.Encode
// would refuse, or writes exactly Envelope.Encode's bytes after what b held.
func FuzzAppendContactsJob(f *testing.F) {
	f.Add("shop/news.letter", int64(31415926), int64(1_772_600_767), int64(890123000), int32(3600), []byte{0, 0, 0, 0, 0, 0x4d, 0xd3, 0xa9}, "add,update,delete", uint16(1))
	f.Add(`odd/na"me<&>`, int64(0), int64(0), int64(0), int32(0), []byte{}, "", uint16(250))
	f.Add("a/b", int64(-1), int64(-62_135_596_800), int64(-1), int32(-43200), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "add", uint16(3))
	f.Add("a/b", int64(1), int64(253_402_300_800), int64(0), int32(0), []byte("12345678"), "x\x00y,\xff", uint16(251))
	f.Fuzz(func(t *testing.T, tenant string, account, sec, nsec int64, offset int32, ids []byte, actions string, n uint16) {
		count := int(n % 300)
		parts := strings.Split(actions, ",")
		refs := make([]ContactRef, count)
		for i := range refs {
			id := int64(i + 1)
			if len(ids) >= 8 {
				j := (i * 8) % (len(ids) - len(ids)%8)
				id = int64(binary.BigEndian.Uint64(ids[j:j+8])) + int64(i)
			}
			refs[i] = ContactRef{ID: id, Action: parts[i%len(parts)]}
		}
		at := time.Unix(sec, nsec).In(time.FixedZone("z", int(offset%(18*3600))))

		prefix := []byte("held")
		got, err := AppendContactsJob(slices.Clip(prefix), tenant, account, at, refs)
		_, poison := DecodeContacts(Envelope{Payload: mustMarshal(t, ContactsPayload{Contacts: refs})})
		want, wantErr := referenceContactsJob(tenant, account, at, refs)
		switch {
		case poison != nil:
			if !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("refs the worker would bury (%v) were encoded: %v %.200q", poison, err, got)
			}
			return
		case wantErr != nil:
			if err == nil {
				t.Fatalf("Envelope.Encode refuses (%v), AppendContactsJob wrote %.200q", wantErr, got)
			}
			return
		case err != nil:
			t.Fatalf("AppendContactsJob: %v; Envelope.Encode wrote %.200q", err, want)
		}
		if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
			t.Fatalf("\n got %q\nwant held%q", got, want)
		}
		env, err := Decode(want)
		if err != nil {
			t.Fatalf("Decode of an encoded job: %v", err)
		}
		back, err := DecodeContacts(env)
		if err != nil {
			t.Fatalf("DecodeContacts of an encoded job: %v", err)
		}
		for i, r := range back {
			if r.ID != refs[i].ID || (utf8.ValidString(refs[i].Action) && r.Action != refs[i].Action) {
				t.Fatalf("ref %d decoded as %+v, want %+v", i, r, refs[i])
			}
		}
	})
}

func mustMarshal(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(fmt.Errorf("marshal %T: %w", v, err))
	}
	return b
}
