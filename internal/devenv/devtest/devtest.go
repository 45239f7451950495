// Package devtest starts the whole system (internal/devenv) for the system
// tests in test/: from the binary `make test-binaries` built, with the
// processes' logs shown when the test fails, stopped when it ends.
package devtest

import (
	"context"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
)

// crdDir is config/crd/bases of this checkout, found from this file.
var crdDir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "config", "crd", "bases")
}()

// Start starts the system with o, filling in its Binary ($KOMMO_UNISENDER_BIN),
// Dir, CRDDir and Output; it fails the test if the system does not start.
func Start(t *testing.T, ctx context.Context, o devenv.Options) *devenv.Env {
	t.Helper()
	env, _ := StartWithLogs(t, ctx, o)
	return env
}

// StartWithLogs is Start, also returning the processes' logs, for tests
// that scan them (for secrets, for example).
func StartWithLogs(t *testing.T, ctx context.Context, o devenv.Options) (*devenv.Env, *devenv.LogBuffer) {
	t.Helper()
	testenv.KubeAssets(t)
	testenv.MySQLDSN(t) // same prerequisites as the other service tests
	o.Binary = testenv.Tool(t, testenv.EnvBinary)
	o.Dir, o.CRDDir = t.TempDir(), crdDir
	logs := &devenv.LogBuffer{}
	o.Output = logs
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs:\n%s", logs.String())
		}
	})
	env, err := devenv.Start(ctx, o)
	if err != nil {
		t.Fatalf("starting the system: %v\n%s", err, logs.String())
	}
	t.Cleanup(env.Stop)
	return env, logs
}

// WaitUntil polls cond until it holds, failing the test with cond's last
// account of the state when within passes first. It waits for the system
// to get somewhere; it is not an assertion about time.
func WaitUntil(t *testing.T, what string, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %s", within, what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Minus returns the elements of a that the sorted b lacks, in a's order.
func Minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}
