package webhookserver_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/fixtures"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// privateBeanstalkd starts a beanstalkd (binlog on) this test may kill.
func privateBeanstalkd(t *testing.T) *testenv.Beanstalkd {
	t.Helper()
	bs, err := testenv.StartBeanstalkd(context.Background(), t.TempDir())
	must(t, err)
	t.Cleanup(bs.Stop)
	return bs
}

// addBody is the add sample for contact id, so every request is told apart.
func addBody(t testing.TB, id int) string {
	t.Helper()
	form, err := fixtures.KommoWebhook(fixtures.AddContact)
	must(t, err)
	form.Set("contacts[add][0][id]", strconv.Itoa(id))
	return form.Encode()
}

// TestBeanstalkdDownIsA503: with beanstalkd gone no webhook gets a 2xx
// and /readyz says not ready; once it is back both recover.
func TestBeanstalkdDownIsA503(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	bs := privateBeanstalkd(t)
	h := newHarness(t, harnessOpts{beanstalkd: bs.Addr()})
	if resp := h.postForm(f.WebhookPath(), addBody(t, 1)); resp.Status != http.StatusOK {
		t.Fatalf("before the kill: status %d (%s)", resp.Status, resp.Body)
	}
	bs.Kill()
	for i := range 5 {
		if resp := h.postForm(f.WebhookPath(), addBody(t, 10+i)); resp.Status != http.StatusServiceUnavailable {
			t.Errorf("beanstalkd down: status %d (%s), want 503", resp.Status, resp.Body)
		} else if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	if resp := h.request(http.MethodGet, "/readyz", "", "", nil); resp.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with beanstalkd down: %d, want 503", resp.Status)
	}
	if resp := h.request(http.MethodGet, "/healthz", "", "", nil); resp.Status != http.StatusOK {
		t.Errorf("/healthz with beanstalkd down: %d, want 200 (the process is fine)", resp.Status)
	}
	must(t, bs.Start(context.Background()))
	if resp := h.request(http.MethodGet, "/readyz", "", "", nil); resp.Status != http.StatusOK {
		t.Errorf("/readyz after the restart: %d", resp.Status)
	}
	if resp := h.postForm(f.WebhookPath(), addBody(t, 99)); resp.Status != http.StatusOK {
		t.Errorf("after the restart: status %d (%s)", resp.Status, resp.Body)
	}
}

// TestAcknowledgedWebhooksSurviveKill9 (invariant 1): webhooks are sent
// concurrently while beanstalkd is killed with SIGKILL half-way; after a
// restart on the same binlog, every request that was answered 2xx is in
// the queue.
func TestAcknowledgedWebhooksSurviveKill9(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	bs := privateBeanstalkd(t)
	h := newHarness(t, harnessOpts{beanstalkd: bs.Addr(), config: withoutAdmission})
	const total, workers, killAfter = 400, 8, 150
	var (
		mu       sync.Mutex
		acked    = map[int64]bool{}
		refused  int
		killOnce sync.Once
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := next.Add(1)
				if id > total {
					return
				}
				resp := h.postForm(f.WebhookPath(), addBody(t, int(id)))
				mu.Lock()
				switch resp.Status {
				case http.StatusOK:
					acked[id] = true
				case http.StatusServiceUnavailable:
					refused++
				default:
					t.Errorf("contact %d: status %d (%s)", id, resp.Status, resp.Body)
				}
				n := len(acked)
				mu.Unlock()
				if n >= killAfter {
					killOnce.Do(bs.Kill)
				}
			}
		}()
	}
	wg.Wait()
	if refused == 0 {
		t.Fatalf("no request was refused: the kill did not happen while sending (%d acked)", len(acked))
	}
	must(t, bs.Start(context.Background()))
	queued := map[int64]bool{}
	for _, env := range h.reserveAll() {
		for _, c := range contactsOf(t, env) {
			queued[c.ID] = true
		}
	}
	lost := 0
	for id := range acked {
		if !queued[id] {
			lost++
			t.Errorf("contact %d was answered 200 but is not in beanstalkd after kill -9 and restart", id)
		}
	}
	t.Logf("%d acknowledged, %d refused with 503, %d jobs after the restart, %d lost", len(acked), refused, len(queued), lost)
}

// TestHungQueueStillAnswersInTime (invariant 2): with beanstalkd frozen
// (SIGSTOP: connections are accepted, nothing is answered) every webhook
// still gets its answer — a 503 — inside Kommo's 2 s, also when more
// requests wait than the producer has connections.
func TestHungQueueStillAnswersInTime(t *testing.T) {
	f := newTenant(t, tenantOpts{})
	bs := privateBeanstalkd(t)
	// More webhooks of one tenant wait than its in-flight bound lets in.
	h := newHarness(t, harnessOpts{beanstalkd: bs.Addr(), config: withoutAdmission})
	if resp := h.postForm(f.WebhookPath(), addBody(t, 1)); resp.Status != http.StatusOK {
		t.Fatalf("before the freeze: status %d", resp.Status)
	}
	must(t, syscall.Kill(bs.PID(), syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(bs.PID(), syscall.SIGCONT) })
	const concurrent = 12 // the harness producer has 8 connections
	var wg sync.WaitGroup
	for i := range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp := h.postForm(f.WebhookPath(), addBody(t, 100+i))
			elapsed := time.Since(start)
			if resp.Status != http.StatusServiceUnavailable {
				t.Errorf("frozen queue: status %d (%s), want 503", resp.Status, resp.Body)
			}
			if elapsed >= 2*time.Second {
				t.Errorf("answered after %v: Kommo gives up at 2s", elapsed)
			}
		}()
	}
	wg.Wait()
	if resp := h.request(http.MethodGet, "/readyz", "", "", nil); resp.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a frozen beanstalkd: %d, want 503", resp.Status)
	}
}
