// Package devtest starts the whole system (internal/devenv) for the system
// tests in test/: from the binary `make test-binaries` built, with the
// processes' logs shown when the test fails and scanned for secrets when it
// ends, stopped when it ends.
package devtest

import (
	"context"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kommo-unisender/kommo-unisender/internal/devenv"
	"github.com/kommo-unisender/kommo-unisender/internal/testenv"
	"github.com/kommo-unisender/kommo-unisender/internal/tokens"
)

// crdDir is config/crd/bases of this checkout, found from this file.
var crdDir = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "config", "crd", "bases")
}()

// Start starts the system with o, filling in its Binary ($KOMMO_UNISENDER_BIN),
// Dir, CRDDir and Output; it fails the test if the system does not start.
func Start(t testing.TB, ctx context.Context, o devenv.Options) *devenv.Env {
	t.Helper()
	env, _ := StartWithLogs(t, ctx, o)
	return env
}

// StartWithLogs is Start, also returning the processes' logs, for tests
// that scan them (for secrets, for example).
func StartWithLogs(t testing.TB, ctx context.Context, o devenv.Options) (*devenv.Env, *devenv.LogBuffer) {
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
	// Registered after Stop, so it runs first: the API server still answers.
	t.Cleanup(func() { AssertNoSecretInLogs(t, env, logs) })
	return env, logs
}

// secretKeys are the Secret keys whose values are credentials: tokens,
// codes, API keys, client secrets and webhook URL secrets.
var secretKeys = []string{
	tokens.KeyAccessToken, tokens.KeyRefreshToken, tokens.OAuthCodeKey, tokens.StateKeyKey,
	"api-key", "apiKey", "client-secret", "secret",
}

// AssertNoSecretInLogs scans every line the operator's processes logged
// (manager, webhook server, workers; not the emulators) for the sandbox's
// credentials, every credential a Secret of the cluster holds now, and
// extra. Every system test runs it when it ends; a test may run it earlier
// with values only it knows. It returns the number of lines scanned.
func AssertNoSecretInLogs(t testing.TB, env *devenv.Env, logs *devenv.LogBuffer, extra ...string) int {
	t.Helper()
	secrets := append([]string{devenv.SandboxClientSecret, devenv.SandboxUnisenderKey}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list corev1.SecretList
	if err := env.Client.List(ctx, &list); err != nil {
		t.Errorf("listing Secrets for the log scan: %v", err)
	}
	for _, s := range list.Items {
		for _, k := range secretKeys {
			if v := s.Data[k]; len(v) >= 8 {
				secrets = append(secrets, string(v))
			}
		}
	}
	scanned := 0
	for line := range strings.Lines(logs.All()) {
		name, _, _ := strings.Cut(line, "|")
		if name = strings.TrimSpace(name); name == "sandbox" || name == "dev" {
			continue
		}
		scanned++
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("a secret of %d characters is in the log: %.300s", len(s), strings.ReplaceAll(line, s, "<SECRET>"))
			}
		}
	}
	return scanned
}

// WaitUntil polls cond until it holds, failing the test with cond's last
// account of the state when within passes first. It waits for the system
// to get somewhere; it is not an assertion about time.
func WaitUntil(t testing.TB, what string, within time.Duration, cond func() (bool, string)) {
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
