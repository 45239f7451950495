package packaging

import (
	"slices"
	"testing"
)

// The processes share contracts (routes, Secret names and keys, the
// scheme) through internal/contract, not by importing one another: the
// webhook server builds without the reconcilers, and the worker and the
// dev environment without the manager's command.
func TestProcessesImportContractsNotEachOther(t *testing.T) {
	const module = "github.com/kommo-unisender/kommo-unisender/"
	for pkg, forbidden := range map[string]string{
		"./webhookserver/":       module + "controllers",
		"./internal/cli/worker/": module + "internal/cli/manager",
		"./internal/devenv/":     module + "internal/cli/manager",
	} {
		if slices.Contains(depsOf(t, nil, "", pkg), forbidden) {
			t.Errorf("%s imports %s; share what they agree on through internal/contract", pkg, forbidden)
		}
	}
}
