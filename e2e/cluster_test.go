package e2e

// Multi-process tests of several duplex nodes behind nginx over a
// three-server NATS cluster with JetStream (the topology of
// deploy/compose.yaml and deploy/cluster.sh), all on loopback, asserted as
// clients see it. They run nats-server built from the module graph
// (testbin.NATSServer; Debian's only if that build fails) and Debian's
// nginx: without them they are skipped, or fail when CI=true. Helpers:
// cluster_helpers_test.go.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/rttest"
	"github.com/duplex/duplex/internal/testbin"
	"github.com/duplex/duplex/realtime/protocol"
)

// TestClusterCrossNodeDeliveryPresenceHistory: a client on node A
// publishes a sequence; clients connected straight to nodes B and C
// receive every message, in order, with the same offsets; presence and
// history then agree on every node.
func TestClusterCrossNodeDeliveryPresenceHistory(t *testing.T) {
	c := startCluster(t)
	const ch = "chat:cluster-order"
	clients := make([]*rttest.Conn, 3)
	for i := range clients {
		clients[i] = mustDialRT(t, c.nodeURL(i), "name=node"+strconv.Itoa(i))
		clients[i].Subscribe(ch)
	}
	const n = 20 // within chat's publish burst of 20
	var epoch string
	for k := 1; k <= n; k++ {
		var r protocol.PublishResult
		clients[0].OK(protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(`{"n":` + strconv.Itoa(k) + `}`)}, &r)
		if r.Offset != uint64(k) {
			t.Fatalf("publish %d got offset %d", k, r.Offset)
		}
		epoch = r.Epoch
	}
	for i, cl := range clients {
		got := cl.WaitPubs(ch, n, 10*time.Second)
		if len(got) != n {
			t.Fatalf("client on node %d: %d publications, want %d", i, len(got), n)
		}
		for k, m := range got {
			if m.Offset != uint64(k+1) || dataN(m.Data) != k+1 {
				t.Fatalf("client on node %d: publication %d is offset %d n=%d, want offset and n %d (in order)", i, k, m.Offset, dataN(m.Data), k+1)
			}
			if m.Info == nil || m.Info.Name != "node0" {
				t.Fatalf("client on node %d: publication %d info %+v, want the publisher node0", i, k, m.Info)
			}
		}
	}

	// Presence: the same three clients whichever node answers.
	var want []string
	for i := range c.nodes {
		var pr protocol.PresenceResult
		apiOK(t, c.nodeURL(i), "GET", "/api/presence/"+ch, nil, &pr)
		var ids []string
		names := map[string]bool{}
		for id, info := range pr.Clients {
			ids = append(ids, id)
			names[info.Name] = true
		}
		slices.Sort(ids)
		if pr.Count != 3 || len(ids) != 3 || !names["node0"] || !names["node1"] || !names["node2"] {
			t.Fatalf("presence on node %d = %+v, want the three clients", i, pr)
		}
		if want == nil {
			want = ids
		} else if !slices.Equal(ids, want) {
			t.Fatalf("presence on node %d lists %v, node 0 lists %v", i, ids, want)
		}
	}
	// History: the same publications and position on every node.
	for i := range c.nodes {
		var h protocol.HistoryResult
		apiOK(t, c.nodeURL(i), "GET", "/api/history/"+ch, nil, &h)
		if h.Offset != n || h.Epoch != epoch || len(h.Publications) != n {
			t.Fatalf("history on node %d: offset %d epoch %s, %d publications; want %d %s %d", i, h.Offset, h.Epoch, len(h.Publications), n, epoch, n)
		}
		for k, p := range h.Publications {
			if p.Offset != uint64(k+1) || dataN(p.Data) != k+1 {
				t.Fatalf("history on node %d: entry %d is offset %d n=%d", i, k, p.Offset, dataN(p.Data))
			}
		}
	}
	// Through nginx too (any node).
	var h protocol.HistoryResult
	apiOK(t, c.proxyURL(), "GET", "/api/history/"+ch+"?limit=1", nil, &h)
	if len(h.Publications) != 1 || h.Publications[0].Offset != n {
		t.Fatalf("history through nginx: %+v", h)
	}
}

// TestClusterNodeKilledClientsRecoverThroughNginx: node B dies (SIGKILL);
// its clients, connected through nginx, reconnect through nginx to another
// node and recover, with recovered:true, every message published while
// they were away; clients of the other nodes notice nothing.
func TestClusterNodeKilledClientsRecoverThroughNginx(t *testing.T) {
	c := startCluster(t)
	const ch = "chat:cluster-failover"
	proxy := c.proxyURL
	var fs []*follower
	for i := range 6 {
		fs = append(fs, startFollower(t, "f"+strconv.Itoa(i), ch, proxy))
	}
	onNode := map[int][]*follower{}
	for _, f := range fs {
		n := f.node(c)
		if n < 0 {
			t.Fatalf("%s is on no node", f.name)
		}
		onNode[n] = append(onNode[n], f)
	}
	const b = 1
	if len(onNode[b]) == 0 {
		t.Fatalf("nginx (least_conn) put no client on node B: %v", onNode)
	}
	t.Logf("clients per node: A %d, B %d, C %d", len(onNode[0]), len(onNode[1]), len(onNode[2]))

	var acks []acked
	pub := func(node, n int) {
		t.Helper()
		a, ok, fails := publishN(func() string { return c.nodeURL(node) }, ch, n, 1)
		if !ok {
			t.Fatalf("publish n=%d on node %d: %v", n, node, fails)
		}
		acks = append(acks, a)
	}
	for n := 1; n <= 5; n++ {
		pub(n%2*2, n) // nodes A and C
	}
	for _, f := range fs {
		f.waitOffset(t, 5, 5*time.Second)
	}

	// B's clients must not come back before the gap exists.
	for _, f := range onNode[b] {
		f.setGate(false)
	}
	if err := c.nodes[b].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, exited := c.nodes[b].Wait(5 * time.Second); !exited {
		t.Fatal("node B still runs after SIGKILL")
	}
	for _, f := range onNode[b] {
		waitUntil(t, f.name+" to notice node B died", 10*time.Second, f.disconnected)
	}
	for n := 6; n <= 15; n++ {
		pub(n%2*2, n)
	}
	for _, f := range onNode[b] {
		f.setGate(true)
	}
	for _, f := range fs {
		f.waitOffset(t, 15, 15*time.Second)
	}
	pub(0, 16)
	for _, f := range fs {
		f.waitOffset(t, 16, 5*time.Second)
		checkFollower(t, f, acks)
	}
	for _, f := range onNode[b] {
		got, recs, connects := f.snapshot()
		if connects != 2 || len(recs) != 1 {
			t.Errorf("%s: %d subscriptions, %d recoveries; want 2 and 1", f.name, connects, len(recs))
			continue
		}
		if r := recs[0]; !r.recovered || r.from != 5 || r.count != 10 {
			t.Errorf("%s: recovery %+v, want from offset 5, recovered:true with the 10 missed publications", f.name, r)
		}
		for _, r := range got {
			if (r.offset >= 6 && r.offset <= 15) != r.recovered {
				t.Errorf("%s: offset %d recovered=%v", f.name, r.offset, r.recovered)
			}
		}
		if n := f.node(c); n != 0 && n != 2 {
			t.Errorf("%s: reconnected to node %d, want A or C", f.name, n)
		}
	}
	for _, n := range []int{0, 2} {
		for _, f := range onNode[n] {
			if _, recs, connects := f.snapshot(); connects != 1 || len(recs) != 0 {
				t.Errorf("%s on node %d reconnected (%d subscriptions) though its node lives", f.name, n, connects)
			}
		}
	}

	// B's stale presence entries expire (PRESENCE_TTL=3s): every node then
	// lists exactly the six clients as they are now.
	waitUntil(t, "presence to list only the live clients", 15*time.Second, func() bool {
		for _, i := range []int{0, 2} {
			var pr protocol.PresenceResult
			apiOK(t, c.nodeURL(i), "GET", "/api/presence/"+ch, nil, &pr)
			if pr.Count != len(fs) || len(pr.Clients) != len(fs) {
				return false
			}
		}
		return true
	})
}

// TestClusterNATSServerKilledNoAckedLoss: the NATS server leading the chat
// stream is killed (SIGKILL) during steady publishing through the API of
// every node. Publishing goes on (a publish that was not acknowledged may
// be retried; an acknowledged one never is), and every acknowledged
// publication is in the history of every node and reached the subscribers
// of every node, each exactly once and in order.
func TestClusterNATSServerKilledNoAckedLoss(t *testing.T) {
	c := startCluster(t)
	const ch = "chat:cluster-nats-kill"
	var fs []*follower
	for i := range c.nodes {
		base := c.nodeURL(i)
		fs = append(fs, startFollower(t, "direct"+strconv.Itoa(i), ch, func() string { return base }))
	}
	leader := c.nats.StreamLeader("duplex_ch_chat")
	var victim *testbin.NATSMember
	for _, n := range c.nats.Members {
		if n.Name == leader {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("stream leader %q is none of ours", leader)
	}

	const total = 60
	var acks []acked
	retried := 0
	start := time.Now()
	for n := 1; n <= total; n++ {
		if n == 16 {
			t.Logf("killing %s (leader of duplex_ch_chat) after %d publications", victim.Name, n-1)
			victim.Stop(syscall.SIGKILL, 5*time.Second)
		}
		node := n % 3
		a, ok, fails := publishN(func() string { return c.nodeURL(node) }, ch, n, 100)
		if !ok {
			t.Fatalf("publish n=%d never acknowledged in 100 attempts: %v", n, fails[max(0, len(fails)-3):])
		}
		if len(fails) > 0 {
			retried++
			t.Logf("n=%d acknowledged after %d failed attempts (first: %s)", n, len(fails), fails[0])
		}
		acks = append(acks, a)
		time.Sleep(30 * time.Millisecond)
	}
	t.Logf("%d publications acknowledged in %s, %d needed retries", total, time.Since(start).Round(time.Millisecond), retried)
	c.requireNodesRunning()

	last := acks[len(acks)-1].offset
	for i, a := range acks[1:] {
		if a.offset <= acks[i].offset || a.epoch != acks[0].epoch {
			t.Fatalf("acknowledged positions not increasing in one epoch: %+v then %+v", acks[i], a)
		}
	}
	for _, f := range fs {
		f.waitOffset(t, last, 20*time.Second)
		checkFollower(t, f, acks)
	}
	for i := range c.nodes {
		// Reading more than 16 publications goes through an ordered
		// consumer; it must answer within the HTTP client's 10 s.
		var h protocol.HistoryResult
		t0 := time.Now()
		status, body := api(c.nodeURL(i), "GET", "/api/history/"+ch, nil)
		if status != 200 {
			t.Errorf("history on node %d after the NATS server was killed: %d %s after %s", i, status, body, time.Since(t0).Round(time.Millisecond))
			continue
		}
		if err := json.Unmarshal(body, &h); err != nil {
			t.Fatal(err)
		}
		kept := map[uint64]int{}
		for _, p := range h.Publications {
			kept[p.Offset] = dataN(p.Data)
		}
		for _, a := range acks {
			if n, ok := kept[a.offset]; !ok || n != a.n {
				t.Errorf("history on node %d: offset %d holds n=%d (present %v), acknowledged n=%d", i, a.offset, n, ok, a.n)
			}
		}
		if h.Offset != last || h.Epoch != acks[0].epoch {
			t.Errorf("history on node %d: position %d/%s, want %d/%s", i, h.Offset, h.Epoch, last, acks[0].epoch)
		}
	}
}

// TestClusterAllNATSDownThenBack: with every NATS server stopped,
// publishing fails at once with unavailable (API 503 "code":"unavailable",
// client publish error unavailable), /readyz says broker_unavailable, and
// no duplex process crashes; when the servers start again, traffic resumes
// by itself on the same connections.
func TestClusterAllNATSDownThenBack(t *testing.T) {
	c := startCluster(t)
	const ch = "chat:cluster-outage"
	clients := make([]*rttest.Conn, 3)
	for i := range clients {
		clients[i] = mustDialRT(t, c.nodeURL(i), "name=out"+strconv.Itoa(i))
		clients[i].Subscribe(ch)
	}
	apiOK(t, c.nodeURL(0), "POST", "/api/publish", map[string]any{"channel": ch, "data": map[string]int{"n": 1}}, nil)
	for _, cl := range clients {
		cl.WaitPubs(ch, 1, 5*time.Second)
	}

	for _, n := range c.nats.Members {
		n.Stop(syscall.SIGTERM, 10*time.Second)
	}
	for i := range c.nodes {
		waitUntil(t, fmt.Sprintf("node %d /readyz to say broker_unavailable", i), 10*time.Second, func() bool {
			status, body := httpGet(c.nodeURL(i) + "/readyz")
			return status == 503 && strings.Contains(body, `"status":"broker_unavailable"`)
		})
	}
	for i := range c.nodes {
		t0 := time.Now()
		status, body := api(c.nodeURL(i), "POST", "/api/publish", map[string]any{"channel": ch, "data": map[string]int{"n": 99}})
		if status != 503 || !strings.Contains(string(body), `"code":"unavailable"`) {
			t.Errorf("API publish on node %d during the outage: %d %s, want 503 unavailable", i, status, body)
		}
		if d := time.Since(t0); d > 3*time.Second {
			t.Errorf("API publish on node %d took %s to fail, want at once", i, d)
		}
		m, err := clients[i].TryCall(protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(`{"n":98}`)})
		if err != nil {
			t.Fatalf("client publish on node %d during the outage: %v", i, err)
		}
		if m.Error == nil || m.Error.Code != protocol.CodeUnavailable {
			t.Errorf("client publish on node %d during the outage: %+v %s, want error unavailable", i, m.Error, m.Result)
		}
		if status, _ := httpGet(c.nodeURL(i) + "/livez"); status != 200 {
			t.Errorf("node %d /livez = %d during the outage", i, status)
		}
	}
	c.requireNodesRunning()

	for _, n := range c.nats.Members {
		n.Start()
	}
	for i := range c.nodes {
		c.waitNodeReady(i, 30*time.Second)
	}
	// The first publishes may still meet a cluster electing its leaders:
	// retry those that were not acknowledged, for a bounded time.
	a, ok, fails := publishN(func() string { return c.nodeURL(1) }, ch, 2, 150)
	if !ok {
		t.Fatalf("API publish after NATS came back: never acknowledged: %v", fails[max(0, len(fails)-3):])
	}
	t.Logf("first publish after the outage acknowledged at offset %d after %d failed attempts", a.offset, len(fails))
	for i, cl := range clients {
		if !cl.WaitState(15*time.Second, func() bool {
			for _, m := range cl.AllPushes() {
				if m.Channel == ch && m.Offset == a.offset && dataN(m.Data) == 2 {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("client on node %d never received the publication after the outage (connection %v); got %d pubs", i, cl.ReadErr(), len(cl.Pubs(ch)))
		}
	}
	// A client publish works again too, and reaches the other nodes.
	var r protocol.PublishResult
	clients[2].OK(protocol.Command{Op: protocol.OpPublish, Channel: ch, Data: json.RawMessage(`{"n":3}`)}, &r)
	for i, cl := range clients {
		if !cl.WaitState(10*time.Second, func() bool {
			for _, m := range cl.AllPushes() {
				if m.Channel == ch && m.Offset == r.Offset {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("client on node %d did not receive the client publish after the outage", i)
		}
		got := cl.Pubs(ch)
		for k := 1; k < len(got); k++ {
			if got[k].Offset <= got[k-1].Offset {
				t.Errorf("client on node %d: offsets out of order: %d then %d", i, got[k-1].Offset, got[k].Offset)
			}
		}
	}
	c.requireNodesRunning()
}

// TestClusterRollingRestart: the three nodes are restarted one after
// another (SIGTERM, start, wait ready) while publications flow steadily
// through the API of the nodes not being restarted. Clients connected
// through nginx reconnect through nginx, recover with recovered:true, and
// see every acknowledged offset exactly once.
func TestClusterRollingRestart(t *testing.T) {
	c := startCluster(t)
	const ch = "chat:cluster-rolling"
	var fs []*follower
	for i := range 6 {
		fs = append(fs, startFollower(t, "r"+strconv.Itoa(i), ch, c.proxyURL))
	}

	var mu sync.Mutex
	restarting := -1
	var acks []acked
	var pubErr error
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			target := func() string {
				mu.Lock()
				defer mu.Unlock()
				node := n % 3
				if node == restarting {
					node = (node + 1) % 3
				}
				return c.nodeURL(node)
			}
			a, ok, fails := publishN(target, ch, n, 50)
			mu.Lock()
			if !ok {
				pubErr = fmt.Errorf("publish n=%d never acknowledged: %v", n, fails[max(0, len(fails)-3):])
				mu.Unlock()
				return
			}
			acks = append(acks, a)
			mu.Unlock()
			time.Sleep(40 * time.Millisecond)
		}
	}()

	time.Sleep(500 * time.Millisecond)
	for i := range c.nodes {
		mu.Lock()
		restarting = i
		mu.Unlock()
		t0 := time.Now()
		if code := c.nodes[i].Stop(); code != 0 {
			t.Errorf("node %d exited %d after SIGTERM", i, code)
		}
		c.startNode(i)
		t.Logf("node %d restarted in %s", i, time.Since(t0).Round(time.Millisecond))
		mu.Lock()
		restarting = -1
		mu.Unlock()
		time.Sleep(700 * time.Millisecond)
	}
	close(stop)
	<-pubDone
	mu.Lock()
	final, err := append([]acked(nil), acks...), pubErr
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(final) < 20 {
		t.Fatalf("only %d publications acknowledged", len(final))
	}
	last := final[len(final)-1].offset
	reconnected := 0
	for _, f := range fs {
		f.waitOffset(t, last, 20*time.Second)
		checkFollower(t, f, final)
		_, recs, _ := f.snapshot()
		for _, r := range recs {
			if !r.recovered {
				t.Errorf("%s: recovery %+v", f.name, r)
			}
		}
		if len(recs) > 0 {
			reconnected++
		}
	}
	t.Logf("%d publications acknowledged; %d of %d clients reconnected at least once", len(final), reconnected, len(fs))
	if reconnected < len(fs) {
		t.Errorf("only %d of %d clients were moved by the restarts; every node was restarted", reconnected, len(fs))
	}
}

// TestClusterBrowserChatAcrossNodes: two Chromium pages of /chat, each
// opened on a different node's own port, in one room, see each other in
// the member list and each other's messages.
func TestClusterBrowserChatAcrossNodes(t *testing.T) {
	c := startCluster(t)
	a := newBrowser(t, 1000, 760, false)
	b, _ := newTab(t, a)

	enterChat(t, a, c.nodes[0], "节点甲", "cluster-room")
	enterChat(t, b, c.nodes[1], "节点乙", "cluster-room")
	waitOnline(t, a, []string{"节点甲（我）", "节点乙"}, 10*time.Second)
	waitOnline(t, b, []string{"节点甲", "节点乙（我）"}, 10*time.Second)

	sendChat(t, a, "你好，从节点一")
	waitMessage(t, b, "节点甲", "你好，从节点一", 10*time.Second)
	sendChat(t, b, "收到，从节点二")
	waitMessage(t, a, "节点乙", "收到，从节点二", 10*time.Second)
	waitMessage(t, b, "节点乙", "收到，从节点二", 5*time.Second)
	for _, tab := range []context.Context{a, b} {
		if n := messageCount(t, tab, "你好，从节点一"); n != 1 {
			t.Errorf("a message shows %d times on a page, want once", n)
		}
	}
}

// TestClusterScript: deploy/cluster.sh up starts the whole topology on
// the ports it is given and waits for it; status reports it; a publish
// through its nginx reaches a client of another node; down stops every
// process it started.
func TestClusterScript(t *testing.T) {
	natsBin := testbin.Tool(t, "nats-server")
	testbin.Tool(t, "nginx")
	work := t.TempDir()
	// Ten different ports: the proxy's, then three each for the nodes,
	// the NATS clients and the NATS routes. Picked at once, so no two of
	// them are the same port (a CI run saw NATS's route port equal its
	// client port when each was picked on its own).
	free := testbin.FreePorts(t, 10)
	ports := func(n int) string {
		var p []string
		for _, port := range free[:n] {
			p = append(p, strconv.Itoa(port))
		}
		free = free[n:]
		return strings.Join(p, " ")
	}
	proxy, free := free[0], free[1:]
	nodePorts := strings.Fields(ports(3))
	env := append(os.Environ(), "WORKDIR="+work, "PORT="+strconv.Itoa(proxy),
		"NODE_PORTS="+strings.Join(nodePorts, " "), "NATS_PORTS="+ports(3), "NATS_CLUSTER_PORTS="+ports(3),
		"DUPLEX_BIN="+testbin.Binary(t), "API_KEY="+clusterAPIKey, "TOKEN_SECRET="+clusterTokenSecret,
		"LOG_FORMAT=text", "NATS_SERVER="+natsBin) // the module's, as the other cluster tests
	script := filepath.Join(repoRoot(t), "deploy", "cluster.sh")
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := run("down"); err != nil {
			t.Errorf("cluster.sh down at cleanup: %v\n%s", err, out)
		}
		if t.Failed() {
			for _, f := range []string{"nats1", "duplex1", "duplex2", "nginx"} {
				b, _ := os.ReadFile(filepath.Join(work, "logs", f+".log"))
				t.Logf("--- %s.log ---\n%s", f, testbin.Tail(string(b), 2048))
			}
		}
	})
	out, err := run("up")
	if err != nil {
		t.Fatalf("cluster.sh up: %v\n%s", err, out)
	}
	t.Logf("cluster.sh up:\n%s", out)
	pids := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for k := 1; k+2 < len(f); k++ {
			if f[k] == "running" && f[k+1] == "pid" {
				pid, _ := strconv.Atoi(f[k+2])
				pids[f[0]] = pid
			}
		}
	}
	if len(pids) != 7 {
		t.Fatalf("cluster.sh up reported %d running pieces, want 7: %v", len(pids), pids)
	}
	if out, err := run("status"); err != nil || strings.Count(out, "readyz 200") != 3 || !strings.Contains(out, "readyz(via nginx) 200") {
		t.Fatalf("cluster.sh status: %v\n%s", err, out)
	}

	// One cluster: a publish through nginx reaches a client on node 3.
	base := "http://127.0.0.1:" + nodePorts[2]
	cl := mustDialRT(t, base, "name=script")
	cl.Subscribe("chat:script")
	apiOK(t, "http://127.0.0.1:"+strconv.Itoa(proxy), "POST", "/api/publish", map[string]any{"channel": "chat:script", "data": map[string]int{"n": 1}}, nil)
	cl.WaitPubs("chat:script", 1, 5*time.Second)
	cl.Close()

	if out, err := run("down"); err != nil {
		t.Fatalf("cluster.sh down: %v\n%s", err, out)
	}
	for name, pid := range pids {
		// Gone, or a zombie nobody reaped (it runs no more).
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("%s (pid %d) still runs after cluster.sh down", name, pid)
		}
	}
	if out, err := run("status"); err == nil || strings.Contains(out, "running") {
		t.Errorf("cluster.sh status after down: %v\n%s", err, out)
	}
}
