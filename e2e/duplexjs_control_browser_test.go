package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/duplex/duplex/realtime"
)

// jsClient makes window[name], a Duplex whose getToken hands out tokens in
// order (the last one again and again), and records its events in
// window[name + 'Events'] as "event:detail" strings.
func jsClient(name string, tokens ...string) string {
	list, _ := json.Marshal(tokens)
	n := strconv.Quote(name)
	return `(() => {
		const tokens = ` + string(list) + `;
		const events = window[` + n + ` + 'Events'] = [];
		const dx = window[` + n + `] = new Duplex({getToken: () => Promise.resolve(tokens.length > 1 ? tokens.shift() : tokens[0])});
		const span = s => s > 3000 ? 'long' : s <= 3 ? 'short' : String(s);
		const detail = {
			connected: e => e.user + '/' + span(e.expires_in),
			refreshed: e => span(e.expires_in),
			refresh_failed: e => e.code,
			disconnected: e => e.code + (e.final ? '/final' : ''),
			unsubscribed: e => e.channel + '/' + e.reason + '/' + (e.message || ''),
		};
		for (const k in detail) dx.on(k, e => events.push(k + ':' + detail[k](e)));
		dx.connect();
		return true;
	})()`
}

// waitEvents waits until the events of window[name] are exactly want.
func waitEvents(t *testing.T, ctx context.Context, name string, timeout time.Duration, want ...string) {
	t.Helper()
	w, _ := json.Marshal(want)
	waitFor(t, ctx, name+" events "+string(w), timeout, `JSON.stringify(window[`+strconv.Quote(name+"Events")+`])`,
		`(name, want) => JSON.stringify(window[name + 'Events']) === want`, name, string(w))
}

func mintJS(t *testing.T, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := realtime.MintToken([]byte(testTokenSecret), user, "", ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestDuplexJSTokenRefreshAndServerControl: duplex.js in a browser
// refreshes its token before it expires with what getToken gives; after a
// refused refresh it gives up, is closed with 4001 and reconnects with a
// new token; the server's unsubscribe and disconnect reach it as events,
// and a 4500 close is final.
func TestDuplexJSTokenRefreshAndServerControl(t *testing.T) {
	s := realtimeServer(t, 0)
	ctx := openDuplexJSPage(t, s)

	// Tokens the server accepts within its 5 s leeway: 2 to 3 s left.
	short := mintJS(t, "42", -2*time.Second)
	good, other := mintJS(t, "42", time.Hour), mintJS(t, "43", time.Hour)
	for _, script := range []string{jsClient("refreshing", short, good), jsClient("refused", short, other, good)} {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](script)); err != nil {
			t.Fatal(err)
		}
	}
	waitEvents(t, ctx, "refreshing", 5*time.Second, "connected:42/short", "refreshed:long")
	waitEvents(t, ctx, "refused", 10*time.Second,
		"connected:42/short", "refresh_failed:forbidden", "disconnected:4001", "connected:42/long")
	// The refused one's 4001 came at the short token's close time, which
	// the refreshing one shares: it is still connected and answers.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.refreshing.ping().then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("the refreshed client does not answer: %v", err)
	}
	waitEvents(t, ctx, "refreshing", time.Second, "connected:42/short", "refreshed:long")

	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.refreshing.subscribe('chat:js-control').then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	apiCall(t, s, "POST", "/api/unsubscribe", map[string]string{"user": "42", "channel": "chat:js-control", "reason": "移出"}, nil)
	waitEvents(t, ctx, "refreshing", 5*time.Second, "connected:42/short", "refreshed:long", "unsubscribed:chat:js-control/server/移出")

	apiCall(t, s, "POST", "/api/disconnect", map[string]any{"user": "42", "code": 4500, "reason": "banned"}, nil)
	waitEvents(t, ctx, "refreshing", 5*time.Second, "connected:42/short", "refreshed:long", "unsubscribed:chat:js-control/server/移出", "disconnected:4500/final")
	stopped, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.refreshing.state === 'disconnected' && window.refreshing._retryTimer === null && window.refreshing._ws === null`))
	if err != nil || !stopped {
		t.Fatalf("after a 4500 close the client is not stopped (%v)", err)
	}
}
