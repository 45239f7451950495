package widget_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// artifactsDir receives the screenshots of the settings form.
const artifactsDir = "artifacts"

// startHost serves the emulated Kommo host at the account's Kommo origin
// (https://<subdomain>.kommo.com, which the browser resolves to the harness
// server, as the widget runs in production) and opens a browser on it with
// server as the saved sync server address.
func startHost(t *testing.T, subdomain, server string) (*harness, settingsPage) {
	t.Helper()
	requireHarnessDeps(t)
	h := &harness{}
	host := httptest.NewTLSServer(h.handler())
	t.Cleanup(host.Close)
	_, port, _ := strings.Cut(strings.TrimPrefix(host.URL, "https://"), ":")
	kommoHost := subdomain + ".kommo.com"
	browser := newBrowser(t,
		chromedp.Flag("host-resolver-rules", "MAP "+kommoHost+" 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors", true),
	)
	return h, settingsPage{t: t, ctx: browser, harness: "https://" + kommoHost + ":" + port, server: server}
}

// settingsPage drives the emulated settings modal in one browser tab.
type settingsPage struct {
	t       *testing.T
	ctx     context.Context
	harness string
	server  string
}

// open loads the host page fresh, with the server address already saved in
// the widget's settings (as after a first save), and waits for the widget.
func (p settingsPage) open() {
	p.t.Helper()
	p.do(chromedp.Navigate(p.harness+"/?server="+p.server),
		chromedp.Poll[chromedp.Void](`window.harness && (window.harness.ready || window.harness.error)`),
	)
	if e, _ := chromedp.Run(p.ctx, chromedp.Evaluate[any](`window.harness.error`)); e != nil {
		p.t.Fatalf("the widget failed in the host page: %v", e)
	}
	p.do(chromedp.WaitVisible(chromedp.CSS(`.kus-widget-status:not([data-loaded=false])`)))
}

// save types the key and list like a user and clicks Save; it returns the
// message the widget shows and its state (success or error).
func (p settingsPage) save(apiKey, listTitle string) (state, message string) {
	p.t.Helper()
	p.do(
		chromedp.SendKeys(chromedp.CSS(`#setting-api_key`), apiKey),
		chromedp.SendKeys(chromedp.CSS(`#setting-list_title`), listTitle),
		chromedp.Click(chromedp.CSS(`#widget-save`)),
		chromedp.WaitVisible(chromedp.CSS(`.kus-widget-message[data-state=success], .kus-widget-message[data-state=error]`)),
	)
	attr, err := chromedp.Run(p.ctx, chromedp.AttributeValue(chromedp.CSS(`.kus-widget-message`), "data-state"))
	if err != nil {
		p.t.Fatal(err)
	}
	state = attr.Value
	message, err = chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(`.kus-widget-message`)))
	if err != nil {
		p.t.Fatal(err)
	}
	return state, message
}

func (p settingsPage) screenshot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.Screenshot(chromedp.CSS(`#widget-settings-modal`)))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.MkdirAll(artifactsDir, 0o750); err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(artifactsDir, name)
	if err := os.WriteFile(path, png, 0o600); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: test/widget/%s", path)
}

func (p settingsPage) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

// text is the text of the first element matching a CSS selector.
func (p settingsPage) text(selector string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}
