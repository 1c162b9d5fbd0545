package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/duplex/duplex/internal/testbin"
)

// recordSockets makes every page the tab loads from now on keep the
// WebSockets it opens in window.__sockets, so that a test can read what
// the page's own socket negotiated (ws.extensions). Nothing else of
// WebSocket changes.
func recordSockets(t *testing.T, ctx context.Context) {
	t.Helper()
	const script = `(() => {
		const Native = window.WebSocket;
		window.__sockets = [];
		function Recorded(url, protocols) {
			const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
			window.__sockets.push(ws);
			return ws;
		}
		Recorded.prototype = Native.prototype;
		for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Recorded[k] = Native[k];
		window.WebSocket = Recorded;
	})();`
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		t.Fatalf("record the page's sockets: %v", err)
	}
}

// openSocketExtensions is ws.extensions of every open socket of the page.
func openSocketExtensions(t *testing.T, ctx context.Context) []string {
	t.Helper()
	ext, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`(window.__sockets || []).filter(ws => ws.readyState === WebSocket.OPEN).map(ws => ws.extensions)`))
	if err != nil {
		t.Fatalf("read the sockets' extensions: %v", err)
	}
	return ext
}

// Chromium offers permessage-deflate on every socket; with compression
// on (the default) the echo page's socket negotiates it and a reply large
// enough to go out compressed shows as it should; with WS_COMPRESSION=off
// the socket has no extension and the page works the same.
func TestBrowserEchoNegotiatesDeflate(t *testing.T) {
	name := strings.Repeat("李旺", 40) // the reply is 560 bytes: compressed
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{[]string{"WS_COMPRESSION=off"}, ""},
	} {
		ctx := newBrowser(t, 900, 640, false)
		recordSockets(t, ctx)
		s := testbin.Start(t, testbin.Options{
			Env: append([]string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text"}, tc.env...),
		})
		openPage(t, ctx, s)
		if ext := openSocketExtensions(t, ctx); len(ext) != 1 || ext[0] != tc.want {
			t.Fatalf("%v: the page's socket negotiated %q, want %q", tc.env, ext, tc.want)
		}
		sendByClick(t, ctx, name)
		waitText(t, ctx, "result", reply(name), 5*time.Second)
		sendByClick(t, ctx, "李旺") // a small reply goes plain on the same socket
		waitText(t, ctx, "result", reply("李旺"), 5*time.Second)
	}
}

// The chat page's duplex.js socket to /realtime negotiates deflate too,
// leaving the server its context (Chromium offers no
// server_no_context_takeover), and two pages exchange long messages
// through it.
func TestBrowserChatNegotiatesDeflate(t *testing.T) {
	s := realtimeServer(t, 0)
	a := newBrowser(t, 1000, 760, false)
	recordSockets(t, a)
	b, _ := newTab(t, a)
	recordSockets(t, b)
	enterChat(t, a, s, "李旺", "e2e-deflate")
	enterChat(t, b, s, "张三", "e2e-deflate")
	for _, tab := range []context.Context{a, b} {
		if ext := openSocketExtensions(t, tab); len(ext) != 1 || ext[0] != "permessage-deflate; client_no_context_takeover" {
			t.Fatalf("the chat page's sockets negotiated %q, want permessage-deflate keeping the server's context", ext)
		}
	}
	long := strings.Repeat("大家好，今天的比赛太精彩了！", 20)
	sendChat(t, a, long)
	waitMessage(t, b, "李旺", long, 5*time.Second)
	sendChat(t, b, "好")
	waitMessage(t, a, "张三", "好", 5*time.Second)
}
