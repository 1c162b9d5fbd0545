package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/internal/testbin"
)

// The secrets the real-time browser tests start the server with.
const (
	testAPIKey      = "test-key-e2e-realtime"
	testTokenSecret = "e2e-token-secret-0123456789abcdefghij" // >= 32 bytes
)

// realtimeServer starts duplex on loopback with the HTTP API and tokens
// on (API_KEY, TOKEN_SECRET); port 0 picks a free one.
func realtimeServer(t *testing.T, port int) *testbin.Server {
	t.Helper()
	return testbin.Start(t, testbin.Options{
		Port: port,
		Env: []string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text",
			"API_KEY=" + testAPIKey, "TOKEN_SECRET=" + testTokenSecret},
	})
}

// newTab opens another tab in the browser of ctx (from newBrowser) and
// returns its context; the tab closes when t ends or closeTab is called.
func newTab(t *testing.T, ctx context.Context) (tab context.Context, closeTab func()) {
	t.Helper()
	tab, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("open a second tab: %v", err)
	}
	return tab, cancel
}

// openDuplexJSPage opens /push, a page that loads duplex.js, in a new
// browser and waits until its own client is connected: the start of the
// tests that drive duplex.js from the page.
func openDuplexJSPage(t *testing.T, s *testbin.Server) context.Context {
	t.Helper()
	ctx := newBrowser(t, 1000, 760, false)
	navigate(t, ctx, s, "/push")
	waitVisibleText(t, ctx, "status", rtConnected, 10*time.Second)
	return ctx
}

// navigate opens path on s in the tab.
func navigate(t *testing.T, ctx context.Context, s *testbin.Server, path string) {
	t.Helper()
	navigateTo(t, ctx, s.URL+path)
}

// navigateTo opens url in the tab.
func navigateTo(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
}

// waitFor polls the JavaScript function fn (called with args) until it
// returns true, or fails t after timeout with what describe (a JS
// expression) shows then.
func waitFor(t *testing.T, ctx context.Context, what string, timeout time.Duration, describe, fn string, args ...any) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[chromedp.Void](fn,
		chromedp.WithPollingArgs(args...), chromedp.WithPollingInterval(25*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		shown, derr := chromedp.Run(ctx, chromedp.Evaluate[string](describe))
		if derr != nil {
			shown = "<" + derr.Error() + ">"
		}
		t.Fatalf("%s: not within %s; the page shows %q (%v)", what, timeout, shown, err)
	}
}

// waitVisibleText waits until the element with id is rendered and its
// innerText is exactly want.
func waitVisibleText(t *testing.T, ctx context.Context, id, want string, timeout time.Duration) {
	t.Helper()
	waitFor(t, ctx, "#"+id+" = "+strconv.Quote(want), timeout,
		`(document.getElementById(`+strconv.Quote(id)+`) || {innerText: "<no such element>"}).innerText`,
		`(id, want) => {
			const e = document.getElementById(id);
			return e !== null && e.getClientRects().length > 0 && e.innerText === want;
		}`, id, want)
}

// typeInto replaces what the input with id holds by typing text, as a
// person does after selecting the old text.
func typeInto(t *testing.T, ctx context.Context, id, text string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID(id)),
		chromedp.Focus(chromedp.ID(id)),
		chromedp.Evaluate[chromedp.Void](`document.getElementById(`+strconv.Quote(id)+`).select()`),
		chromedp.SendKeys(chromedp.ID(id), text),
	); err != nil {
		t.Fatalf("type %q into #%s: %v", text, id, err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID(id))); err != nil || got != text {
		t.Fatalf("#%s holds %q after typing %q (%v)", id, got, text, err)
	}
}

// clickButton clicks the visible button whose text is label inside the
// element with id.
func clickButton(t *testing.T, ctx context.Context, within, label string) {
	t.Helper()
	sel := `//*[@id="` + within + `"]//button[normalize-space(.)="` + label + `"]`
	if err := chromedp.Do(ctx, chromedp.Click(sel)); err != nil {
		t.Fatalf("click %s in #%s: %v", label, within, err)
	}
}

// innerTexts is the innerText of every element matching the CSS selector.
func innerTexts(t *testing.T, ctx context.Context, selector string) []string {
	t.Helper()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll(`+strconv.Quote(selector)+`), e => e.innerText)`))
	if err != nil {
		t.Fatalf("read %s: %v", selector, err)
	}
	return out
}

// apiCall sends an authorized JSON request to the server's HTTP API and
// decodes the answer into out (when not nil); it fails t unless the
// status is 200.
func apiCall(t *testing.T, s *testbin.Server, method, path string, body, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: answer %s: %v", method, path, data, err)
		}
	}
}

// dialRealtime connects a plain protocol client (not a browser: a third
// party) to /realtime with the query (e.g. "name=王五").
func dialRealtime(t *testing.T, s *testbin.Server, query string) *rttest.Conn {
	t.Helper()
	return rttest.MustDial(t, "ws://127.0.0.1:"+strconv.Itoa(s.Port)+"/realtime?"+query, rttest.Options{Name: query})
}
