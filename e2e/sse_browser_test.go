package e2e

// Browser tests of duplex.js's SSE fallback (GET /realtime/sse carries what
// the server sends, POST /realtime/emit the commands; docs/protocol.md):
// pages where WebSocket cannot work — a WebSocket constructor that throws,
// or a real nginx in front that does not pass upgrades on — fall back to
// SSE by themselves, say so in their status line, and chat with WebSocket
// pages, through a server restart too; the transports option pins the
// order, and SSE stays first for a while after a fallback.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/duplex/duplex/internal/testbin"
)

// rtConnectedSSE is the status line of a page connected over SSE.
const rtConnectedSSE = "已连接（SSE 备用通道）"

// watchWebSocket makes every document the tab loads from now on count its
// WebSocket constructions in window.webSocketsTried; with blocked, the
// constructor throws (as where the browser or a policy forbids it) until
// the page sets window.allowWebSocket = true.
func watchWebSocket(t *testing.T, ctx context.Context, blocked bool) {
	t.Helper()
	script := `(() => {
		const Real = window.WebSocket;
		window.webSocketsTried = 0;
		window.allowWebSocket = ` + strconv.FormatBool(!blocked) + `;
		function Blockable(url, protocols) {
			window.webSocketsTried++;
			if (!window.allowWebSocket) throw new DOMException('WebSocket is blocked on this network', 'SecurityError');
			return protocols === undefined ? new Real(url) : new Real(url, protocols);
		}
		Blockable.prototype = Real.prototype;
		for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Blockable[k] = Real[k];
		window.WebSocket = Blockable;
	})()`
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		t.Fatalf("install the WebSocket watcher: %v", err)
	}
}

// evalInt evaluates a JavaScript expression that yields a number.
func evalInt(t *testing.T, ctx context.Context, expr string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return n
}

// TestSSEChatWebSocketBlockedSurvivesRestart: a chat page whose WebSocket
// constructor throws falls back to SSE and says so; it chats with a
// WebSocket page in both directions, and through a server restart (1001
// on the stream's close event, reconnect, recovery) every message shows
// exactly once on both, as TestRealtimeChatSurvivesRestart asserts for two
// WebSocket pages.
func TestSSEChatWebSocketBlockedSurvivesRestart(t *testing.T) {
	first := realtimeServer(t, 0)
	a := newBrowser(t, 1000, 760, false)
	b, _ := newTab(t, a)
	watchWebSocket(t, a, true)
	const room = "e2e-sse-restart"
	enterChatShowing(t, a, first.URL, "李旺", room, rtConnectedSSE)
	enterChat(t, b, first, "张三", room)
	if n := evalInt(t, a, "window.webSocketsTried"); n < 1 {
		t.Fatalf("the SSE page tried WebSocket %d times before SSE, want at least once", n)
	}
	chatSurvivesRestart(t, first, room, a, b, rtConnectedSSE, rtConnected)
}

// TestSSEFallbackBehindProxyRefusingUpgrades: behind a real nginx that
// does not pass WebSocket upgrades on (the server answers the plain GET
// /realtime with 426, so the browser's socket closes before it opens), the
// chat page falls back to SSE on its own and chats with a WebSocket page
// of the same server.
func TestSSEFallbackBehindProxyRefusingUpgrades(t *testing.T) {
	s := realtimeServer(t, 0)
	proxy := startPlainProxy(t, s.Port)
	a := newBrowser(t, 1000, 760, false)
	b, _ := newTab(t, a)
	watchWebSocket(t, a, false)
	const room = "e2e-sse-proxy"
	enterChatShowing(t, a, proxy, "王五", room, rtConnectedSSE)
	if n := evalInt(t, a, "window.webSocketsTried"); n < 1 {
		t.Fatalf("the page behind the proxy tried WebSocket %d times, want at least once before SSE", n)
	}
	enterChat(t, b, s, "赵六", room)
	waitOnline(t, a, []string{"王五（我）", "赵六"}, 5*time.Second)
	waitOnline(t, b, []string{"王五", "赵六（我）"}, 5*time.Second)
	for i := 1; i <= 3; i++ {
		sendChat(t, a, "经代理发出的第"+strconv.Itoa(i)+"条")
	}
	sendChat(t, b, "直连的回复")
	for i := 1; i <= 3; i++ {
		waitMessage(t, b, "王五", "经代理发出的第"+strconv.Itoa(i)+"条", 5*time.Second)
	}
	waitMessage(t, a, "赵六", "直连的回复", 5*time.Second)
	// The page's own messages came back over the stream, in order.
	got := innerTexts(t, a, "#messages li.msg .text")
	want := []string{"经代理发出的第1条", "经代理发出的第2条", "经代理发出的第3条", "直连的回复"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the SSE page shows %q, want %q", got, want)
	}
}

// startPlainProxy starts nginx as a proxy that knows nothing of WebSocket
// in front of the server on port: it speaks HTTP/1.1 to it without the
// hop-by-hop Upgrade and Connection headers (so an upgrade arrives as a
// plain GET), and streams responses unbuffered. It returns its base URL.
func startPlainProxy(t *testing.T, port int) string {
	t.Helper()
	nginxBin := testbin.Tool(t, "nginx")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	listen := testbin.FreePort(t)
	conf := fmt.Sprintf(`worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {
        listen 127.0.0.1:%d;
        location / {
            proxy_pass http://127.0.0.1:%d;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_read_timeout 75s;
        }
    }
}
`, listen, port)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testbin.StartProcess(t, "nginx", nginxBin, "-p", dir+"/", "-c", "nginx.conf", "-g", "daemon off;")
	base := "http://127.0.0.1:" + strconv.Itoa(listen)
	waitUntil(t, "the plain proxy to answer /readyz", 10*time.Second, func() bool {
		if !p.Running() {
			t.Fatalf("nginx exited: %v\n%s", p.Err(), p.Output())
		}
		status, _ := httpGet(base + "/readyz")
		return status == 200
	})
	// What the proxy does to an upgrade: the server sees a plain GET.
	if status, _ := httpGet(base + "/realtime"); status != 426 {
		t.Fatalf("GET /realtime through the plain proxy answered %d, want 426", status)
	}
	return base
}

// transportClient makes window[name], a Duplex with the options (a JS
// object literal), and records its events in window[name + 'Events']:
// "connecting:<transport>", "transport:<transport>/<previous>",
// "connected", "disconnected:<code>".
func transportClient(name, options string) string {
	return transportClientWith(name, options, "")
}

// transportClientWith is transportClient with setup, statements run with
// dx (the client) before it connects.
func transportClientWith(name, options, setup string) string {
	n := strconv.Quote(name)
	return `(() => {
		const events = window[` + n + ` + 'Events'] = [];
		const dx = window[` + n + `] = new Duplex(` + options + `);
		dx.on('connecting', e => events.push('connecting:' + e.transport));
		dx.on('transport', e => events.push('transport:' + e.transport + '/' + e.previous));
		dx.on('connected', () => events.push('connected'));
		dx.on('disconnected', e => events.push('disconnected:' + e.code));
		` + setup + `
		dx.connect();
		return true;
	})()`
}

// TestDuplexJSTransports: transports: ['sse'] uses SSE only, also where
// WebSocket works, and commands and pushes go through it;
// transports: ['websocket'] never falls back; after a fallback a
// reconnect starts with SSE while sseStickyMs lasts, and tries WebSocket
// first again after it (the transport event says so); a WebSocket that
// works again right after the fallback is used instead of the stream.
func TestDuplexJSTransports(t *testing.T) {
	s := realtimeServer(t, 0)
	open := openDuplexJSPage(t, s)

	// Pinned to SSE where WebSocket works.
	runJS(t, open, transportClient("pinned", `{name: '钉子', transports: ['sse']}`))
	waitEvents(t, open, "pinned", 10*time.Second, "connecting:sse", "transport:sse/null", "connected")
	runJS(t, open, `(() => {
		window.pinnedGot = [];
		window.pinned.subscribe('chat:e2e-pin').on('publication', p => window.pinnedGot.push(p.data.text));
		window.pinned.subscribe('chat:e2e-pin').then(null, e => { window.pinnedDouble = e.code; });
	})()`)
	other := dialRealtime(t, s, "name=other")
	waitFor(t, open, "the pinned client subscribed", 5*time.Second, `JSON.stringify(window.pinnedEvents)`,
		`() => window.pinned.position('chat:e2e-pin') !== null`)
	runJS(t, open, `window.pinned.publish('chat:e2e-pin', {text: '经 SSE 发布'}).then(r => { window.pinnedPos = r.offset; }); true`)
	waitFor(t, open, "the publish over SSE answered", 5*time.Second, `String(window.pinnedPos)`, `() => window.pinnedPos === 1`)
	other.Publish("chat:e2e-pin", `{"text":"别人发布"}`)
	waitFor(t, open, "own and other's publications over SSE", 5*time.Second, `JSON.stringify(window.pinnedGot)`,
		`() => JSON.stringify(window.pinnedGot) === JSON.stringify(['经 SSE 发布', '别人发布'])`)
	if got := evalString(t, open, "window.pinned.transport + '/' + window.pinnedDouble"); got != "sse/bad_request" {
		t.Errorf("pinned transport/second subscribe = %q, want sse/bad_request", got)
	}

	blocked, _ := newTab(t, open)
	watchWebSocket(t, blocked, true)
	navigate(t, blocked, s, "/push")
	waitVisibleText(t, blocked, "status", rtConnectedSSE, 10*time.Second)

	// Pinned to WebSocket where it cannot work: retries, never SSE.
	runJS(t, blocked, transportClient("wsOnly", `{transports: ['websocket'], backoffMin: 20, backoffMax: 40}`))
	waitFor(t, blocked, "three WebSocket attempts", 5*time.Second, `JSON.stringify(window.wsOnlyEvents)`,
		`() => window.wsOnlyEvents.filter(e => e === 'connecting:websocket').length >= 3`)
	runJS(t, blocked, `window.wsOnly.close(); true`)
	for _, e := range evalStrings(t, blocked, "window.wsOnlyEvents") {
		if e != "connecting:websocket" && e != "disconnected:1006" && e != "disconnected:1000" {
			t.Errorf("a client pinned to WebSocket had the event %q", e)
		}
	}

	// Fallen back to SSE: sticky, and briefly sticky. Signed in (the
	// token goes in the stream's query and with every emit), so that the
	// API can disconnect each by its user.
	runJS(t, blocked, transportClient("sticky", `{token: `+strconv.Quote(mintJS(t, "sticky", time.Hour))+`, backoffMin: 20}`))
	runJS(t, blocked, transportClient("brief", `{token: `+strconv.Quote(mintJS(t, "brief", time.Hour))+`, backoffMin: 20, sseStickyMs: 1}`))
	fellBack := []string{"connecting:websocket", "connecting:sse", "transport:sse/null", "connected"}
	waitEvents(t, blocked, "sticky", 10*time.Second, fellBack...)
	waitEvents(t, blocked, "brief", 10*time.Second, fellBack...)
	if got := evalString(t, blocked, "window.sticky.info.user + '/' + window.brief.info.user"); got != "sticky/brief" {
		t.Errorf("users over SSE = %q, want sticky/brief", got)
	}
	runJS(t, blocked, `window.allowWebSocket = true`)
	for _, user := range []string{"sticky", "brief"} {
		apiCall(t, s, "POST", "/api/disconnect", map[string]any{"user": user, "code": 4000, "reason": "e2e"}, nil)
	}
	waitEvents(t, blocked, "sticky", 10*time.Second, append(fellBack, "disconnected:4000", "connecting:sse", "connected")...)
	waitEvents(t, blocked, "brief", 10*time.Second, append(fellBack, "disconnected:4000", "connecting:websocket", "transport:websocket/sse", "connected")...)
	if got := evalString(t, blocked, "window.sticky.transport + '/' + window.brief.transport"); got != "sse/websocket" {
		t.Errorf("transports after the reconnect = %q, want sse/websocket", got)
	}

	// A WebSocket that failed only once (as when the server was down for
	// a moment): the probe before the SSE connect opens one, and the
	// client connects over WebSocket instead.
	runJS(t, blocked, `window.allowWebSocket = false`)
	runJS(t, blocked, transportClientWith("transient", `{name: '暂'}`,
		`dx.on('connecting', e => { if (e.transport === 'sse') window.allowWebSocket = true; });`))
	waitEvents(t, blocked, "transient", 10*time.Second, "connecting:websocket", "connecting:sse", "connecting:websocket", "transport:websocket/null", "connected")
}

// runJS evaluates a JavaScript expression in the tab, failing t on error.
func runJS(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](expr)); err != nil {
		t.Fatalf("evaluate %.80s: %v", expr, err)
	}
}

// evalString evaluates a JavaScript expression that yields a string.
func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// evalStrings evaluates a JavaScript expression that yields strings.
func evalStrings(t *testing.T, ctx context.Context, expr string) []string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}
