package packaging

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The chart's CRDs and RBAC rules are copies of config/ made by
// hack/sync-chart-crds.sh; a CRD or marker change without a re-sync must fail.
func TestChartGeneratedPartsInSync(t *testing.T) {
	scratch := t.TempDir()
	if out, err := run(nil, "bash", repoPath("hack", "sync-chart-crds.sh"), scratch); err != nil {
		t.Fatalf("hack/sync-chart-crds.sh: %v\n%s", err, out)
	}
	generated := []string{}
	for _, pattern := range []string{"templates/crds/*.yaml", "files/rbac/*.yaml"} {
		want, _ := filepath.Glob(filepath.Join(scratch, pattern))
		have, _ := filepath.Glob(filepath.Join(chartDir, pattern))
		if len(want) == 0 {
			t.Fatalf("the script produced nothing for %s", pattern)
		}
		if len(have) != len(want) {
			t.Errorf("%s: the chart has %d files, the sources give %d: run hack/sync-chart-crds.sh", pattern, len(have), len(want))
		}
		for _, w := range want {
			rel, _ := filepath.Rel(scratch, w)
			generated = append(generated, rel)
		}
	}
	for _, rel := range generated {
		want, err := os.ReadFile(filepath.Join(scratch, rel))
		if err != nil {
			t.Fatal(err)
		}
		have, err := os.ReadFile(filepath.Join(chartDir, rel))
		if err != nil {
			t.Errorf("%s: %v (run hack/sync-chart-crds.sh)", rel, err)
			continue
		}
		if !bytes.Equal(have, want) {
			t.Errorf("charts/kommo-unisender/%s differs from its source: run hack/sync-chart-crds.sh", rel)
		}
	}
}
