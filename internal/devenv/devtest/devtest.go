// Package devtest starts the whole system (internal/devenv) for the system
// tests in test/: from the binary `make test-binaries` built, with the
// processes' logs shown when the test fails, stopped when it ends.
package devtest

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

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
	return env
}
