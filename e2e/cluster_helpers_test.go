package e2e

// Helpers of cluster_test.go: the topology of deploy/compose.yaml and
// deploy/cluster.sh (three nats-server with JetStream, three duplex nodes on
// BROKER=nats, nginx with deploy/nginx.conf) started as processes on
// loopback, a /realtime client that keeps working from other goroutines,
// and a "follower" that stays subscribed through reconnects by recovering
// its position.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplex/duplex/internal/testbin"
	"github.com/duplex/duplex/realtime/protocol"
)

// The secrets every node of a test cluster shares.
const (
	clusterAPIKey      = "test-key-e2e-cluster"
	clusterTokenSecret = "e2e-cluster-token-secret-0123456789abcdef"
)

// clusterReplyTimeout bounds one command round trip in cluster tests.
const clusterReplyTimeout = 5 * time.Second

// clusterTool returns the path of a program the cluster tests need: for
// nats-server testbin.NATSServer's (NATS_SERVER, else built from the
// module graph, so the tests run a server without nats-server issue 4320;
// Debian's only if that build fails), for nginx the one on PATH, else in
// /usr/sbin. When it is missing the test is skipped, or fails when
// CI=true.
func clusterTool(t *testing.T, name string) string {
	t.Helper()
	if name == "nats-server" {
		if p := testbin.NATSServer(t); p != "" {
			return p
		}
	} else if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; isExecutable(p) {
		return p
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s not found (PATH, /usr/sbin); CI must install it: apt-get install %s", name, debianPackage(name))
	}
	t.Skipf("%s not found (PATH, /usr/sbin): skipping multi-process cluster test; install it with apt-get install %s (with CI=true this fails)", name, debianPackage(name))
	return ""
}

func debianPackage(name string) string {
	if name == "nginx" {
		return "nginx"
	}
	return name
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// proc is a child process (nats-server, nginx) owned by the test: killed
// with the test process (Pdeathsig) and stopped at cleanup.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testbin.SyncBuffer
	done chan struct{}
	err  error
}

// startProc runs path with args; its output is kept and logged if the test
// fails.
func startProc(t *testing.T, name, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &testbin.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = testbin.ChildAttr()
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the forking thread exits: keep it alive.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM, 10*time.Second)
		if t.Failed() {
			t.Logf("--- output of %s (last 4 KiB) ---\n%s", name, tail(p.out.String(), 4096))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// stop sends sig and waits up to timeout for the exit, then kills.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// natsServer is one member of the NATS cluster; it can be stopped and
// started again on the same ports and store.
type natsServer struct {
	name        string
	bin         string
	port, cport int
	dir         string
	routes      []string
	p           *proc
}

func (n *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// start runs the server as deploy/cluster.sh does.
func (n *natsServer) start(t *testing.T) {
	t.Helper()
	n.p = startProc(t, n.name, n.bin, "-n", n.name, "-a", "127.0.0.1", "-p", strconv.Itoa(n.port),
		"-js", "-sd", n.dir, "--cluster_name", "duplex",
		"--cluster", "nats://127.0.0.1:"+strconv.Itoa(n.cport),
		"--routes", strings.Join(n.routes, ","))
}

// cluster is the whole topology.
type cluster struct {
	t         *testing.T
	dir       string
	nats      [3]*natsServer
	nodePorts [3]int
	nodes     [3]*testbin.Server
	nodeEnv   []string
	nginx     *proc
	proxyPort int
}

// startCluster starts three NATS servers (and waits for JetStream), three
// duplex nodes one after another (each ready before the next: nodes
// starting together race to create the streams), and nginx. extraEnv is
// added to every node's environment.
func startCluster(t *testing.T, extraEnv ...string) *cluster {
	t.Helper()
	natsBin := clusterTool(t, "nats-server")
	nginxBin := clusterTool(t, "nginx")
	c := &cluster{t: t, dir: t.TempDir()}
	var urls []string
	for i := range c.nats {
		c.nats[i] = &natsServer{name: "nats" + strconv.Itoa(i+1), bin: natsBin,
			port: testbin.FreePort(t), cport: testbin.FreePort(t),
			dir: filepath.Join(c.dir, "nats"+strconv.Itoa(i+1))}
		urls = append(urls, c.nats[i].url())
	}
	for i, n := range c.nats {
		for j, m := range c.nats {
			if i != j {
				n.routes = append(n.routes, "nats://127.0.0.1:"+strconv.Itoa(m.cport))
			}
		}
	}
	for _, n := range c.nats {
		n.start(t)
	}
	c.waitJetStream(20 * time.Second)

	c.nodeEnv = append([]string{"HOST=127.0.0.1", "LOG_FORMAT=text", "SHUTDOWN_TIMEOUT=5s",
		"BROKER=nats", "NATS_URL=" + strings.Join(urls, ","), "NATS_REPLICAS=3", "NATS_STARTUP=wait",
		"TRUSTED_PROXIES=127.0.0.1", "PRESENCE_TTL=3s",
		"API_KEY=" + clusterAPIKey, "TOKEN_SECRET=" + clusterTokenSecret}, extraEnv...)
	for i := range c.nodes {
		c.nodePorts[i] = testbin.FreePort(t)
		c.startNode(i)
	}

	// nginx: deploy/nginx.conf as deploy/cluster.sh changes it (listen
	// port, temp paths) and an upstream.conf of the node ports.
	c.proxyPort = testbin.FreePort(t)
	ndir := filepath.Join(c.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(ndir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ndir, "nginx.conf"), []byte(clusterNginxConf(t, c.proxyPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	var up strings.Builder
	for _, p := range c.nodePorts {
		fmt.Fprintf(&up, "server 127.0.0.1:%d max_fails=1 fail_timeout=2s;\n", p)
	}
	if err := os.WriteFile(filepath.Join(ndir, "upstream.conf"), []byte(up.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c.nginx = startProc(t, "nginx", nginxBin, "-p", ndir+"/", "-c", "nginx.conf", "-g", "daemon off;")
	waitUntil(t, "nginx to proxy /readyz", 10*time.Second, func() bool {
		if !c.nginx.running() {
			t.Fatalf("nginx exited: %v\n%s", c.nginx.err, c.nginx.out.String())
		}
		status, _ := httpGet(c.proxyURL() + "/readyz")
		return status == 200
	})
	return c
}

// clusterNginxConf is deploy/nginx.conf with the changes deploy/cluster.sh
// makes: it listens on 127.0.0.1:port, and its temp files stay under its
// prefix.
func clusterNginxConf(t *testing.T, port int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	const listen = "\n        listen 8088;\n"
	if !strings.Contains(conf, listen) || !strings.Contains(conf, "\nhttp {\n") {
		t.Fatalf("deploy/nginx.conf no longer has %q and \"http {\": update cluster.sh and this test", strings.TrimSpace(listen))
	}
	conf = strings.Replace(conf, listen, "\n        listen 127.0.0.1:"+strconv.Itoa(port)+";\n", 1)
	return strings.Replace(conf, "\nhttp {\n", "\nhttp {\n"+
		"    client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n"+
		"    fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n    scgi_temp_path tmp/scgi;\n", 1)
}

// repoRoot is the module root (e2e's parent).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// startNode starts (or starts again) node i on its port and waits until
// its /readyz answers 200.
func (c *cluster) startNode(i int) {
	c.t.Helper()
	c.nodes[i] = testbin.Start(c.t, testbin.Options{Port: c.nodePorts[i], Env: c.nodeEnv, ReadyTimeout: 20 * time.Second})
	c.waitNodeReady(i, 20*time.Second)
}

func (c *cluster) waitNodeReady(i int, timeout time.Duration) {
	c.t.Helper()
	waitUntil(c.t, fmt.Sprintf("node %d /readyz 200", i), timeout, func() bool {
		status, _ := httpGet(c.nodeURL(i) + "/readyz")
		return status == 200
	})
}

func (c *cluster) nodeURL(i int) string { return "http://127.0.0.1:" + strconv.Itoa(c.nodePorts[i]) }
func (c *cluster) proxyURL() string     { return "http://127.0.0.1:" + strconv.Itoa(c.proxyPort) }

func (c *cluster) natsURLs() string {
	var u []string
	for _, n := range c.nats {
		u = append(u, n.url())
	}
	return strings.Join(u, ",")
}

// js connects to whichever NATS servers run, for inspecting JetStream.
func (c *cluster) js() (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(c.natsURLs(), nats.Timeout(time.Second), nats.MaxReconnects(0))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// waitJetStream waits until the NATS cluster answers JetStream requests
// (it has elected a metadata leader).
func (c *cluster) waitJetStream(timeout time.Duration) {
	c.t.Helper()
	waitUntil(c.t, "NATS JetStream to answer", timeout, func() bool {
		for _, n := range c.nats {
			if !n.p.running() {
				c.t.Fatalf("%s exited: %v\n%s", n.name, n.p.err, n.p.out.String())
			}
		}
		nc, js, err := c.js()
		if err != nil {
			return false
		}
		defer nc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err == nil
	})
}

// streamLeader is the name of the NATS server leading stream.
func (c *cluster) streamLeader(stream string) string {
	c.t.Helper()
	nc, js, err := c.js()
	if err != nil {
		c.t.Fatalf("connect to NATS: %v", err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		c.t.Fatalf("stream %s: %v", stream, err)
	}
	info := st.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		c.t.Fatalf("stream %s has no leader: %+v", stream, info.Cluster)
	}
	return info.Cluster.Leader
}

// nodeAlive fails t if a duplex node exited that the test did not stop.
func (c *cluster) requireNodesRunning() {
	c.t.Helper()
	for i, s := range c.nodes {
		select {
		case <-s.Done():
			c.t.Fatalf("node %d (port %d) exited:\n%s", i, s.Port, tail(s.Output(), 4096))
		default:
		}
	}
}

// waitUntil polls cond every 50 ms until it holds, failing t after timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %s", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// httpGet returns the status and body of GET url (0 when it failed).
func httpGet(url string) (int, string) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// api sends an authorized request to base (a node or the proxy) and
// returns the status and body; status 0 means the request failed.
func api(base, method, path string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// apiOK is api that requires 200 and decodes the answer into out.
func apiOK(t *testing.T, base, method, path string, body, out any) {
	t.Helper()
	status, b := api(base, method, path, body)
	if status != 200 {
		t.Fatalf("%s %s%s: %d %s", method, base, path, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, b, err)
		}
	}
}

// localChannels is what GET /api/channels of one node lists (channels
// with subscribers on that node); nil when the node does not answer.
func localChannels(base string) map[string]int {
	status, b := api(base, "GET", "/api/channels", nil)
	if status != 200 {
		return nil
	}
	var r struct {
		Channels []struct {
			Channel     string `json:"channel"`
			Subscribers int    `json:"subscribers"`
		} `json:"channels"`
	}
	if json.Unmarshal(b, &r) != nil {
		return nil
	}
	m := map[string]int{}
	for _, ch := range r.Channels {
		m[ch.Channel] = ch.Subscribers
	}
	return m
}

// acked is a publication the API acknowledged.
type acked struct {
	n      int
	offset uint64
	epoch  string
}

// publishN publishes {"n":n} to channel through the API of the node that
// target returns (it is asked again for every attempt). A publish that was
// not acknowledged (any answer but 200) is retried, up to attempts times,
// 100 ms apart; an acknowledged one never is. ok is false when every
// attempt failed; fails lists the failed answers.
func publishN(target func() string, channel string, n, attempts int) (a acked, ok bool, fails []string) {
	for range attempts {
		status, b := api(target(), "POST", "/api/publish", map[string]any{"channel": channel, "data": map[string]int{"n": n}})
		if status == 200 {
			var r protocol.PublishResult
			if err := json.Unmarshal(b, &r); err == nil && r.Offset > 0 && r.Epoch != "" {
				return acked{n: n, offset: r.Offset, epoch: r.Epoch}, true, fails
			}
		}
		fails = append(fails, fmt.Sprintf("%d %s", status, b))
		time.Sleep(100 * time.Millisecond)
	}
	return acked{}, false, fails
}

// dataN is the n of {"n":N} publication data (-1 if it has none).
func dataN(data json.RawMessage) int {
	var v struct {
		N *int `json:"n"`
	}
	if json.Unmarshal(data, &v) != nil || v.N == nil {
		return -1
	}
	return *v.N
}

// rtConn is a /realtime connection usable from any goroutine: commands
// are matched to replies by id, and hook (if set before the first read
// matters) sees every message in arrival order on the reader goroutine.
type rtConn struct {
	conn *websocket.Conn

	wmu    sync.Mutex
	nextID uint64

	mu       sync.Mutex
	changed  chan struct{}
	replies  map[uint64]protocol.ServerMessage
	pushes   []protocol.ServerMessage
	hook     func(protocol.ServerMessage)
	closeErr error
	readDone chan struct{}
}

// dialRT opens base's /realtime (base is http://host:port) with query.
func dialRT(base, query string, hook func(protocol.ServerMessage)) (*rtConn, error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/realtime"
	if query != "" {
		u += "?" + query
	}
	d := websocket.Dialer{HandshakeTimeout: clusterReplyTimeout}
	conn, resp, err := d.Dial(u, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", u, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	c := &rtConn{conn: conn, changed: make(chan struct{}), replies: map[uint64]protocol.ServerMessage{},
		hook: hook, readDone: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

// mustDialRT is dialRT that fails t, and closes the connection at cleanup.
func mustDialRT(t *testing.T, base, query string) *rtConn {
	t.Helper()
	c, err := dialRT(base, query, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

func (c *rtConn) readLoop() {
	defer close(c.readDone)
	for {
		_, data, err := c.conn.ReadMessage()
		c.mu.Lock()
		if err != nil {
			c.closeErr = err
			c.notifyLocked()
			c.mu.Unlock()
			return
		}
		protocol.SplitLines(data, func(line []byte) bool {
			m, err := protocol.DecodeServerMessage(line)
			if err != nil {
				c.closeErr = fmt.Errorf("undecodable server message %q: %v", line, err)
				return false
			}
			if c.hook != nil {
				c.hook(m)
			}
			if m.ID != 0 {
				c.replies[m.ID] = m
			} else {
				c.pushes = append(c.pushes, m)
			}
			return true
		})
		c.notifyLocked()
		c.mu.Unlock()
	}
}

func (c *rtConn) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait polls cond (with c.mu held) until it holds, the connection ends, or
// timeout passes.
func (c *rtConn) wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok, ended, ch := cond(), c.closeErr != nil, c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		if ended {
			return false
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// send writes cmd with a fresh id and returns the id.
func (c *rtConn) send(cmd protocol.Command) (uint64, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nextID++
	cmd.ID = c.nextID
	_ = c.conn.SetWriteDeadline(time.Now().Add(clusterReplyTimeout))
	return cmd.ID, c.conn.WriteMessage(websocket.TextMessage, protocol.EncodeCommand(cmd))
}

// call sends cmd and waits for its reply (which may be an error reply).
func (c *rtConn) call(cmd protocol.Command) (protocol.ServerMessage, error) {
	id, err := c.send(cmd)
	if err != nil {
		return protocol.ServerMessage{}, fmt.Errorf("send %s: %w", cmd.Op, err)
	}
	var m protocol.ServerMessage
	if !c.wait(clusterReplyTimeout, func() bool {
		var ok bool
		m, ok = c.replies[id]
		return ok
	}) {
		return m, fmt.Errorf("no reply to %s %s (connection: %v)", cmd.Op, cmd.Channel, c.err())
	}
	return m, nil
}

// ok calls cmd, requires a result and decodes it into out.
func (c *rtConn) ok(t *testing.T, cmd protocol.Command, out any) {
	t.Helper()
	m, err := c.call(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if m.Error != nil {
		t.Fatalf("%s %s: error %s: %s", cmd.Op, cmd.Channel, m.Error.Code, m.Error.Message)
	}
	if out != nil {
		if err := json.Unmarshal(m.Result, out); err != nil {
			t.Fatalf("%s result %s: %v", cmd.Op, m.Result, err)
		}
	}
}

func (c *rtConn) subscribe(t *testing.T, channel string) protocol.SubscribeResult {
	t.Helper()
	var r protocol.SubscribeResult
	c.ok(t, protocol.Command{Op: protocol.OpSubscribe, Channel: channel}, &r)
	return r
}

// pubs is every publication pushed on channel so far, in arrival order.
func (c *rtConn) pubs(channel string) []protocol.ServerMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []protocol.ServerMessage
	for _, m := range c.pushes {
		if m.Channel == channel && m.Join == nil && m.Leave == nil && m.Offset > 0 {
			out = append(out, m)
		}
	}
	return out
}

// waitPubs waits until n publications of channel have arrived.
func (c *rtConn) waitPubs(t *testing.T, what, channel string, n int, timeout time.Duration) []protocol.ServerMessage {
	t.Helper()
	if !c.wait(timeout, func() bool {
		k := 0
		for _, m := range c.pushes {
			if m.Channel == channel && m.Join == nil && m.Leave == nil && m.Offset > 0 {
				k++
			}
		}
		return k >= n
	}) {
		t.Fatalf("%s: %d publications on %s, want %d (connection: %v)", what, len(c.pubs(channel)), channel, n, c.err())
	}
	return c.pubs(channel)
}

func (c *rtConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

func (c *rtConn) close() {
	_ = c.conn.Close()
	<-c.readDone
}

// follower is a client that stays subscribed to channel through
// disconnects, like the browser client: it connects through base(),
// subscribes (with recover from its last position after the first time),
// and on a lost connection reconnects, every 100 ms, while its gate is
// open. Every publication it receives, live or recovered, is recorded;
// what the server promises (recovered:true, one epoch, each offset once
// and in order) is checked as it goes, and violations are collected.
type follower struct {
	name    string
	channel string
	base    func() string

	mu         sync.Mutex
	changed    chan struct{}
	gate       bool // reconnects allowed
	conn       *rtConn
	connects   int
	epoch      string
	last       uint64
	got        []recvd
	recoveries []recoveryResult
	problems   []string

	stop chan struct{}
	done chan struct{}
}

type recvd struct {
	offset    uint64
	n         int
	recovered bool
}

type recoveryResult struct {
	from, to  uint64 // the position asked for; the subscribe result's offset
	recovered bool
	count     int
}

// whereChannel is the push: channel a follower also subscribes to, so
// that /api/channels of each node tells where it is connected.
func (f *follower) whereChannel() string { return "push:where-" + f.name }

// startFollower starts a follower and waits for its first subscription.
func startFollower(t *testing.T, name, channel string, base func() string) *follower {
	t.Helper()
	f := &follower{name: name, channel: channel, base: base, changed: make(chan struct{}), gate: true,
		stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	t.Cleanup(f.close)
	if !f.waitFor(10*time.Second, func() bool { return f.connects >= 1 && f.conn != nil }) {
		t.Fatalf("%s: not subscribed within 10s: %v", name, f.problemList())
	}
	return f
}

func (f *follower) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *follower) problem(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problemLocked(format, args...)
}

func (f *follower) problemLocked(format string, args ...any) {
	if len(f.problems) < 20 {
		f.problems = append(f.problems, fmt.Sprintf(format, args...))
	}
	f.notifyLocked()
}

// record handles a publication (under f.mu).
func (f *follower) recordLocked(off uint64, data json.RawMessage, recovered bool) {
	if off <= f.last {
		f.problemLocked("offset %d again (or out of order) after %d", off, f.last)
		return
	}
	if f.last != 0 && off != f.last+1 {
		f.problemLocked("gap: offset %d after %d", off, f.last)
	}
	f.last = off
	f.got = append(f.got, recvd{offset: off, n: dataN(data), recovered: recovered})
	f.notifyLocked()
}

func (f *follower) run() {
	defer close(f.done)
	for attempt := 0; ; attempt++ {
		select {
		case <-f.stop:
			return
		default:
		}
		f.mu.Lock()
		open := f.gate
		ch := f.changed
		f.mu.Unlock()
		if !open {
			select {
			case <-f.stop:
				return
			case <-ch:
			}
			continue
		}
		if err := f.session(); err != nil {
			f.mu.Lock()
			f.conn = nil
			f.notifyLocked()
			f.mu.Unlock()
			select {
			case <-f.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// session runs one connection until it ends.
func (f *follower) session() error {
	var subID uint64
	var subMu sync.Mutex
	var asked uint64
	var c *rtConn
	hook := func(m protocol.ServerMessage) {
		subMu.Lock()
		id := subID
		subMu.Unlock()
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case id != 0 && m.ID == id:
			if m.Error != nil {
				f.problemLocked("subscribe %s: %s %s", f.channel, m.Error.Code, m.Error.Message)
				return
			}
			var r protocol.SubscribeResult
			if err := json.Unmarshal(m.Result, &r); err != nil {
				f.problemLocked("subscribe result %s: %v", m.Result, err)
				return
			}
			if f.epoch == "" {
				f.epoch = r.Epoch
				f.last = r.Offset
			} else {
				if r.Epoch != f.epoch {
					f.problemLocked("epoch changed from %s to %s", f.epoch, r.Epoch)
				}
				rec := r.Recovered != nil && *r.Recovered
				f.recoveries = append(f.recoveries, recoveryResult{from: asked, to: r.Offset, recovered: rec, count: len(r.Publications)})
				if !rec {
					f.problemLocked("recover from offset %d: recovered=%v (result %s)", asked, r.Recovered, m.Result)
				}
				for _, p := range r.Publications {
					f.recordLocked(p.Offset, p.Data, true)
				}
			}
			f.connects++
			f.conn = c
			f.notifyLocked()
		case m.ID == 0 && m.Channel == f.channel && m.Join == nil && m.Leave == nil && m.Offset > 0:
			f.recordLocked(m.Offset, m.Data, false)
		}
	}
	c, err := dialRT(f.base(), "name="+f.name, hook)
	if err != nil {
		return err
	}
	defer c.close()
	var where protocol.SubscribeResult
	if m, err := c.call(protocol.Command{Op: protocol.OpSubscribe, Channel: f.whereChannel()}); err != nil || m.Error != nil {
		return fmt.Errorf("subscribe %s: %v %v", f.whereChannel(), err, m.Error)
	} else {
		_ = json.Unmarshal(m.Result, &where)
	}
	cmd := protocol.Command{Op: protocol.OpSubscribe, Channel: f.channel}
	f.mu.Lock()
	if f.epoch != "" {
		cmd.Recover = &protocol.Position{Offset: f.last, Epoch: f.epoch}
		asked = f.last
	}
	f.mu.Unlock()
	// The hook must know the id before the reply can arrive: hold subMu
	// across the send so the reader waits for it.
	subMu.Lock()
	id, err := c.send(cmd)
	subID = id
	subMu.Unlock()
	if err != nil {
		return err
	}
	select {
	case <-c.readDone:
	case <-f.stop:
	}
	return c.err()
}

// waitFor waits until cond (called with f.mu held) holds.
func (f *follower) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// waitOffset waits until the follower has received offset off.
func (f *follower) waitOffset(t *testing.T, off uint64, timeout time.Duration) {
	t.Helper()
	if !f.waitFor(timeout, func() bool { return f.last >= off }) {
		f.mu.Lock()
		defer f.mu.Unlock()
		t.Fatalf("%s: reached offset %d, want %d within %s (connects %d, problems %v)", f.name, f.last, off, timeout, f.connects, f.problems)
	}
}

// setGate opens or closes the follower's reconnects.
func (f *follower) setGate(open bool) {
	f.mu.Lock()
	f.gate = open
	f.notifyLocked()
	f.mu.Unlock()
}

// disconnected reports whether its connection is gone.
func (f *follower) disconnected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn == nil
}

func (f *follower) problemList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

func (f *follower) snapshot() (got []recvd, recoveries []recoveryResult, connects int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recvd(nil), f.got...), append([]recoveryResult(nil), f.recoveries...), f.connects
}

// node is the index of the node whose /api/channels lists the follower,
// or -1.
func (f *follower) node(c *cluster) int {
	for i := range c.nodes {
		if localChannels(c.nodeURL(i))[f.whereChannel()] > 0 {
			return i
		}
	}
	return -1
}

func (f *follower) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.mu.Lock()
	c := f.conn
	f.mu.Unlock()
	if c != nil {
		_ = c.conn.Close()
	}
	select {
	case <-f.done:
	case <-time.After(10 * time.Second):
	}
}

// checkFollower requires that f saw every acknowledged publication exactly
// once with its data, and broke none of the server's promises.
func checkFollower(t *testing.T, f *follower, acks []acked) {
	t.Helper()
	if p := f.problemList(); len(p) > 0 {
		t.Errorf("%s: %s", f.name, strings.Join(p, "; "))
	}
	got, _, _ := f.snapshot()
	byOffset := map[uint64]recvd{}
	for _, r := range got {
		if _, dup := byOffset[r.offset]; dup {
			t.Errorf("%s: offset %d received twice", f.name, r.offset)
		}
		byOffset[r.offset] = r
	}
	for _, a := range acks {
		r, ok := byOffset[a.offset]
		switch {
		case !ok:
			t.Errorf("%s: acknowledged publication n=%d offset %d never arrived", f.name, a.n, a.offset)
		case r.n != a.n:
			t.Errorf("%s: offset %d carried n=%d, the API acknowledged n=%d there", f.name, a.offset, r.n, a.n)
		}
	}
}
