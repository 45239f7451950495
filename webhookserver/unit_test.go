package webhookserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	syncv1 "github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
)

// TestTenantIndexFollowsEvents: a tenant exists for the webhook route only
// while its binding has a webhook Secret with a secret and is not being
// deleted; the account id follows the integration; deletes — also as
// tombstones of missed events — remove it.
func TestTenantIndexFollowsEvents(t *testing.T) {
	x := NewTenantIndex()
	bh, ih, sh := x.BindingHandler(), x.IntegrationHandler(), x.SecretHandler()
	binding := &syncv1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "news.letter"},
		Spec:       syncv1.UnisenderBindingSpec{IntegrationRef: syncv1.IntegrationReference{Name: "kommo"}},
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "news.letter-webhook"},
		Data:       map[string][]byte{WebhookSecretKey: []byte("s3cret"), "other": []byte("x")},
	}
	integration := &syncv1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "kommo"}}
	lookup := func() (TenantInfo, bool) { return x.Tenant("shop.news.letter") }

	bh.OnAdd(binding, true)
	sh.OnAdd(secret, true)
	if _, ok := lookup(); ok {
		t.Fatal("found a binding whose status names no webhook Secret")
	}
	withSecret := binding.DeepCopy()
	withSecret.Status.WebhookSecretName = secret.Name
	bh.OnUpdate(binding, withSecret)
	info, ok := lookup()
	if !ok || string(info.Secret) != "s3cret" || info.ID != "shop/news.letter" || info.AccountID != 0 {
		t.Fatalf("got %+v %v, want the tenant with its secret and no account yet", info, ok)
	}
	secret.Data[WebhookSecretKey][0] = 'X' // the index holds its own copy
	if info, _ := lookup(); string(info.Secret) != "s3cret" {
		t.Errorf("the index aliases the Secret's data: %q", info.Secret)
	}
	authorized := integration.DeepCopy()
	authorized.Status.AccountID = 31415926
	ih.OnAdd(authorized, false)
	if info, _ := lookup(); info.AccountID != 31415926 {
		t.Errorf("account %d after the integration was authorized", info.AccountID)
	}
	if _, ok := x.Tenant("shop/news.letter"); ok {
		t.Error("found the tenant by its \"ns/name\" form, which is not a URL segment")
	}
	sh.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "shop/news.letter-webhook", Obj: secret})
	if _, ok := lookup(); ok {
		t.Error("found the tenant after its webhook Secret was deleted")
	}
	sh.OnAdd(&corev1.Secret{ObjectMeta: secret.ObjectMeta, Data: map[string][]byte{WebhookSecretKey: []byte("new")}}, false)
	deleting := withSecret.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	bh.OnUpdate(withSecret, deleting)
	if _, ok := lookup(); ok {
		t.Error("found a binding that is being deleted")
	}
	bh.OnUpdate(deleting, withSecret)
	bh.OnDelete(withSecret)
	if _, ok := lookup(); ok {
		t.Error("found a deleted binding")
	}
}

func TestCORSOrigins(t *testing.T) {
	p, err := newCORSPolicy(append(DefaultAllowedOrigins, "http://localhost:8080"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{
		"https://acme.kommo.com":      true,
		"https://ACME.Kommo.com":      true,
		"https://a.b.amocrm.ru":       true,
		"https://shop.amocrm.com":     true,
		"http://localhost:8080":       true,
		"https://kommo.com":           false,
		"http://acme.kommo.com":       false,
		"https://acme.kommo.com:8443": false,
		"https://acme.kommo.com.evil": false,
		"https://evil-kommo.com":      false,
		"https://-x.kommo.com":        false,
		"https://a_b.kommo.com":       false,
		"https://acme.kommo.com/path": false,
		"https://user@acme.kommo.com": false,
		"null":                        false,
		"":                            false,
	}
	for origin, want := range cases {
		if got := p.allows(origin); got != want {
			t.Errorf("allows(%q) = %v, want %v", origin, got, want)
		}
	}
	for _, bad := range []string{"*", "https://*", "https://*.com", "ftp://x.kommo.com", "https://a.*.kommo.com", "https://*.kommo.com:443"} {
		if _, err := newCORSPolicy([]string{bad}); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

// TestReplaySet: a jti is accepted once until it expires; when full, the
// entry nearest expiry makes room.
func TestReplaySet(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := newReplaySet(3)
	if !r.add("a", now.Add(time.Minute), now) {
		t.Fatal("first use refused")
	}
	if r.add("a", now.Add(time.Minute), now.Add(30*time.Second)) {
		t.Error("replay within the lifetime accepted")
	}
	if !r.add("a", now.Add(3*time.Minute), now.Add(2*time.Minute)) {
		t.Error("a jti remembered past its expiry")
	}
	later := now.Add(2 * time.Minute)
	r.add("b", later.Add(10*time.Minute), later)
	r.add("c", later.Add(20*time.Minute), later)
	r.add("d", later.Add(30*time.Minute), later) // full: "a" (nearest expiry) goes
	if len(r.seen) != 3 {
		t.Errorf("%d entries, limit 3", len(r.seen))
	}
	for _, k := range []string{"b", "c", "d"} {
		if r.add(k, later.Add(time.Hour), later) {
			t.Errorf("%s evicted instead of the entry nearest expiry", k)
		}
	}
}

// TestAppendJobIsTheQueueEnvelope: the hand-assembled job body is
// byte-for-byte what queue.Envelope.Encode writes, so the worker's
// queue.Decode reads it like any other job.
func TestAppendJobIsTheQueueEnvelope(t *testing.T) {
	for _, name := range fixtures.KommoWebhookNames() {
		form, err := fixtures.KommoWebhook(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := kommo.ParseWebhook(form)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 3, 4, 5, 6, 7, 890123000, time.FixedZone("X", 3600))
		for _, tenantID := range []string{"shop/news.letter", "odd/na\"me<&>"} {
			raw, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			want, err := queue.Envelope{Tenant: tenantID, AccountID: p.AccountID, Kind: queue.KindWebhook,
				ReceivedAt: at.UTC(), Payload: raw}.Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := appendJob(new(bytes.Buffer), tenantID, p, at)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s, tenant %q:\n got %s\nwant %s", name, tenantID, got, want)
			}
			if _, err := queue.Decode(got); err != nil {
				t.Errorf("%s: queue.Decode: %v", name, err)
			}
		}
	}
}

// BenchmarkParseAndEncode is the CPU work of one webhook besides HTTP and
// the put: form decoding, the Kommo parser, and the job encoding.
func BenchmarkParseAndEncode(b *testing.B) {
	body, err := fixtures.KommoWebhookBody(fixtures.AddContact)
	if err != nil {
		b.Fatal(err)
	}
	raw := []byte(body)
	buf := new(bytes.Buffer)
	b.ReportAllocs()
	for b.Loop() {
		p, err := kommo.ParseWebhookBody(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := appendJob(buf, "shop/newsletter", p, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTokenClaimRecord: a token is recorded once; expired records are
// dropped; the annotation stays bounded; a garbled one starts afresh.
func TestTokenClaimRecord(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	claim := func(id string, ttl time.Duration) TokenClaim {
		return TokenClaim{ID: id, Expires: now.Add(ttl), At: now}
	}
	ann, err := claim("a", time.Minute).record("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claim("a", time.Minute).record(ann); !errors.Is(err, ErrTokenReused) {
		t.Fatalf("the same token again: %v, want ErrTokenReused", err)
	}
	later := claim("a", time.Minute)
	later.At = now.Add(2 * time.Minute)
	if _, err := later.record(ann); err != nil {
		t.Fatalf("after the token expired: %v, want its record dropped", err)
	}
	for i := range 2 * maxUsedTokens {
		if ann, err = claim(strconv.Itoa(i), time.Duration(i+1)*time.Second).record(ann); err != nil {
			t.Fatal(err)
		}
	}
	var used map[string]int64
	if err := json.Unmarshal([]byte(ann), &used); err != nil || len(used) != maxUsedTokens {
		t.Fatalf("%d records (%v), want the bound %d", len(used), err, maxUsedTokens)
	}
	last := strconv.Itoa(2*maxUsedTokens - 1) // the latest to expire is kept
	if _, err := claim(last, time.Hour).record(ann); !errors.Is(err, ErrTokenReused) {
		t.Fatalf("the latest token was dropped: %v", err)
	}
	if _, err := claim("b", time.Minute).record("{not json"); err != nil {
		t.Fatalf("a garbled annotation: %v, want a fresh start", err)
	}
}
