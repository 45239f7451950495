package queue

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	in := Envelope{
		Tenant: "acme/main", AccountID: 31415926, Kind: KindWebhook,
		ReceivedAt: time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC),
		Payload:    json.RawMessage(`{"events":[{"action":"add","id":5100201}]}`),
	}
	body, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	in.Version = EnvelopeVersion // Encode fills it in
	if diff := cmp.Diff(in, out); diff != "" {
		t.Fatalf("round trip (-in +out):\n%s", diff)
	}
}

func TestDecodeRefusesPoison(t *testing.T) {
	valid := func(mut func(map[string]any)) []byte {
		m := map[string]any{"v": EnvelopeVersion, "tenant": "acme/main", "kind": "webhook",
			"received_at": "2026-03-04T05:06:07Z", "payload": map[string]any{}}
		mut(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := map[string][]byte{
		"empty":           nil,
		"not JSON":        []byte("\x00\x01garbage"),
		"JSON array":      []byte(`[1,2]`),
		"trailing data":   append(valid(func(map[string]any) {}), []byte(` {"more":1}`)...),
		"future version":  valid(func(m map[string]any) { m["v"] = EnvelopeVersion + 1 }),
		"no version":      valid(func(m map[string]any) { delete(m, "v") }),
		"no tenant":       valid(func(m map[string]any) { delete(m, "tenant") }),
		"no kind":         valid(func(m map[string]any) { m["kind"] = "" }),
		"bad time":        valid(func(m map[string]any) { m["received_at"] = "yesterday" }),
		"tenant a number": valid(func(m map[string]any) { m["tenant"] = 7 }),
	}
	for name, body := range cases {
		if _, err := Decode(body); !errors.Is(err, ErrBadEnvelope) {
			t.Errorf("%s: Decode = %v; want ErrBadEnvelope", name, err)
		}
	}
	if _, err := Decode(valid(func(map[string]any) {})); err != nil {
		t.Fatalf("the valid base case is refused: %v", err)
	}
	if _, err := (Envelope{Version: 99, Tenant: "a/b", Kind: KindContacts}).Encode(); !errors.Is(err, ErrBadEnvelope) {
		t.Errorf("Encode of an unknown version = %v", err)
	}
}

func TestCheckTube(t *testing.T) {
	for _, ok := range []string{"a", "sync.3", "A-b_c+d/e;f$g(h)", "x-"} {
		if err := CheckTube(ok); err != nil {
			t.Errorf("CheckTube(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "a\\b", "é", "a\nb"} {
		if err := CheckTube(bad); !errors.Is(err, ErrBadTube) {
			t.Errorf("CheckTube(%q) = %v; want ErrBadTube", bad, err)
		}
	}
}
