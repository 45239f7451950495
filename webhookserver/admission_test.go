package webhookserver_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/kommo"
	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/sandboxtest"
	"github.com/kommo-unisender/kommo-unisender/webhookserver"
)

// admissionHarness serves with the given per-tenant rate bounds on a clock
// the test moves.
func admissionHarness(t *testing.T, rate float64, burst int) (*harness, *sandboxtest.Clock) {
	clock := sandboxtest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	h := newHarness(t, harnessOpts{config: func(c *webhookserver.Config) {
		c.TenantRate, c.TenantBurst, c.Clock = rate, burst, clock.Now
	}})
	return h, clock
}

// metricLine returns the /metrics line that starts with prefix, or "".
func (h *harness) metricLine(prefix string) string {
	h.t.Helper()
	for _, line := range strings.Split(h.request(http.MethodGet, "/metrics", "", "", nil).Body, "\n") {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}

// TestAdmissionBoundsEachTenantsRate: a tenant gets its burst, then 429
// with Retry-After (nothing queued), while another tenant is served
// normally; the bucket refills with time; refusals are counted by tenant id
// and reason, never by anything secret.
func TestAdmissionBoundsEachTenantsRate(t *testing.T) {
	noisy, quiet := newTenant(t, tenantOpts{}), newTenant(t, tenantOpts{})
	h, clock := admissionHarness(t, 1, 3)
	body := fixtureBody(t, fixtures.AddContact)
	for i := range 3 {
		if resp := h.postForm(noisy.WebhookPath(), body); resp.Status != http.StatusOK {
			t.Fatalf("webhook %d within the burst: status %d (%s)", i, resp.Status, resp.Body)
		}
	}
	resp := h.postForm(noisy.WebhookPath(), body)
	if resp.Status != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("webhook over the burst: status %d, Retry-After %q, want 429 and 1", resp.Status, resp.Header.Get("Retry-After"))
	}
	if n := len(h.reserveAll()); n != 3 {
		t.Fatalf("%d jobs queued, want the 3 admitted", n)
	}
	if resp := h.postForm(quiet.WebhookPath(), body); resp.Status != http.StatusOK {
		t.Fatalf("the other tenant while the first is refused: status %d (%s)", resp.Status, resp.Body)
	}
	clock.Advance(time.Second)
	if resp := h.postForm(noisy.WebhookPath(), body); resp.Status != http.StatusOK {
		t.Fatalf("a second later: status %d (%s), want a refilled token", resp.Status, resp.Body)
	}
	line := h.metricLine(`kommo_unisender_webhook_refused_total{reason="tenant_rate",tenant="` + noisy.TenantID() + `"}`)
	if !strings.HasSuffix(line, " 1") {
		t.Errorf("refusal metric %q, want 1 for the noisy tenant", line)
	}
	if metrics := h.request(http.MethodGet, "/metrics", "", "", nil).Body; strings.Contains(metrics, noisy.WebhookSecret) {
		t.Error("the metrics hold the webhook secret")
	}
}

// TestAdmissionIgnoresUnauthenticatedRequests: unknown tenants and wrong
// secrets are 404 and take nothing from the tenant they name.
func TestAdmissionIgnoresUnauthenticatedRequests(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	h, _ := admissionHarness(t, 0.001, 2)
	body := fixtureBody(t, fixtures.AddContact)
	wrongSecret := "/kommo/webhooks/" + f.Segment() + "/" + strings.Repeat("0", 64)
	unknown := "/kommo/webhooks/nobody.here/" + f.WebhookSecret
	for range 20 {
		for _, path := range []string{wrongSecret, unknown} {
			if resp := h.postForm(path, body); resp.Status != http.StatusNotFound {
				t.Fatalf("%s: status %d, want 404", path[:30], resp.Status)
			}
		}
	}
	for i := range 2 {
		if resp := h.postForm(f.WebhookPath(), body); resp.Status != http.StatusOK {
			t.Fatalf("authenticated webhook %d after 40 refused ones: status %d (%s)", i, resp.Status, resp.Body)
		}
	}
}

// TestAdmissionChargesPerJob: a body naming 2,000 contacts is 8 jobs and
// costs 8 tokens, so a tenant cannot grow the queue faster than its rate by
// sending large bodies; the one that overdraws is still queued.
func TestAdmissionChargesPerJob(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	h, _ := admissionHarness(t, 0.001, 10)
	many, _ := manyContactsBody(f.AccountID, 1, kommo.MaxWebhookContacts)
	if resp := h.postForm(f.WebhookPath(), many); resp.Status != http.StatusOK {
		t.Fatalf("2,000 contacts: status %d (%s)", resp.Status, resp.Body)
	}
	body := fixtureBody(t, fixtures.AddContact)
	for i := range 2 {
		if resp := h.postForm(f.WebhookPath(), body); resp.Status != http.StatusOK {
			t.Fatalf("webhook %d within the 2 tokens left: status %d (%s)", i, resp.Status, resp.Body)
		}
	}
	if resp := h.postForm(f.WebhookPath(), body); resp.Status != http.StatusTooManyRequests {
		t.Fatalf("webhook after 10 jobs: status %d, want 429", resp.Status)
	}
	if n := len(h.reserveAll()); n != 10 {
		t.Fatalf("%d jobs queued, want 8 + 2", n)
	}
}

// TestAdmissionPrioritisesQuietTenants: once a tenant has drained its
// bucket its jobs get a later beanstalkd priority, so the next job of a
// quiet tenant is reserved before the noisy tenant's backlog.
func TestAdmissionPrioritisesQuietTenants(t *testing.T) {
	noisy, quiet := newTenant(t, tenantOpts{}), newTenant(t, tenantOpts{})
	h, _ := admissionHarness(t, 0.001, 8)
	body := fixtureBody(t, fixtures.AddContact)
	for range 8 {
		if resp := h.postForm(noisy.WebhookPath(), body); resp.Status != http.StatusOK {
			t.Fatalf("noisy tenant: status %d (%s)", resp.Status, resp.Body)
		}
	}
	if resp := h.postForm(quiet.WebhookPath(), body); resp.Status != http.StatusOK {
		t.Fatalf("quiet tenant: status %d (%s)", resp.Status, resp.Body)
	}
	c := h.consumer()
	var order []string
	var pris []uint32
	for range 9 {
		job, err := c.Reserve(context.Background(), 0)
		must(t, err)
		env, err := queue.Decode(job.Body)
		must(t, err)
		order = append(order, env.Tenant)
		pris = append(pris, job.Pri)
	}
	// The noisy tenant's first job was queued on a full bucket, as the
	// quiet tenant's; its 7 later ones come after.
	if i := slices.Index(order, quiet.TenantID()); i != 1 {
		t.Errorf("quiet tenant's job reserved at %d of %v (priorities %v), want 1", i, order, pris)
	}
	if pris[len(pris)-1] <= 1024 {
		t.Errorf("the noisy tenant's last job has priority %d, want later than 1024", pris[len(pris)-1])
	}
}

// TestAdmissionBoundsRequestsInFlight: while a tenant's webhook waits for
// beanstalkd, its next is refused (429) when its in-flight bound is 1, and
// another tenant's is refused 503 when the server's bound is reached too.
func TestAdmissionBoundsRequestsInFlight(t *testing.T) {
	first, second := newTenant(t, tenantOpts{}), newTenant(t, tenantOpts{})
	gate := &blockingQueue{entered: make(chan struct{}, 4), open: make(chan struct{})}
	h := newHarness(t, harnessOpts{
		// The held puts wait up to AnswerWithin: long enough for the test.
		config: func(c *webhookserver.Config) {
			c.TenantInFlight, c.MaxInFlight, c.AnswerWithin = 1, 2, 1900*time.Millisecond
		},
		queue: func(q webhookserver.Queue) webhookserver.Queue { gate.Queue = q; return gate },
	})
	body := fixtureBody(t, fixtures.AddContact)
	var wg sync.WaitGroup
	post := func(path string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp := h.postForm(path, body); resp.Status != http.StatusOK {
				t.Errorf("held webhook: status %d (%s)", resp.Status, resp.Body)
			}
		}()
		<-gate.entered
	}
	post(first.WebhookPath())
	resp := h.postForm(first.WebhookPath(), body)
	if resp.Status != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second webhook of a tenant with one in flight: status %d, Retry-After %q, want 429 with it",
			resp.Status, resp.Header.Get("Retry-After"))
	}
	post(second.WebhookPath())
	third := newTenant(t, tenantOpts{})
	resp = h.postForm(third.WebhookPath(), body)
	if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("webhook with the server's 2 places taken: status %d, Retry-After %q, want 503 with it",
			resp.Status, resp.Header.Get("Retry-After"))
	}
	close(gate.open)
	wg.Wait()
	if resp := h.postForm(third.WebhookPath(), body); resp.Status != http.StatusOK {
		t.Errorf("once the held webhooks are answered: status %d (%s)", resp.Status, resp.Body)
	}
}

// blockingQueue holds every Put until open is closed, telling entered.
type blockingQueue struct {
	webhookserver.Queue
	entered chan struct{}
	open    chan struct{}
}

func (q *blockingQueue) Put(ctx context.Context, tube string, body []byte, pri uint32, delay, ttr time.Duration) (uint64, error) {
	q.entered <- struct{}{}
	select {
	case <-q.open:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return q.Queue.Put(ctx, tube, body, pri, delay, ttr)
}

// TestJobsStayWithinMaxJobSize: with a beanstalkd that takes smaller jobs
// than 250 contacts make, a webhook's contacts are spread over more jobs,
// each within the size, none lost; a size below one contact's job is
// refused at start.
func TestJobsStayWithinMaxJobSize(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	const maxJob = 2000
	h := newHarness(t, harnessOpts{config: func(c *webhookserver.Config) { c.MaxJobBytes = maxJob }})
	many, ids := manyContactsBody(f.AccountID, 7_000_000_000, kommo.MaxWebhookContacts)
	if resp := h.postForm(f.WebhookPath(), many); resp.Status != http.StatusOK {
		t.Fatalf("2,000 contacts: status %d (%s)", resp.Status, resp.Body)
	}
	var named []int64
	bodies := h.reserveAllBodies()
	for _, body := range bodies {
		if len(body) > maxJob {
			t.Errorf("a job of %d bytes, max-job-size %d", len(body), maxJob)
		}
		env, err := queue.Decode(body)
		must(t, err)
		for _, c := range contactsOf(t, env) {
			named = append(named, c.ID)
		}
	}
	slices.Sort(named)
	if !slices.Equal(named, ids) {
		t.Fatalf("%d jobs name %d contacts, want the %d once each", len(bodies), len(named), len(ids))
	}
	cfg := webhookserver.DefaultConfig()
	cfg.MaxJobBytes = queue.SmallestContactsJobBound - 1
	_, err := webhookserver.New(cfg, webhookserver.Deps{})
	if err == nil || !strings.Contains(err.Error(), "max-job-size") {
		t.Fatalf("New with a max-job-size below one contact's job: %v, want an error naming it", err)
	}
}
