package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"

	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// setup returns a producer and a consumer on a fresh tube of the shared
// beanstalkd; the tube is emptied when the test ends.
func setup(t testing.TB) (*Producer, *Consumer, string) {
	t.Helper()
	addr := testenv.BeanstalkdAddr(t)
	tube := testenv.Tube("queue-test")
	p := NewProducer(addr, ProducerOptions{})
	t.Cleanup(func() { p.Close() })
	return p, newConsumer(t, addr, tube), tube
}

func newConsumer(t testing.TB, addr, tube string) *Consumer {
	t.Helper()
	c, err := NewConsumer(addr, []string{tube}, ConsumerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drain(t, addr, tube); c.Close() })
	return c
}

// drain deletes every job left in tube so the shared server does not
// accumulate them. It talks to beanstalkd directly (no stats-job per job),
// since benchmarks leave many.
func drain(t testing.TB, addr, tube string) {
	conn, err := beanstalk.Dial("tcp", addr)
	if err != nil {
		t.Errorf("drain %s: %v", tube, err)
		return
	}
	defer conn.Close()
	for {
		if n, err := (&beanstalk.Tube{Conn: conn, Name: tube}).Kick(1 << 30); err != nil || n == 0 {
			break
		}
	}
	ts := beanstalk.NewTubeSet(conn, tube)
	for {
		id, _, err := ts.Reserve(0)
		if err != nil {
			if !errors.Is(err, beanstalk.ErrTimeout) {
				t.Errorf("drain %s: %v", tube, err)
			}
			return
		}
		if err := conn.Delete(id); err != nil {
			t.Errorf("drain %s: %v", tube, err)
			return
		}
	}
}

func put(t testing.TB, p *Producer, tube, body string) uint64 {
	t.Helper()
	id, err := p.Put(context.Background(), tube, []byte(body), 100, 0, time.Minute)
	if err != nil {
		t.Fatalf("put %q: %v", body, err)
	}
	return id
}

func reserve(t testing.TB, c *Consumer, timeout time.Duration) *Job {
	t.Helper()
	job, err := c.Reserve(context.Background(), timeout)
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	return job
}

func stats(t testing.TB, c *Consumer, tube string) TubeStats {
	t.Helper()
	s, err := c.StatsTube(context.Background(), tube)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutReserveDelete(t *testing.T) {
	p, c, tube := setup(t)
	ctx := context.Background()
	id := put(t, p, tube, "hello")
	job := reserve(t, c, 5*time.Second)
	if job.ID != id || string(job.Body) != "hello" || job.Tube != tube || job.Pri != 100 ||
		job.TTR != time.Minute || job.Reserves != 1 || job.Releases != 0 {
		t.Fatalf("reserved %+v; want id %d body hello in %s", job, id, tube)
	}
	if s := stats(t, c, tube); s.Reserved != 1 || s.Ready != 0 {
		t.Fatalf("stats while reserved: %+v", s)
	}
	if err := c.Delete(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, job.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete = %v; want ErrNotFound", err)
	}
	if _, err := c.Reserve(ctx, 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("reserve on an empty tube = %v; want ErrTimeout", err)
	}
	if s := stats(t, c, tube); s.Ready+s.Reserved+s.Delayed+s.Buried != 0 || s.TotalJobs != 1 {
		t.Fatalf("stats after delete: %+v", s)
	}
}

func TestReleaseWithDelay(t *testing.T) {
	p, c, tube := setup(t)
	ctx := context.Background()
	put(t, p, tube, "retry me")
	job := reserve(t, c, 5*time.Second)
	if err := c.Release(ctx, job.ID, 7, time.Second); err != nil {
		t.Fatal(err)
	}
	if s := stats(t, c, tube); s.Delayed != 1 || s.Ready != 0 {
		t.Fatalf("stats after a delayed release: %+v", s)
	}
	if _, err := c.Reserve(ctx, 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a delayed job was reservable at once: %v", err)
	}
	again := reserve(t, c, 10*time.Second)
	if again.ID != job.ID || again.Releases != 1 || again.Reserves != 2 || again.Pri != 7 {
		t.Fatalf("after release: %+v", again)
	}
	if err := c.Touch(ctx, again.ID); err != nil {
		t.Fatalf("touch a reserved job: %v", err)
	}
	if err := c.Delete(ctx, again.ID); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"release": c.Release(ctx, again.ID, 0, 0),
		"bury":    c.Bury(ctx, again.ID, 0),
		"touch":   c.Touch(ctx, again.ID),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of a deleted job = %v; want ErrNotFound", name, err)
		}
	}
}

func TestBuryAndKick(t *testing.T) {
	p, c, tube := setup(t)
	ctx := context.Background()
	for i := range 3 {
		put(t, p, tube, fmt.Sprint("job ", i))
	}
	delayed, err := p.Put(ctx, tube, []byte("later"), 0, time.Hour, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		job := reserve(t, c, 5*time.Second)
		if err := c.Bury(ctx, job.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	if s := stats(t, c, tube); s.Buried != 2 || s.Ready != 1 || s.Delayed != 1 {
		t.Fatalf("stats after burying two: %+v", s)
	}
	n, err := c.KickBuried(ctx, tube)
	if err != nil || n != 2 {
		t.Fatalf("KickBuried = %d, %v; want 2", n, err)
	}
	if s := stats(t, c, tube); s.Buried != 0 || s.Ready != 3 || s.Delayed != 1 {
		t.Fatalf("KickBuried touched delayed jobs or missed buried ones: %+v", s)
	}
	for range 3 {
		job := reserve(t, c, 5*time.Second)
		if job.ID == delayed {
			t.Fatal("the delayed job was reserved early")
		}
		if err := c.Delete(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
	}
	// With nothing buried, beanstalkd's kick moves delayed jobs.
	if n, err := c.Kick(ctx, tube, 10); err != nil || n != 1 {
		t.Fatalf("Kick = %d, %v; want the one delayed job", n, err)
	}
	if job := reserve(t, c, 5*time.Second); job.ID != delayed || job.Kicks != 1 {
		t.Fatalf("after kick reserved %+v; want job %d kicked once", job, delayed)
	}
	if s, err := c.StatsTube(ctx, testenv.Tube("never-used")); err != nil || s != (TubeStats{}) {
		t.Fatalf("stats of a missing tube = %+v, %v; want zeros", s, err)
	}
}

// A cancelled ctx ends Reserve without dropping the connection, so jobs the
// consumer already holds stay reserved by it.
func TestReserveHonoursCancel(t *testing.T) {
	p, c, tube := setup(t)
	put(t, p, tube, "held")
	held := reserve(t, c, 5*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	start := time.Now()
	job, err := c.Reserve(ctx, time.Hour)
	if !errors.Is(err, context.Canceled) || job != nil {
		t.Fatalf("Reserve after cancel = %v, %v; want context.Canceled", job, err)
	}
	if waited := time.Since(start); waited > time.Minute {
		t.Fatalf("Reserve ran into its own timeout (%v) instead of noticing the cancel", waited)
	}
	if s := stats(t, c, tube); s.Reserved != 1 {
		t.Fatalf("held job no longer reserved after the cancel: %+v", s)
	}
	if err := c.Touch(context.Background(), held.ID); err != nil {
		t.Fatalf("touch the held job after the cancel: %v", err)
	}
	if _, err := c.Reserve(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reserve with a cancelled ctx = %v", err)
	}
}

func TestConcurrentPutsGetDistinctIDs(t *testing.T) {
	p, c, tube := setup(t)
	const goroutines, each = 32, 20
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				id, err := p.Put(context.Background(), tube, fmt.Appendf(nil, "%d/%d", g, i), 0, 0, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d returned twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Fatalf("%d distinct ids; want %d", len(seen), goroutines*each)
	}
	if s := stats(t, c, tube); s.Ready != goroutines*each {
		t.Fatalf("ready = %d; want %d", s.Ready, goroutines*each)
	}
}

func TestPutRefusesBadTubesAndOversizeJobs(t *testing.T) {
	p, c, tube := setup(t)
	ctx := context.Background()
	for _, bad := range []string{"", "-lead", "has space", "uni\\code", string(bytes.Repeat([]byte("a"), 200))} {
		if _, err := p.Put(ctx, bad, []byte("x"), 0, 0, time.Minute); !errors.Is(err, ErrBadTube) {
			t.Errorf("Put to %q = %v; want ErrBadTube", bad, err)
		}
	}
	if _, err := NewConsumer("127.0.0.1:1", []string{"ok", "bad tube"}, ConsumerOptions{}); !errors.Is(err, ErrBadTube) {
		t.Errorf("NewConsumer with a bad tube = %v", err)
	}
	// testenv runs beanstalkd with -z 1 MiB.
	_, err := p.Put(ctx, tube, make([]byte, 2<<20), 0, 0, time.Minute)
	if err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("oversize put = %v; want a server refusal, not unavailability", err)
	}
	// The connection stays in step after the refusal.
	id := put(t, p, tube, "after")
	if job := reserve(t, c, 5*time.Second); job.ID != id || string(job.Body) != "after" {
		t.Fatalf("after an oversize put, reserved %+v", job)
	}
}

func TestClosedProducerAndConsumerRefuse(t *testing.T) {
	p, c, tube := setup(t)
	p.Close()
	p.Close()
	if _, err := p.Put(context.Background(), tube, []byte("x"), 0, 0, time.Minute); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v", err)
	}
	c.Close()
	if _, err := c.Reserve(context.Background(), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Reserve after Close = %v", err)
	}
}

// beanstalkd killed with SIGKILL and restarted on its binlog: jobs
// acknowledged before survive, a put while it is down fails with
// ErrUnavailable (never a false success), and both sides reconnect.
func TestSurvivesBeanstalkdKillAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private beanstalkd")
	}
	ctx := context.Background()
	srv, err := testenv.StartBeanstalkd(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	const tube = "durable"
	p := NewProducer(srv.Addr(), ProducerOptions{Conns: 2})
	defer p.Close()
	c, err := NewConsumer(srv.Addr(), []string{tube}, ConsumerOptions{MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	before := put(t, p, tube, "before")
	held := reserve(t, c, 5*time.Second) // reserved when the server dies
	if held.ID != before {
		t.Fatalf("reserved %d; want %d", held.ID, before)
	}
	second := put(t, p, tube, "second")

	srv.Kill()
	if _, err := p.Put(ctx, tube, []byte("while down"), 0, 0, time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("put while down = %v; want ErrUnavailable", err)
	}
	if err := p.Ping(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ping while down = %v; want ErrUnavailable", err)
	}
	if _, err := c.Reserve(ctx, time.Second); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("reserve while down = %v; want ErrUnavailable", err)
	}

	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	after := put(t, p, tube, "after")

	got := map[uint64]string{}
	for range 3 {
		job, err := c.Reserve(ctx, 5*time.Second)
		for errors.Is(err, ErrUnavailable) { // the consumer may still be backing off
			job, err = c.Reserve(ctx, 5*time.Second)
		}
		if err != nil {
			t.Fatalf("reserve after restart: %v", err)
		}
		got[job.ID] = string(job.Body)
		if err := c.Delete(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
	}
	want := map[uint64]string{before: "before", second: "second", after: "after"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after restart reserved %v; want %v", got, want)
	}
	if _, err := c.Reserve(ctx, 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a put that failed while down left a job behind: %v", err)
	}
}

// BenchmarkProducerPut measures acknowledged puts (INSERTED, binlog on)
// from 32 goroutines, like wrk -c32 against the webhook server, for a few
// pool sizes.
func BenchmarkProducerPut(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 600) // about one encoded one-contact webhook
	for _, conns := range []int{1, 4, 8, 32} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			addr := testenv.BeanstalkdAddr(b)
			tube := testenv.Tube("queue-bench")
			b.Cleanup(func() { drain(b, addr, tube) })
			p := NewProducer(addr, ProducerOptions{Conns: conns})
			defer p.Close()
			b.SetBytes(int64(len(body)))
			b.SetParallelism(16) // 16 × GOMAXPROCS(2) = 32 goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.Put(context.Background(), tube, body, 0, 0, time.Minute); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
