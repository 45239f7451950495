package importer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/importer"
	"github.com/kommo-unisender/kommo-unisender/internal/tenant"
)

// startRunner runs a Runner as the manager would, until the test ends.
func startRunner(t *testing.T, r *importer.Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = r.Start(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
}

// launch starts job once the runner accepts runs.
func launch(t *testing.T, r *importer.Runner, job importer.Job) importer.Snapshot {
	t.Helper()
	for {
		snap, err := r.Launch(job)
		if !errors.Is(err, importer.ErrNotStarted) {
			if err != nil {
				t.Fatal(err)
			}
			return snap
		}
		time.Sleep(time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunnerRunsInTheBackgroundAndReportsTheResult(t *testing.T) {
	e := newEnv(t)
	e.addContacts(700, 5)
	finished := make(chan tenant.Key, 1)
	r := &importer.Runner{Importer: e.importer(), OnFinish: func(k tenant.Key) { finished <- k }}
	startRunner(t, r)

	snap := launch(t, r, e.job("initial", 0))
	if !snap.Running || snap.RunID != "initial" {
		t.Fatalf("Launch = %+v", snap)
	}
	if k := <-finished; k != e.tenant {
		t.Fatalf("OnFinish for %v, want %v", k, e.tenant)
	}
	snap, ok := r.Snapshot(e.tenant)
	if !ok || snap.Running || snap.Err != nil || !snap.Progress.Done || snap.Progress.Imported != 700 || snap.FinishedAt.IsZero() {
		t.Fatalf("snapshot after the run = %+v", snap)
	}
	// Until collected, launching returns the finished run instead of a new one.
	if again, _ := r.Launch(e.job("other", 0)); again.RunID != "initial" || again.Running {
		t.Fatalf("Launch before Collect = %+v, want the finished run", again)
	}
	r.Collect(e.tenant, "initial")
	if _, ok := r.Snapshot(e.tenant); ok {
		t.Fatal("the run is still known after Collect")
	}
}

func TestRunnerStopCancelsAndALaterLaunchResumes(t *testing.T) {
	e := newEnv(t)
	e.addContacts(1500, 2)
	r := &importer.Runner{Importer: e.importer()}
	startRunner(t, r)
	e.uni.SetLatency(50 * time.Millisecond) // keep the run going long enough to stop it

	launch(t, r, e.job("initial", 0))
	waitFor(t, "two committed pages", func() bool {
		s, _ := r.Snapshot(e.tenant)
		return s.Progress.Pages >= 2
	})
	if err := r.Stop(context.Background(), e.tenant); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Snapshot(e.tenant); ok {
		t.Fatal("a stopped run is still known")
	}
	cp, err := e.store.GetCheckpoint(context.Background(), e.tenant.String())
	if err != nil || cp.Status != importer.CheckpointRunning || cp.Imported == 0 || cp.Imported == 1500 {
		t.Fatalf("checkpoint after Stop = %+v, %v; want a partial running one", cp, err)
	}

	e.uni.SetLatency(0)
	launch(t, r, e.job("initial", 0))
	waitFor(t, "the resumed run", func() bool {
		s, _ := r.Snapshot(e.tenant)
		return !s.Running
	})
	s, _ := r.Snapshot(e.tenant)
	if s.Err != nil || s.Progress.Imported != 1500 {
		t.Fatalf("resumed run = %+v", s)
	}
	if _, rows := e.importCalls(); rows > 1500+500 {
		t.Fatalf("%d rows sent for 1500 contacts: the resumed run re-sent finished work", rows)
	}
}
