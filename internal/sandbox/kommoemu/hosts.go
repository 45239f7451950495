package kommoemu

import "github.com/kommo-unisender/kommo-unisender/internal/kommo"

// HostsFlagValue is the operator's --allowed-kommo-hosts value that lets it
// call an emulator served over plain http on loopback (httptest, the
// sandbox subcommand): the operator refuses any base URL outside Kommo's
// domains over https otherwise.
const HostsFlagValue = "http://127.0.0.1"

// HostPolicy is the kommo.HostPolicy of HostsFlagValue, for reconcilers and
// resolvers built in tests.
func HostPolicy() kommo.HostPolicy {
	var p kommo.HostPolicy
	if err := p.Set(HostsFlagValue); err != nil {
		panic(err) // a constant that parses
	}
	return p
}
