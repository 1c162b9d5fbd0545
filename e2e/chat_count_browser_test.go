package e2e

import (
	"testing"
	"time"

	"github.com/duplex/duplex/internal/testbin"
	"github.com/duplex/duplex/realtime/protocol"
)

// TestRealtimeChatCountOnlyInABigRoom: in a room past the namespace's
// join_leave_max_members (2 here), the server sends the member count
// instead of joins and leaves, and the page shows the count rather than a
// list it can no longer keep; once the room is small again the page
// reloads the list and shows the right members.
func TestRealtimeChatCountOnlyInABigRoom(t *testing.T) {
	s := testbin.Start(t, testbin.Options{
		Env: []string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text",
			"API_KEY=" + testAPIKey, "TOKEN_SECRET=" + testTokenSecret,
			`NAMESPACES={"chat":{"join_leave_max_members":2,"join_leave_tick":"50ms"}}`},
	})
	ctx := newBrowser(t, 1000, 760, false)
	const room = "e2e-big"
	enterChat(t, ctx, s, "李旺", room)
	waitOnline(t, ctx, []string{"李旺（我）"}, 5*time.Second)

	b := dialRealtime(t, s, "name=张三")
	b.Subscribe("chat:" + room)
	waitOnline(t, ctx, []string{"李旺（我）", "张三"}, 5*time.Second)

	c := dialRealtime(t, s, "name=王五")
	c.Subscribe("chat:" + room)
	waitFor(t, ctx, "the count alone", 5*time.Second,
		`document.getElementById('online-title').innerText + ': ' + document.getElementById('online').innerText`,
		`() => document.getElementById('online-title').innerText === '在线 3 人' &&
			document.querySelectorAll('#online li').length === 1 &&
			document.querySelector('#online li').innerText === '人数较多，只显示人数'`)

	// Back to two members: leaves are sent again, and the page reloads the list.
	c.OK(protocol.Command{Op: protocol.OpUnsubscribe, Channel: "chat:" + room}, nil)
	waitOnline(t, ctx, []string{"李旺（我）", "张三"}, 5*time.Second)
}
