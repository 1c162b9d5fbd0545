package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/testbin"
	"github.com/duplex/duplex/internal/wstest"
	"github.com/duplex/duplex/realtime"
	"github.com/duplex/duplex/realtime/protocol"
	"github.com/duplex/duplex/wsconn"
)

// socketRelay forwards TCP connections to target and counts what target
// sends back on those that ask for path's WebSocket: the socket's bytes
// on the wire as the browser receives them, compressed or not, without
// the page and its scripts.
func socketRelay(t *testing.T, target, path string) (addr string, fromServer *atomic.Int64) {
	fromServer = new(atomic.Int64)
	addr, _ = wstest.Relay(t, target, func(first []byte) *atomic.Int64 {
		if line := string(first); strings.HasPrefix(line, "GET "+path+" ") || strings.HasPrefix(line, "GET "+path+"?") {
			return fromServer
		}
		return nil
	})
	return addr, fromServer
}

// noteText is about 1 KB of an announcement's text, different for every
// i, as a backend pushes them.
func noteText(i int) string {
	phrases := []string{"今晚 22:00 维护", "新版本已发布", "请更新客户端", "活动开始啦", "系统升级完成",
		"maintenance tonight", "new release", "please update", "服务器迁移", "感谢大家的支持"}
	var b strings.Builder
	for k := 0; b.Len() < 900; k++ {
		fmt.Fprintf(&b, "%s #%d-%d，", phrases[(i*7+k*3)%len(phrases)], i, k)
	}
	return b.String()
}

// Chromium lets the server keep its deflate context, so on a channel with
// enough subscribers each publication reaches the page compressed against
// the previous one: the page shows every one intact, and the bytes on the
// wire are well under what compressing each on its own would have cost.
// With WS_COMPRESSION_CONTEXT=off the same run costs the latter, and the
// answer tells the browser it need keep no window.
func TestBrowserInflatesPublicationsCompressedAgainstThePreviousOne(t *testing.T) {
	for _, tc := range []struct {
		env       []string
		answer    string
		following bool
	}{
		{nil, "permessage-deflate; client_no_context_takeover", true},
		{[]string{"WS_COMPRESSION_CONTEXT=off"}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", false},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			s := testbin.Start(t, testbin.Options{Env: append([]string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text",
				"API_KEY=" + testAPIKey, "TOKEN_SECRET=" + testTokenSecret}, tc.env...)})
			proxy, fromServer := socketRelay(t, "127.0.0.1:"+strconv.Itoa(s.Port), "/realtime")
			// The page and seven others: a channel large enough to keep
			// its last publication (realtime's followMinSubscribers).
			for i := range 7 {
				dialRealtime(t, s, fmt.Sprintf("name=sub%d", i)).Subscribe("push:news")
			}
			ctx := newBrowser(t, 1000, 900, false)
			recordSockets(t, ctx)
			navigateTo(t, ctx, "http://"+proxy+"/push")
			waitVisibleText(t, ctx, "status", rtConnected, 10*time.Second)
			waitVisibleText(t, ctx, "subs", "已订阅：push:news", 5*time.Second)
			if ext := openSocketExtensions(t, ctx); len(ext) != 1 || ext[0] != tc.answer {
				t.Fatalf("the page's socket negotiated %q, want %q", ext, tc.answer)
			}

			const pubs = 20
			var plain, alone int
			for i := range pubs {
				data := map[string]any{"title": fmt.Sprintf("公告 %d", i), "text": noteText(i)}
				var res struct{ Offset uint64 }
				apiCall(t, s, "POST", "/api/publish", map[string]any{"channel": "push:news", "data": data}, &res)
				compact, _ := json.Marshal(data)
				frame := protocol.EncodePublication("push:news", realtime.Publication{Offset: res.Offset, Data: compact})
				plain += len(frame)
				alone += len(wsconn.DeflateMessage(frame))
			}
			note := `(title, body) => Array.from(document.querySelectorAll('#notifications li.note')).some(li =>
				li.querySelector('.title') && li.querySelector('.title').innerText === title &&
				li.querySelector('.body').innerText === body)`
			describe := `Array.from(document.querySelectorAll('#notifications li .title'), e => e.innerText).join(', ')`
			for i := range pubs {
				waitFor(t, ctx, fmt.Sprintf("publication %d intact on the page", i), 10*time.Second, describe, note, fmt.Sprintf("公告 %d", i), noteText(i))
			}
			// Everything the page's socket read: the 101, the replies to
			// its commands (the same in both runs) and the publications,
			// which came before the page could show the last one.
			wire := int(fromServer.Load())
			t.Logf("publications: %d bytes plain, %d compressed alone; the browser's connections read %d", plain, alone, wire)
			// Compressed against the previous one, a publication is about
			// half of its alone form (docs/benchmarks.md).
			if followed := wire < alone*4/5; followed != tc.following {
				t.Fatalf("the browser read %d bytes; %d compressed alone: compressed against the previous ones %v, want %v", wire, alone, followed, tc.following)
			}
		})
	}
}
