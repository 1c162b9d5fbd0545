package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/testbin"
	"github.com/duplex/duplex/public"
)

// TestSSEFromAnAllowedOrigin: a page of an origin listed in
// ALLOWED_ORIGINS (another port of the same host here), whose duplex.js
// is pinned to SSE, reads the stream and gets its commands through, as
// its WebSocket would: the browser lets the page read the cross-origin
// stream and emits only if the server says the origin may, and a signed-in
// client's emits carry Authorization, so each is preflighted.
func TestSSEFromAnAllowedOrigin(t *testing.T) {
	// The other site serves its own copy of duplex.js: duplex's static
	// files are same-origin resources (Cross-Origin-Resource-Policy).
	mux := http.NewServeMux()
	mux.Handle("/js/", http.FileServerFS(public.FS))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>另一个站点</title><script src="/js/duplex.js"></script>`)
	})
	site := httptest.NewServer(mux)
	t.Cleanup(site.Close)
	s := testbin.Start(t, testbin.Options{
		Env: []string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text",
			"API_KEY=" + testAPIKey, "TOKEN_SECRET=" + testTokenSecret, "ALLOWED_ORIGINS=" + site.URL},
	})

	page := newBrowser(t, 1000, 760, false)
	navigateTo(t, page, site.URL+"/")
	wsURL := "ws" + strings.TrimPrefix(s.URL, "http") + "/realtime"
	runJS(t, page, transportClient("cors", `{url: `+strconv.Quote(wsURL)+`, transports: ['sse'], token: `+
		strconv.Quote(mintJS(t, "cors", time.Hour))+`}`))
	waitEvents(t, page, "cors", 10*time.Second, "connecting:sse", "transport:sse/null", "connected")
	runJS(t, page, `(() => {
		window.corsGot = [];
		window.cors.subscribe('chat:e2e-cors').on('publication', p => window.corsGot.push(p.data.text));
	})()`)
	waitFor(t, page, "the cross-origin client subscribed", 5*time.Second, `JSON.stringify(window.corsEvents)`,
		`() => window.cors.position('chat:e2e-cors') !== null`)
	runJS(t, page, `window.cors.publish('chat:e2e-cors', {text: '跨源发布'}); true`)
	waitFor(t, page, "its own publication over the cross-origin stream", 5*time.Second, `JSON.stringify(window.corsGot)`,
		`() => JSON.stringify(window.corsGot) === JSON.stringify(['跨源发布'])`)
}
