package promrules

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

var chartDir = filepath.Join("..", "..", "charts", "kommo-unisender")

// render renders one template of the chart with the pinned helm ($HELM,
// set by make test-run), with sets applied.
func render(t *testing.T, template string, sets ...string) []byte {
	t.Helper()
	helm := os.Getenv("HELM")
	if helm == "" {
		if testing.Short() {
			t.Skip("HELM is not set (make test-tools builds it)")
		}
		t.Fatal("HELM is not set: run make test-tools, then make test-run (or set HELM to the pinned helm)")
	}
	args := []string{"template", "t", chartDir, "--kube-version", "1.33.0", "--show-only", template}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(helm, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

var promql = parser.NewParser(parser.Options{})

// The PrometheusRule's groups are a valid Prometheus rule file: every
// expression parses, every annotation template parses, and every alert
// tells what to do.
func TestSyncHealthAlertRulesParse(t *testing.T) {
	var rule struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Groups []yaml.Node `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(render(t, "templates/prometheusrule.yaml", "metrics.prometheusRule.enabled=true"), &rule); err != nil {
		t.Fatal(err)
	}
	if rule.Kind != "PrometheusRule" || len(rule.Spec.Groups) == 0 {
		t.Fatalf("rendered %q with %d groups; want a PrometheusRule with groups", rule.Kind, len(rule.Spec.Groups))
	}
	file, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(file, false, model.UTF8Validation, promql, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(errs) > 0 {
		t.Fatalf("the rules do not parse: %v", errors.Join(errs...))
	}
	want := []string{"KommoIntegrationStalled", "KommoTokenRefreshFailing", "KommoWebhookReregistered",
		"KommoUnisenderQueueBehind", "KommoUnisenderDeadLettersGrowing", "UnisenderKeyInvalid", "KommoUnisenderSyncSlow"}
	have := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			have[r.Alert] = r
		}
	}
	for _, name := range want {
		r, ok := have[name]
		switch {
		case !ok:
			t.Errorf("alert %s is missing", name)
		case len(r.Annotations["description"]) < 80 || r.Annotations["summary"] == "":
			t.Errorf("alert %s: want a summary and a description that says what to do, have %q", name, r.Annotations)
		}
	}
}

// Every panel query of the dashboard is valid PromQL (Grafana's variables
// replaced by values they can take).
func TestSyncHealthDashboardQueriesParse(t *testing.T) {
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(render(t, "templates/grafana-dashboard.yaml", "metrics.grafanaDashboard.enabled=true"), &cm); err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(cm.Data["kommo-unisender-sync.json"]), &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	n := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			n++
			expr := strings.ReplaceAll(target.Expr, "$namespace", ".*")
			if _, err := promql.ParseExpr(expr); err != nil {
				t.Errorf("panel %q: %q: %v", p.Title, target.Expr, err)
			}
		}
	}
	if n < 12 {
		t.Fatalf("%d queries in %d panels; want the whole dashboard", n, len(dash.Panels))
	}
}
