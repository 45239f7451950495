package deadletters

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beanstalkd/go-beanstalk"
	"github.com/go-logr/logr"

	"github.com/kommo-unisender/kommo-unisender/internal/queue"
	"github.com/kommo-unisender/kommo-unisender/internal/store"
	"github.com/kommo-unisender/kommo-unisender/internal/syncer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/worker"
)

// noTenants resolves nothing: the jobs of these tests are poison and never
// reach it.
type noTenants struct{}

func (noTenants) Resolve(context.Context, tenant.Key) (syncer.Tenant, error) {
	return syncer.Tenant{}, worker.ErrTenantGone
}

type env struct {
	t    *testing.T
	dsn  string
	addr string
	tube string
	st   *store.Store
	prod *queue.Producer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dsn: testenv.MySQLDSN(t), addr: testenv.BeanstalkdAddr(t), tube: testenv.Tube("deadletters")}
	st, err := store.Open(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.st = st
	e.prod = queue.NewProducer(e.addr, queue.ProducerOptions{})
	t.Cleanup(func() { e.prod.Close() })
	return e
}

// buryWithWorker runs the real worker until it has buried n jobs.
func (e *env) buryWithWorker(n int) {
	e.t.Helper()
	w, err := worker.New(worker.Config{BeanstalkdAddr: e.addr, Tube: e.tube, Store: e.st, Resolver: noTenants{}, Log: logr.Discard()})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("worker.Run: %v", err)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for e.stats().Buried < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("the worker buried %d jobs, want %d", e.stats().Buried, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) stats() queue.TubeStats {
	e.t.Helper()
	c, err := queue.NewConsumer(e.addr, []string{e.tube}, queue.ConsumerOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	s, err := c.StatsTube(context.Background(), e.tube)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) put(body string) uint64 {
	e.t.Helper()
	id, err := e.prod.Put(context.Background(), e.tube, []byte(body), 1024, 0, time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func (e *env) run(args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), append([]string{args[0], "--mysql-dsn=" + e.dsn}, args[1:]...), &out)
	return out.String(), err
}

// peek returns the body of the next ready job of the tube.
func (e *env) peekReady() string {
	e.t.Helper()
	c, err := beanstalk.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	_, body, err := (&beanstalk.Tube{Conn: c, Name: e.tube}).PeekReady()
	if err != nil {
		e.t.Fatal(err)
	}
	return string(body)
}

// A poison job buried by the worker shows in the list with its reason;
// requeue puts it back in the tube, removes the buried original and marks
// the dead letter.
func TestListAndRequeueAPoisonJob(t *testing.T) {
	e := newEnv(t)
	const garbage = "garbage, not a job"
	jobID := e.put(garbage)
	e.buryWithWorker(1)

	out, err := e.run("list")
	if err != nil {
		t.Fatal(err)
	}
	letters, err := e.st.ListDeadLetters(context.Background(), store.DeadLetterFilter{})
	if err != nil || len(letters) != 1 || letters[0].JobID != jobID {
		t.Fatalf("dead letters %v, %v: want the worker's record of job %d", letters, err, jobID)
	}
	id := strconv.FormatInt(letters[0].ID, 10)
	if !strings.Contains(out, "ID") || !strings.Contains(out, "bad job envelope") || !strings.Contains(out, "(undecodable)") ||
		!strings.Contains(out, "\n"+id+" ") {
		t.Fatalf("list output lacks the dead letter, its reason or its tenant:\n%s", out)
	}

	out, err = e.run("requeue", "--beanstalkd-addr="+e.addr, id)
	if err != nil {
		t.Fatalf("requeue: %v\n%s", err, out)
	}
	if !strings.Contains(out, "buried original deleted") {
		t.Errorf("requeue output: %s", out)
	}
	if s := e.stats(); s.Ready != 1 || s.Buried != 0 {
		t.Fatalf("tube %+v: want the job ready again and the buried copy gone", s)
	}
	if body := e.peekReady(); body != garbage {
		t.Fatalf("requeued body %q, want the original", body)
	}
	d, err := e.st.GetDeadLetter(context.Background(), letters[0].ID)
	if err != nil || d.RequeuedAt == nil || d.RequeuedJobID == 0 {
		t.Fatalf("dead letter after requeue: %+v, %v; want it marked with the new job", d, err)
	}

	if out, _ := e.run("list"); !strings.Contains(out, "no dead letters") {
		t.Errorf("list (pending only) after requeue:\n%s", out)
	}
	if out, _ := e.run("list", "--all"); !strings.Contains(out, fmt.Sprintf("as job %d", d.RequeuedJobID)) {
		t.Errorf("list --all should show the requeue:\n%s", out)
	}
	if out, err := e.run("requeue", "--beanstalkd-addr="+e.addr, id); err != nil || !strings.Contains(out, "already requeued") {
		t.Errorf("a second requeue = %v:\n%s; want it skipped", err, out)
	}
}

// requeue --all --tenant takes only that tenant's pending dead letters.
func TestRequeueAllOfATenant(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i, tn := range []string{"acme/main", "acme/main", "other/main"} {
		body := fmt.Sprintf(`{"v":1,"tenant":%q,"kind":"webhook","payload":{"n":%d}}`, tn, i)
		id := e.put(body)
		if _, err := e.st.RecordDeadLetter(ctx, store.DeadLetter{Tenant: tn, Tube: e.tube, JobID: id, Body: []byte(body), Reason: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := e.run("requeue", "--beanstalkd-addr="+e.addr, "--all", "--tenant=acme/main")
	if err != nil || !strings.Contains(out, "2 dead letters requeued") {
		t.Fatalf("requeue --all = %v:\n%s", err, out)
	}
	pending, err := e.st.ListDeadLetters(ctx, store.DeadLetterFilter{OnlyPending: true})
	if err != nil || len(pending) != 1 || pending[0].Tenant != "other/main" {
		t.Fatalf("pending after requeue: %+v, %v; want only other/main's", pending, err)
	}
	// The three originals were ready, not buried: they stay; two copies came.
	if s := e.stats(); s.Ready != 5 {
		t.Fatalf("tube %+v: want 3 originals and 2 requeued copies", s)
	}
}

func TestBadArguments(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"requeue", "--beanstalkd-addr=" + e.addr},
		{"requeue", "--beanstalkd-addr=" + e.addr, "--all", "7"},
		{"requeue", "--beanstalkd-addr=" + e.addr, "seven"},
		{"requeue", "--beanstalkd-addr=" + e.addr, "999999"},
		{"list", "--tenant=not a tenant"},
	} {
		var out bytes.Buffer
		full := args
		if len(args) > 0 {
			full = append([]string{args[0], "--mysql-dsn=" + e.dsn}, args[1:]...)
		}
		if err := run(context.Background(), full, &out); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
