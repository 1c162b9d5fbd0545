package e2e

import (
	"testing"
	"time"

	"github.com/duplex/duplex/internal/testbin"
)

// TestSSEEmitsStayUnderTheServersLimit: with a small WS_MAX_MESSAGE_BYTES
// (1 KiB), duplex.js over SSE joins the commands waiting for an emit only
// as far as the limit the session event names, counted in UTF-8 bytes
// (Chinese text is 3 bytes a character): ten publications issued at once
// all get through, in order, with no reconnect; one command over the
// limit by itself is refused at once with too_large and costs nothing
// else (the others are published, the client stays connected).
func TestSSEEmitsStayUnderTheServersLimit(t *testing.T) {
	s := testbin.Start(t, testbin.Options{
		Env: []string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text",
			"API_KEY=" + testAPIKey, "TOKEN_SECRET=" + testTokenSecret, "WS_MAX_MESSAGE_BYTES=1024"},
	})
	page := openDuplexJSPage(t, s)

	runJS(t, page, transportClient("lim", `{name: '限', transports: ['sse']}`))
	waitEvents(t, page, "lim", 10*time.Second, "connecting:sse", "transport:sse/null", "connected")
	runJS(t, page, `(() => {
		window.limGot = [];
		window.lim.subscribe('chat:e2e-limit').on('publication', p => window.limGot.push(p.data.n));
	})()`)
	waitFor(t, page, "subscribed over SSE", 5*time.Second, `JSON.stringify(window.limEvents)`,
		`() => window.lim.position('chat:e2e-limit') !== null`)

	// Each publish is about 330 bytes but only about 130 characters: the
	// nine that wait for the first emit fit in 16 Ki characters, not in
	// one emit of 1 KiB.
	runJS(t, page, `(() => {
		const text = '汉'.repeat(100);
		const all = [];
		for (let n = 0; n < 10; n++) {
			all.push(window.lim.publish('chat:e2e-limit', {n: n, text: text}).then(() => 'ok', e => e.code));
		}
		// 400 characters, 1200 bytes: over the limit by itself.
		all.push(window.lim.publish('chat:e2e-limit', {n: 10, text: '汉'.repeat(400)}).then(() => 'ok', e => e.code));
		Promise.all(all).then(v => { window.limResults = v; });
		return true;
	})()`)
	waitFor(t, page, "every publish settled", 10*time.Second, `JSON.stringify([window.limResults, window.limEvents])`,
		`() => Array.isArray(window.limResults)`)
	want := `[["ok","ok","ok","ok","ok","ok","ok","ok","ok","ok","too_large"],` +
		`["connecting:sse","transport:sse/null","connected"]]`
	if got := evalString(t, page, `JSON.stringify([window.limResults, window.limEvents])`); got != want {
		t.Fatalf("publish results and client events = %s, want %s", got, want)
	}
	waitFor(t, page, "the ten publications, in order", 5*time.Second, `JSON.stringify(window.limGot)`,
		`() => JSON.stringify(window.limGot) === '[0,1,2,3,4,5,6,7,8,9]'`)

	// Bytes, not UTF-16 units: an emoji is 4 bytes (2 units), é is 2.
	// The first command is 1004 bytes and fits (counting é as 3 bytes, as
	// for Chinese, would make it 1044); the second, 1036, does not (though
	// only 556 units).
	runJS(t, page, `(() => {
		window.limResults = null;
		Promise.all([
			window.lim.publish('chat:e2e-limit', {n: 11, text: '😀'.repeat(212) + 'é'.repeat(40)}).then(() => 'ok', e => e.code),
			window.lim.publish('chat:e2e-limit', {n: 12, text: '😀'.repeat(240)}).then(() => 'ok', e => e.code),
		]).then(v => { window.limResults = v; });
		return true;
	})()`)
	waitFor(t, page, "the two settled", 10*time.Second, `JSON.stringify([window.limResults, window.limEvents])`,
		`() => Array.isArray(window.limResults)`)
	want = `[["ok","too_large"],["connecting:sse","transport:sse/null","connected"]]`
	if got := evalString(t, page, `JSON.stringify([window.limResults, window.limEvents])`); got != want {
		t.Fatalf("near the limit: results and client events = %s, want %s", got, want)
	}
	waitFor(t, page, "the one that fits, published", 5*time.Second, `JSON.stringify(window.limGot)`,
		`() => JSON.stringify(window.limGot) === '[0,1,2,3,4,5,6,7,8,9,11]'`)
}
