package webhookserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/contract"
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
	binding := &v1alpha1.UnisenderBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "news.letter"},
		Spec:       v1alpha1.UnisenderBindingSpec{IntegrationRef: v1alpha1.IntegrationReference{Name: "kommo"}},
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "news.letter-webhook"},
		Data:       map[string][]byte{contract.WebhookSecretKey: []byte("s3cret"), "other": []byte("x")},
	}
	integration := &v1alpha1.KommoIntegration{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "kommo"}}
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
	secret.Data[contract.WebhookSecretKey][0] = 'X' // the index holds its own copy
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
	sh.OnAdd(&corev1.Secret{ObjectMeta: secret.ObjectMeta, Data: map[string][]byte{contract.WebhookSecretKey: []byte("new")}}, false)
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

// TestContactRefs: a payload becomes the people it names, each once with
// its last action (the parser orders adds, updates, deletes), in the order
// first named; companies are left out; nothing else of the body is kept.
func TestContactRefs(t *testing.T) {
	person := func(a kommo.Action, id int64) kommo.WebhookEvent {
		return kommo.WebhookEvent{Action: a, Contact: kommo.Contact{ID: id, Type: kommo.ContactTypeContact,
			Name: "x", Emails: []string{"forged@example.com"}, UpdatedAt: 1<<63 - 1}}
	}
	company := func(a kommo.Action, id int64) kommo.WebhookEvent {
		return kommo.WebhookEvent{Action: a, Contact: kommo.Contact{ID: id, Type: kommo.ContactTypeCompany}}
	}
	untyped := kommo.WebhookEvent{Action: kommo.ActionDelete, Contact: kommo.Contact{ID: 77}}
	cases := []struct {
		name   string
		events []kommo.WebhookEvent
		want   []queue.ContactRef
	}{
		{"nothing", nil, []queue.ContactRef{}},
		{"one add", []kommo.WebhookEvent{person(kommo.ActionAdd, 5)}, []queue.ContactRef{{ID: 5, Action: "add"}}},
		{"add, update and delete of one contact", []kommo.WebhookEvent{
			person(kommo.ActionAdd, 5), person(kommo.ActionAdd, 6), person(kommo.ActionUpdate, 5), person(kommo.ActionDelete, 5),
		}, []queue.ContactRef{{ID: 5, Action: "delete"}, {ID: 6, Action: "add"}}},
		{"the same update twice", []kommo.WebhookEvent{person(kommo.ActionUpdate, 9), person(kommo.ActionUpdate, 9)},
			[]queue.ContactRef{{ID: 9, Action: "update"}}},
		{"companies are left out", []kommo.WebhookEvent{
			company(kommo.ActionAdd, 1), person(kommo.ActionUpdate, 2), company(kommo.ActionDelete, 3),
		}, []queue.ContactRef{{ID: 2, Action: "update"}}},
		{"only companies", []kommo.WebhookEvent{company(kommo.ActionUpdate, 1)}, []queue.ContactRef{}},
		{"a delete without a type is a person", []kommo.WebhookEvent{untyped}, []queue.ContactRef{{ID: 77, Action: "delete"}}},
		{"ids that are not Kommo's", []kommo.WebhookEvent{person(kommo.ActionAdd, 0), person(kommo.ActionAdd, -4), person(kommo.ActionAdd, 8)},
			[]queue.ContactRef{{ID: 8, Action: "add"}}},
	}
	for _, tc := range cases {
		got := contactRefs(&kommo.WebhookPayload{AccountID: 1, Events: tc.events})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestEnqueueSplitsAndBoundsJobs: a payload naming more contacts than one
// job holds is split in order over full jobs; each is a valid contacts job
// (queue.Decode, queue.DecodeContacts) of at most 45 bytes per contact
// plus its envelope.
func TestEnqueueSplitsAndBoundsJobs(t *testing.T) {
	for _, n := range []int{1, queue.MaxContactsPerJob, queue.MaxContactsPerJob + 1, kommo.MaxWebhookContacts} {
		p := &kommo.WebhookPayload{AccountID: 31415926}
		for i := range n {
			p.Events = append(p.Events, kommo.WebhookEvent{Action: kommo.ActionDelete,
				Contact: kommo.Contact{ID: 9_000_000_000_000_000_000 + int64(i), Type: kommo.ContactTypeContact}})
		}
		refs := contactRefs(p)
		q := &recordingQueue{}
		s := &Server{cfg: DefaultConfig(), queue: q, admit: newAdmission(DefaultConfig())}
		info := TenantInfo{ID: "shop/news.letter"}
		if err := s.enqueue(context.Background(), info, p.AccountID, jobPriority, refs); err != nil {
			t.Fatal(err)
		}
		if want := (n + queue.MaxContactsPerJob - 1) / queue.MaxContactsPerJob; len(q.bodies) != want {
			t.Fatalf("%d contacts: %d jobs, want %d", n, len(q.bodies), want)
		}
		var named []queue.ContactRef
		for _, body := range q.bodies {
			env, err := queue.Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := queue.DecodeContacts(env)
			if err != nil {
				t.Fatal(err)
			}
			if bound := 256 + len(info.ID) + 45*len(got); len(body) > bound {
				t.Errorf("a job of %d contacts is %d bytes, bound %d", len(got), len(body), bound)
			}
			named = append(named, got...)
		}
		if !slices.Equal(named, refs) {
			t.Errorf("%d contacts: the jobs name %d, not the payload's in order", n, len(named))
		}
	}
}

// recordingQueue keeps a copy of every body put.
type recordingQueue struct{ bodies [][]byte }

func (q *recordingQueue) Put(_ context.Context, _ string, body []byte, _ uint32, _, _ time.Duration) (uint64, error) {
	q.bodies = append(q.bodies, bytes.Clone(body))
	return uint64(len(q.bodies)), nil
}

func (q *recordingQueue) Ping(context.Context) error { return nil }

// BenchmarkParseAndEncode is the CPU work of one webhook besides HTTP and
// the put: the Kommo parser, naming the contacts, and the job encoding.
func BenchmarkParseAndEncode(b *testing.B) {
	body, err := fixtures.KommoWebhookBody(fixtures.AddContact)
	if err != nil {
		b.Fatal(err)
	}
	raw := []byte(body)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		p, err := kommo.ParseWebhookBody(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := queue.AppendContactsJob(buf, "shop/newsletter", p.AccountID, time.Now(), contactRefs(p)); err != nil {
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
