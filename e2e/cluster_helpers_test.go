package e2e

// Helpers of cluster_test.go: the topology of deploy/compose.yaml and
// deploy/cluster.sh (three nats-server with JetStream, three duplex nodes on
// BROKER=nats, nginx with deploy/nginx.conf) started as processes on
// loopback. The processes and the NATS cluster are internal/testbin's
// (StartProcess, StartNATSCluster); this file assembles them with the
// duplex nodes and deploy/nginx.conf. The API helpers are in cluster_api_test.go, the follower (a
// client that stays subscribed through reconnects) in
// cluster_follower_test.go.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/testbin"
)

// The secrets every node of a test cluster shares.
const (
	clusterAPIKey      = "test-key-e2e-cluster"
	clusterTokenSecret = "e2e-cluster-token-secret-0123456789abcdef"
)

// clusterReplyTimeout bounds one command round trip in cluster tests.
const clusterReplyTimeout = 5 * time.Second

// cluster is the whole topology.
type cluster struct {
	t         *testing.T
	dir       string
	nats      *testbin.NATSCluster
	nodePorts [3]int
	nodes     [3]*testbin.Server
	nodeEnv   []string
	nginx     *testbin.Process
	proxyPort int
}

// startCluster starts three NATS servers (and waits for JetStream), three
// duplex nodes one after another (each ready before the next: nodes
// starting together race to create the streams), and nginx. extraEnv is
// added to every node's environment.
func startCluster(t *testing.T, extraEnv ...string) *cluster {
	t.Helper()
	nginxBin := testbin.Tool(t, "nginx")
	c := &cluster{t: t, dir: t.TempDir(), nats: testbin.StartNATSCluster(t, 3)}

	c.nodeEnv = append([]string{"HOST=127.0.0.1", "LOG_FORMAT=text", "SHUTDOWN_TIMEOUT=5s",
		"BROKER=nats", "NATS_URL=" + c.nats.URLs(), "NATS_REPLICAS=3", "NATS_STARTUP=wait",
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
	c.nginx = testbin.StartProcess(t, "nginx", nginxBin, "-p", ndir+"/", "-c", "nginx.conf", "-g", "daemon off;")
	waitUntil(t, "nginx to proxy /readyz", 10*time.Second, func() bool {
		if !c.nginx.Running() {
			t.Fatalf("nginx exited: %v\n%s", c.nginx.Err(), c.nginx.Output())
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
	// Its access log says which node answered each request (proxyLog).
	const noLog = "\n    access_log off;\n"
	if !strings.Contains(conf, noLog) {
		t.Fatalf("deploy/nginx.conf no longer has %q: update this test", strings.TrimSpace(noLog))
	}
	conf = strings.Replace(conf, noLog, "\n    log_format upstreams '$request_method $uri $status $upstream_addr';\n"+
		"    access_log "+proxyLogFile+" upstreams;\n", 1)
	return strings.Replace(conf, "\nhttp {\n", "\nhttp {\n"+
		"    client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n"+
		"    fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n    scgi_temp_path tmp/scgi;\n", 1)
}

// proxyLogFile is nginx's access log, under its prefix: one line per
// finished request, "<method> <path> <status> <upstream address>".
const proxyLogFile = "access.log"

// proxyLog is what nginx's access log holds so far.
func (c *cluster) proxyLog() string {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "nginx", proxyLogFile))
	if err != nil && !os.IsNotExist(err) {
		c.t.Fatal(err)
	}
	return string(b)
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

// nodeAlive fails t if a duplex node exited that the test did not stop.
func (c *cluster) requireNodesRunning() {
	c.t.Helper()
	for i, s := range c.nodes {
		select {
		case <-s.Done():
			c.t.Fatalf("node %d (port %d) exited:\n%s", i, s.Port, testbin.Tail(s.Output(), 4096))
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
