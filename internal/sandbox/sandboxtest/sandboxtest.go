// Package sandboxtest starts the Kommo and Unisender emulators for tests,
// each behind a real HTTP server on a loopback port and stopped when the test
// ends, and holds the tests' settable clock. Only tests import it.
package sandboxtest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/kommoemu"
	"github.com/kommo-unisender/kommo-unisender/internal/sandbox/unisenderemu"
)

// Kommo starts a Kommo emulator with opts, unchanged: a zero RateLimit is
// the emulator's default of 7 per second, as on Kommo. An account's API is
// under <server URL>/_acct/<subdomain>.
func Kommo(t testing.TB, opts kommoemu.Options) (*kommoemu.Server, *httptest.Server) {
	t.Helper()
	emu := kommoemu.New(opts)
	return emu, serve(t, emu, emu.Close)
}

// Unisender starts a Unisender emulator with opts and no API keys.
func Unisender(t testing.TB, opts unisenderemu.Options) (*unisenderemu.Server, *httptest.Server) {
	t.Helper()
	return UnisenderBehind(t, opts, func(emu *unisenderemu.Server) http.Handler { return emu })
}

// UnisenderBehind starts a Unisender emulator whose server serves the
// handler front returns, for tests that record or answer some calls
// themselves and hand the rest to emu.
func UnisenderBehind(t testing.TB, opts unisenderemu.Options, front func(emu *unisenderemu.Server) http.Handler) (*unisenderemu.Server, *httptest.Server) {
	t.Helper()
	emu := unisenderemu.New(opts)
	return emu, serve(t, front(emu), emu.Close)
}

// serve starts h on a loopback port. At the end of the test the emulator is
// closed first, releasing the calls it holds hung, so that the server's
// Close, which waits for every call in flight, returns.
func serve(t testing.TB, h http.Handler, closeEmulator func()) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		closeEmulator()
		srv.Close()
	})
	return srv
}
