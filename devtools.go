//go:build !production

package main

import (
	"github.com/kommo-unisender/kommo-unisender/internal/cli/dev"
	"github.com/kommo-unisender/kommo-unisender/internal/cli/sandbox"
)

// The dev tooling: `make dev`, `make test-binaries` and a plain `go build`
// have it; the production image (-tags production) does not, since through
// these two the binary would carry the test environment (which starts
// kube-apiserver and MariaDB) and the Kommo and Unisender emulators.
func init() {
	commands["dev"] = command{"run the whole system on this machine with a sandbox tenant (make dev)", dev.Run}
	commands["sandbox"] = command{"serve the Kommo and Unisender emulators (tests, make dev)", sandbox.Run}
}
