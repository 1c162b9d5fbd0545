package e2e

// Helpers of cluster_test.go: the topology of deploy/compose.yaml and
// deploy/cluster.sh (three nats-server with JetStream, three duplex nodes on
// BROKER=nats, nginx with deploy/nginx.conf) started as processes on
// loopback. The API helpers are in cluster_api_test.go, the follower (a
// client that stays subscribed through reconnects) in
// cluster_follower_test.go.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/duplex/duplex/internal/testbin"
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
