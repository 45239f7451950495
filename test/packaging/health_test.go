package packaging

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/kommo-unisender/kommo-unisender/test/packaging/argohealth"
)

// healthTests is Argo CD's health_test.yaml format.
type healthTests struct {
	Tests []struct {
		HealthStatus argohealth.Status `json:"healthStatus"`
		InputPath    string            `json:"inputPath"`
	} `json:"tests"`
}

// Every case of each kind's health_test.yaml gets the health it names, and
// the cases cover every health the script can give.
func TestArgoCDHealthChecks(t *testing.T) {
	for _, kind := range []string{"KommoIntegration", "UnisenderBinding"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Dir(argohealth.ScriptPath(kind))
			var cases healthTests
			if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(dir, "health_test.yaml")), &cases); err != nil {
				t.Fatal(err)
			}
			covered := map[string]bool{}
			for _, c := range cases.Tests {
				t.Run(c.InputPath, func(t *testing.T) {
					var obj map[string]any
					if err := yaml.Unmarshal(readFile(t, filepath.Join(dir, c.InputPath)), &obj); err != nil {
						t.Fatal(err)
					}
					if obj["kind"] != kind {
						t.Fatalf("%s holds a %v, not a %s", c.InputPath, obj["kind"], kind)
					}
					got, err := argohealth.Assess(kind, obj)
					if err != nil {
						t.Fatal(err)
					}
					if got != c.HealthStatus {
						t.Errorf("health = %+v, want %+v", got, c.HealthStatus)
					}
					covered[got.Status] = true
				})
			}
			for _, s := range []string{argohealth.Healthy, argohealth.Progressing, argohealth.Degraded, argohealth.Suspended} {
				if !covered[s] {
					t.Errorf("no case yields %s", s)
				}
			}
			// Every testdata object is used by a case.
			files, _ := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
			if len(files) != len(cases.Tests) {
				t.Errorf("%d testdata files, %d cases", len(files), len(cases.Tests))
			}
		})
	}
}

// The script runs with only the libraries Argo CD opens; a script using,
// say, string.format would fail there, and must fail here.
func TestArgoCDHealthSandbox(t *testing.T) {
	_, err := argohealth.Run(`return { status = string.format("%s", "Healthy") }`, map[string]any{})
	if err == nil {
		t.Fatal("a script using the string library ran; Argo CD does not open it")
	}
	if _, err := argohealth.Run(`return { status = "Fine" }`, map[string]any{}); err == nil {
		t.Fatal("a status Argo CD does not know was accepted")
	}
	if _, err := os.Stat(argohealth.ScriptPath("KommoIntegration")); err != nil {
		t.Fatal(err)
	}
}
