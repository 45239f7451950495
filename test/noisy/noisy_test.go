// Package noisy proves that one tenant flooding the webhook server does not
// take the others down: the whole system runs as real processes
// (internal/devenv, as `make dev`), with two sandbox tenants.
package noisy

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kommo-unisender/kommo-unisender/api/v1alpha1"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/devenv/devtest"
)

const (
	// quota is each tenant's admission (--tenant-rate jobs/s, and a burst
	// of two seconds' worth), low so that 20 times it is easy to send.
	quota      = 5
	quotaBurst = 2 * quota
	// floodRate is what the noisy tenant sends: 20 times its quota.
	floodRate = 20 * quota
	// floodIDs is how many of its contacts each flooding webhook names.
	floodIDs = 100
	// quietEvery is the quiet tenant's normal rate: one change every
	// 400 ms, well within its quota.
	quietEvery = 400 * time.Millisecond
	// phase is how long each measurement lasts.
	phase = 10 * time.Second
	// latencyFloor is the least idle p99 the ratio is taken against. One
	// integration's Kommo reads are spaced 1/7 s plus 10% (157 ms) and a
	// batch waits up to 50 ms for more jobs: below 250 ms a difference is
	// one budget slot or the scheduler of a shared 2-core machine, not
	// unfairness.
	latencyFloor = 250 * time.Millisecond
	// beanstalkdRSSBound is what beanstalkd may hold at the flood's peak:
	// the noisy tenant's admitted jobs are small (100 ids) and few.
	beanstalkdRSSBound = 64 << 20
)

// tenant is one sandbox tenant as the test sees it: Kommo's side (its
// account, its webhook URL as Kommo lists it) and Unisender's (its list).
type tenant struct {
	devenv.Tenant
	accountID int64
	listID    int64
	hookURL   string
}

func TestNoisyTenantDoesNotDelayAQuietOne(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := devtest.Start(t, ctx, devenv.Options{
		Sandbox: true, SandboxAccessTokenTTL: time.Hour,
		WebhookServerArgs: []string{"--tenant-rate=" + strconv.Itoa(quota), "--tenant-burst=" + strconv.Itoa(quotaBurst)},
	})
	noisy := applyTenant(t, ctx, env, devenv.Tenant{Namespace: "noisy", Integration: "kommo", Binding: "news",
		Subdomain: "noisy", ListTitle: "Noisy contacts"}, 500)
	quiet := applyTenant(t, ctx, env, devenv.Tenant{Namespace: "quiet", Integration: "kommo", Binding: "news",
		Subdomain: "quiet", ListTitle: "Quiet contacts"}, 0)
	// The test is the quiet tenant's Kommo: it posts each change's webhook
	// itself, so that the latency runs from the webhook.
	sandbox(t, http.MethodPut, env.KommoURL+"/_admin/accounts/quiet/webhooks/disabled",
		map[string]any{"destination": quiet.hookURL, "disabled": true}, nil)
	noisyIDs := contactIDs(t, env, noisy.Subdomain)

	idle := measureQuiet(t, ctx, env, quiet, "idle", nil)
	rss := &peakRSS{pid: env.Beanstalkd.PID()}
	var statuses map[int]int
	var sent int
	flooded := measureQuiet(t, ctx, env, quiet, "flood", func(stop <-chan struct{}) {
		statuses, sent = flood(t, noisy, noisyIDs, rss, stop)
	})

	idleP99, floodP99 := p99(idle.latencies), p99(flooded.latencies)
	base := max(idleP99, latencyFloor)
	t.Logf("quiet tenant, %d changes a phase at one per %v: p99 idle %v (median %v), under flood %v (median %v); bound 2 x max(idle p99, %v) = %v",
		len(idle.latencies), quietEvery, idleP99, median(idle.latencies), floodP99, median(flooded.latencies), latencyFloor, 2*base)
	rate := float64(sent) / phase.Seconds()
	t.Logf("noisy tenant: %d webhooks in %v (%.0f/s, %.1f x its quota of %d jobs/s), %d ids each; answers %v",
		sent, phase, rate, rate/quota, quota, floodIDs, statuses)
	t.Logf("beanstalkd VmRSS: %d KiB before the flood, peak %d KiB during it (bound %d KiB)", rss.first/1024, rss.peak/1024, beanstalkdRSSBound/1024)
	t.Logf("webhook server: %s", refusedMetrics(t, env))

	if floodP99 > 2*base {
		t.Errorf("quiet tenant's p99 under flood %v > 2 x %v", floodP99, base)
	}
	if lost := append(idle.lost, flooded.lost...); len(lost) > 0 {
		t.Errorf("quiet tenant's changes never reached Unisender: %v", lost)
	}
	if statuses[http.StatusTooManyRequests] == 0 {
		t.Errorf("the noisy tenant was never refused 429: %v", statuses)
	}
	if other := sent - statuses[http.StatusOK] - statuses[http.StatusTooManyRequests]; other != 0 {
		t.Errorf("%d of the noisy tenant's webhooks got neither 200 nor 429: %v", other, statuses)
	}
	if sent < floodRate*int(phase.Seconds())*9/10 {
		t.Errorf("sent %d flooding webhooks, want about %d (20 x quota): the flood was not one", sent, floodRate*int(phase.Seconds()))
	}
	if rss.peak > beanstalkdRSSBound {
		t.Errorf("beanstalkd VmRSS peaked at %d KiB, bound %d KiB", rss.peak/1024, beanstalkdRSSBound/1024)
	}
}

// applyTenant creates a sandbox account seeded with contacts and its
// tenant, and waits until the import is done and Kommo lists its webhook.
func applyTenant(t *testing.T, ctx context.Context, env *devenv.Env, tn devenv.Tenant, contacts int) *tenant {
	t.Helper()
	sandbox(t, http.MethodPost, env.KommoURL+"/_admin/accounts", map[string]string{"subdomain": tn.Subdomain}, nil)
	if contacts > 0 {
		sandbox(t, http.MethodPost, env.KommoURL+"/_admin/accounts/"+tn.Subdomain+"/seed", map[string]int{"n": contacts}, nil)
	}
	if err := env.ApplyTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
	out := &tenant{Tenant: tn}
	devtest.WaitUntil(t, tn.Namespace+"'s import", 90*time.Second, func() (bool, string) {
		var b v1alpha1.UnisenderBinding
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: tn.Namespace, Name: tn.Binding}, &b)
		st := b.Status
		out.listID = st.ListID
		return err == nil && st.Import != nil && st.Import.Phase == v1alpha1.ImportCompleted && st.ListID != 0,
			fmt.Sprintf("status %+v (%v)", st, err)
	})
	var ki v1alpha1.KommoIntegration
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: tn.Namespace, Name: tn.Integration}, &ki); err != nil {
		t.Fatal(err)
	}
	out.accountID = ki.Status.AccountID
	devtest.WaitUntil(t, tn.Namespace+"'s webhook in Kommo", 30*time.Second, func() (bool, string) {
		var hooks []struct{ Destination string }
		sandbox(t, http.MethodGet, env.KommoURL+"/_admin/accounts/"+tn.Subdomain+"/webhooks", nil, &hooks)
		for _, h := range hooks {
			if strings.Contains(h.Destination, "/kommo/webhooks/"+tn.Namespace+"."+tn.Binding+"/") {
				out.hookURL = h.Destination
				return true, ""
			}
		}
		return false, fmt.Sprintf("hooks %v", hooks)
	})
	return out
}

// phaseResult is one measurement of the quiet tenant.
type phaseResult struct {
	latencies []time.Duration
	lost      []string // e-mails that never reached the list
}

// measureQuiet makes the quiet tenant's changes for a phase — a new
// contact in Kommo, then its webhook — with load running alongside (nil:
// idle), and times each from its webhook until its e-mail is in the
// Unisender list.
func measureQuiet(t *testing.T, ctx context.Context, env *devenv.Env, q *tenant, name string, load func(stop <-chan struct{})) phaseResult {
	t.Helper()
	stop := make(chan struct{})
	var loadDone sync.WaitGroup
	if load != nil {
		loadDone.Add(1)
		go func() { defer loadDone.Done(); load(stop) }()
	}
	sentAt := map[string]time.Time{}
	seenAt := map[string]time.Time{}
	var mu sync.Mutex
	watchDone := make(chan struct{})
	go func() { // polls the list, noting when each e-mail appears
		defer close(watchDone)
		for {
			members := listEmails(t, env, q.listID)
			now := time.Now()
			mu.Lock()
			for email := range sentAt {
				if _, ok := seenAt[email]; !ok && members[email] {
					seenAt[email] = now
				}
			}
			done := len(seenAt) == len(sentAt)
			mu.Unlock()
			select {
			case <-stop:
				if done {
					return
				}
			case <-ctx.Done():
				return
			default:
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	begin := time.Now()
	for i := 0; time.Since(begin) < phase; i++ {
		email := fmt.Sprintf("quiet-%s-%d@example.com", name, i)
		var c struct{ ID int64 }
		sandbox(t, http.MethodPost, env.KommoURL+"/_admin/accounts/"+q.Subdomain+"/contacts",
			map[string]any{"name": "Quiet " + strconv.Itoa(i), "emails": []string{email}}, &c)
		mu.Lock()
		sentAt[email] = time.Now()
		mu.Unlock()
		if status := postWebhook(q, "add", []int64{c.ID}); status != http.StatusOK {
			t.Errorf("quiet tenant's webhook answered %d", status)
		}
		time.Sleep(time.Until(begin.Add(time.Duration(i+1) * quietEvery)))
	}
	close(stop)
	loadDone.Wait()
	select {
	case <-watchDone:
	case <-time.After(30 * time.Second):
	}
	mu.Lock()
	defer mu.Unlock()
	var r phaseResult
	for email, at := range sentAt {
		if seen, ok := seenAt[email]; ok {
			r.latencies = append(r.latencies, seen.Sub(at))
		} else {
			r.lost = append(r.lost, email)
		}
	}
	return r
}

// flood posts the noisy tenant's webhooks at floodRate until stop, each
// naming floodIDs of its contacts, sampling beanstalkd's RSS meanwhile; it
// returns the answers by status and how many were sent.
func flood(t *testing.T, n *tenant, ids []int64, rss *peakRSS, stop <-chan struct{}) (map[int]int, int) {
	statuses := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / floodRate)
	defer tick.Stop()
	rss.sample(t)
	begin, sent := time.Now(), 0
	for {
		select {
		case <-stop:
			wg.Wait()
			rss.sample(t)
			return statuses, sent
		case <-tick.C:
		}
		// A busy machine drops ticks: catch up, so the rate holds.
		for due := int(time.Since(begin).Seconds() * floodRate); sent < due; sent++ {
			first := (sent * floodIDs) % (len(ids) - floodIDs)
			wg.Add(1)
			go func() {
				defer wg.Done()
				status := postWebhook(n, "update", ids[first:first+floodIDs])
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}()
			if sent%floodRate == 0 {
				rss.sample(t)
			}
		}
	}
}

// postWebhook posts a Kommo webhook naming ids with action to the tenant's
// URL and returns the status; a 429 must say when to retry.
func postWebhook(tn *tenant, action string, ids []int64) int {
	form := url.Values{
		"account[id]":        {strconv.FormatInt(tn.accountID, 10)},
		"account[subdomain]": {tn.Subdomain},
	}
	for i, id := range ids {
		k := fmt.Sprintf("contacts[%s][%d]", action, i)
		form.Set(k+"[id]", strconv.FormatInt(id, 10))
		form.Set(k+"[type]", "contact")
	}
	resp, err := http.Post(tn.hookURL, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return -1
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
		return -429 // a refusal that does not say when to retry
	}
	return resp.StatusCode
}

// peakRSS samples a process's resident memory.
type peakRSS struct {
	pid         int
	first, peak int64
}

func (p *peakRSS) sample(t *testing.T) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/status")
	if err != nil {
		t.Errorf("beanstalkd's status: %v", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if p.first == 0 {
				p.first = kb * 1024
			}
			p.peak = max(p.peak, kb*1024)
		}
	}
}

func contactIDs(t *testing.T, env *devenv.Env, subdomain string) []int64 {
	var contacts []struct {
		ID   int64
		Type string
	}
	sandbox(t, http.MethodGet, env.KommoURL+"/_admin/accounts/"+subdomain+"/contacts", nil, &contacts)
	var ids []int64
	for _, c := range contacts {
		if c.Type != "company" {
			ids = append(ids, c.ID)
		}
	}
	if len(ids) < 2*floodIDs {
		t.Fatalf("%s has %d contacts, want at least %d", subdomain, len(ids), 2*floodIDs)
	}
	return ids
}

func listEmails(t *testing.T, env *devenv.Env, listID int64) map[string]bool {
	var members []struct {
		Email      string `json:"email"`
		ListStatus string `json:"list_status"`
	}
	if err := devenv.SandboxJSON(http.MethodGet, fmt.Sprintf("%s/_admin/lists/%d/members", env.UnisenderURL, listID), nil, &members); err != nil {
		t.Error(err)
	}
	out := map[string]bool{}
	for _, m := range members {
		if m.ListStatus == "active" {
			out[m.Email] = true
		}
	}
	return out
}

// refusedMetrics is the webhook server's refusal counters.
func refusedMetrics(t *testing.T, env *devenv.Env) string {
	resp, err := http.Get(env.WebhookURL + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 1<<20)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	var lines []string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "kommo_unisender_webhook_refused_total{") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "; ")
}

func p99(d []time.Duration) time.Duration { return quantile(d, 0.99) }

func median(d []time.Duration) time.Duration { return quantile(d, 0.5) }

// quantile is the nearest-rank quantile of d.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(d))
	i := min(len(s)-1, int(float64(len(s))*q+0.999999)-1)
	return s[max(i, 0)]
}

func sandbox(t *testing.T, method, u string, body, out any) {
	t.Helper()
	if err := devenv.SandboxJSON(method, u, body, out); err != nil {
		t.Fatal(err)
	}
}
