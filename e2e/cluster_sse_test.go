package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestClusterSSEEmitsLandOnOtherNodes: behind deploy/nginx.conf
// (least_conn, no sticky sessions) a chat page whose WebSocket is blocked
// holds its SSE stream on one node, and its emits, which nginx sends to
// the nodes with the fewest open requests, land on the other nodes: each
// is accepted (204), routed to the stream's node through NATS, and the
// chat works both ways with a WebSocket page on a node of its own.
func TestClusterSSEEmitsLandOnOtherNodes(t *testing.T) {
	c := startCluster(t)
	b := newBrowser(t, 1000, 760, false)
	a, closeA := newTab(t, b)
	watchWebSocket(t, a, true)
	const room = "cluster-sse"
	enterChatShowing(t, a, c.proxyURL(), "流甲", room, rtConnectedSSE)
	enterChat(t, b, c.nodes[1], "直连乙", room)
	waitOnline(t, a, []string{"流甲（我）", "直连乙"}, 10*time.Second)
	waitOnline(t, b, []string{"流甲", "直连乙（我）"}, 10*time.Second)

	texts := []string{"经 SSE 的第一条", "经 SSE 的第二条", "经 SSE 的第三条"}
	for _, text := range texts {
		sendChat(t, a, text)
	}
	sendChat(t, b, "WebSocket 的回复")
	for _, text := range texts {
		waitMessage(t, b, "流甲", text, 10*time.Second)
		waitMessage(t, a, "流甲", text, 10*time.Second)
	}
	waitMessage(t, a, "直连乙", "WebSocket 的回复", 10*time.Second)
	for _, text := range texts {
		if n := messageCount(t, b, text); n != 1 {
			t.Errorf("%q shows %d times on the WebSocket page, want once", text, n)
		}
	}

	// The stream's line is logged when it ends.
	closeA()
	var stream string
	waitUntil(t, "nginx to log the ended SSE stream", 10*time.Second, func() bool {
		for _, line := range strings.Split(c.proxyLog(), "\n") {
			if f := strings.Fields(line); len(f) >= 4 && f[0] == "GET" && f[1] == "/realtime/sse" {
				stream = line
				return true
			}
		}
		return false
	})
	f := strings.Fields(stream)
	if f[2] != "200" {
		t.Fatalf("the SSE stream through nginx: %q, want status 200", stream)
	}
	streamNode := f[3]
	var emits, elsewhere int
	for _, line := range strings.Split(c.proxyLog(), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "POST" || f[1] != "/realtime/emit" {
			continue
		}
		emits++
		if f[2] != "204" {
			t.Errorf("an emit through nginx: %q, want status 204", line)
		}
		if f[3] != streamNode {
			elsewhere++
		}
	}
	t.Logf("stream on %s; %d emits, %d of them on other nodes", streamNode, emits, elsewhere)
	if emits < len(texts) || elsewhere == 0 {
		t.Errorf("%d emits, %d on other nodes than the stream's %s: want at least %d, some elsewhere; nginx log:\n%s",
			emits, elsewhere, streamNode, len(texts), c.proxyLog())
	}
}
