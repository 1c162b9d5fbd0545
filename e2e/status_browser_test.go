package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestRealtimeLiveAndPushReconnect: the server stops (SIGTERM) under an
// open /live and an open /push page and starts again on the same port.
// Each page's status line says, in the words every page uses, that the
// connection closed with 1001 and when it retries; then 已连接 again, and
// the page works: each shows what the HTTP API publishes to it on the new
// server. (The echo and chat pages have their own restart tests.)
func TestRealtimeLiveAndPushReconnect(t *testing.T) {
	first := realtimeServer(t, 0)
	live := newBrowser(t, 1000, 760, false)
	push, _ := newTab(t, live)
	navigate(t, live, first, "/live?room=e2e-restart")
	navigate(t, push, first, "/push")
	pages := map[string]context.Context{"/live": live, "/push": push}
	for _, tab := range pages {
		waitVisibleText(t, tab, "status", rtConnected, 10*time.Second)
		recordStatus(t, tab)
	}
	waitVisibleText(t, live, "viewers", "1 人在看", 10*time.Second)

	if code := first.Stop(); code != 0 {
		t.Fatalf("server exited %d after SIGTERM, want 0", code)
	}
	for path, tab := range pages {
		waitFor(t, tab, path+": status 连接已断开（代码 1001），N.N 秒后重连…", 5*time.Second, `JSON.stringify(window.statusSeen)`,
			`() => window.statusSeen.some(s => /^status closed\|连接已断开（代码 1001），\d+\.\d 秒后重连…$/.test(s))`)
		if st := visibleText(tab, "status"); st == rtConnected {
			t.Fatalf("%s: #status says %q while no server runs", path, st)
		}
	}

	second := realtimeServer(t, first.Port)
	for path, tab := range pages {
		waitFor(t, tab, path+": status 已连接 after the restart", 25*time.Second, `document.getElementById('status').className + '|' + document.getElementById('status').innerText`,
			`() => { const el = document.getElementById('status'); return el.className === 'status open' && el.innerText === '已连接（WebSocket）'; }`)
	}
	apiCall(t, second, "POST", "/api/publish", map[string]any{
		"channel": "live:e2e-restart", "data": map[string]any{"text": "重启后的弹幕"}}, nil)
	waitFor(t, live, "comment after the restart", 5*time.Second,
		`Array.from(document.querySelectorAll('#recent li'), li => li.innerText).join(' // ')`,
		`() => Array.from(document.querySelectorAll('#recent li')).some(li => li.innerText === '系统重启后的弹幕')`)
	apiCall(t, second, "POST", "/api/publish", map[string]any{
		"channel": "push:news", "data": map[string]any{"title": "重启之后", "text": "推送照常"}}, nil)
	waitFor(t, push, "announcement after the restart", 5*time.Second,
		`Array.from(document.querySelectorAll('#notifications li'), li => li.innerText.replace(/\n/g, ' | ')).join(' // ')`,
		`() => Array.from(document.querySelectorAll('#notifications li.note')).some(li =>
			li.querySelector('.title').innerText === '重启之后' && li.querySelector('.body').innerText === '推送照常')`)
}

// recordStatus makes the page keep, in window.statusSeen, every state its
// #status line shows, as "className|text": the disconnected one may last
// only until the first reconnect attempt, which can come at once, too
// briefly to be polled.
func recordStatus(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const el = document.getElementById('status');
		window.statusSeen = [];
		new MutationObserver(() => window.statusSeen.push(el.className + '|' + el.innerText))
			.observe(el, {childList: true, characterData: true, subtree: true, attributes: true});
	})()`)); err != nil {
		t.Fatalf("watch #status: %v", err)
	}
}
