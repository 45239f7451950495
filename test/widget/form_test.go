package widget_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// phrase is the English text of an i18n key.
func phrase(t *testing.T, section, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(widgetSrc, "i18n", "en.json"))
	if err != nil {
		t.Fatal(err)
	}
	var phrases map[string]map[string]string
	if err := json.Unmarshal(b, &phrases); err != nil {
		t.Fatal(err)
	}
	p, ok := phrases[section][key]
	if !ok {
		t.Fatalf("no phrase %s.%s", section, key)
	}
	return p
}

// The widget checks the form before anything leaves the browser: an API key
// is never sent to a plain-http address or without a key.
func TestWidgetRefusesToSendWithoutHTTPSOrKey(t *testing.T) {
	h, page := startHost(t, "acme", "http://sync.example.test")
	h.setToken(kommoToken{
		Secret: []byte("acme-client-secret"), Issuer: "https://acme.kommo.com", Audience: "https://hooks.example.test",
		AccountID: 1, UserID: 7, ClientUUID: "acme-client", Subdomain: "acme", IssuedAt: time.Now(),
	})
	page.open()
	status := page.text(`.kus-widget-status`)
	if status != phrase(t, "status", "not_configured") {
		t.Errorf("status block shows %q for an http address, want the not-configured hint", status)
	}

	state, msg := page.save("6x1kqz8y3unisender0api0key", "")
	if state != "error" || msg != phrase(t, "messages", "bad_server_url") {
		t.Errorf("saving to an http address shows %s %q, want the https error", state, msg)
	}

	page.screenshot("settings-refused.png")

	page.server = "https://127.0.0.1:1" // https, but nothing listens
	page.open()
	state, msg = page.save("   ", "")
	if state != "error" || msg != phrase(t, "messages", "key_required") {
		t.Errorf("saving a blank key shows %s %q, want the key-required error", state, msg)
	}
	if n := h.tokensIssued(); n != 1 {
		// One token, for the status request to the https address; none
		// for the refused saves.
		t.Errorf("the widget asked for %d tokens, want 1 (status only)", n)
	}
}
