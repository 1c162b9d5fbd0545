package testbin

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSCluster is a cluster of nats-server processes with JetStream on
// loopback, as deploy/cluster.sh runs it: each member can be stopped and
// started again on the same ports and store.
//
// Concurrency: Members' Start and Stop must not run at the same time as
// each other or as WaitJetStream; the rest may be called from any
// goroutine.
type NATSCluster struct {
	t       testing.TB
	Members []*NATSMember
}

// NATSMember is one server of a NATSCluster.
type NATSMember struct {
	Name        string
	Port, CPort int // client and cluster ports
	bin, dir    string
	routes      []string
	t           testing.TB
	// Proc is the running process (the last one, after a restart).
	Proc *Process
}

// StartNATSCluster starts n servers (Tool's nats-server) routed to each
// other, and waits until JetStream answers.
func StartNATSCluster(t testing.TB, n int) *NATSCluster {
	t.Helper()
	bin := Tool(t, "nats-server")
	dir := t.TempDir()
	c := &NATSCluster{t: t}
	for i := range n {
		name := "nats" + strconv.Itoa(i+1)
		c.Members = append(c.Members, &NATSMember{Name: name, Port: FreePort(t), CPort: FreePort(t),
			bin: bin, dir: filepath.Join(dir, name), t: t})
	}
	for i, m := range c.Members {
		for j, o := range c.Members {
			if i != j {
				m.routes = append(m.routes, "nats://127.0.0.1:"+strconv.Itoa(o.CPort))
			}
		}
	}
	for _, m := range c.Members {
		m.Start()
	}
	c.WaitJetStream(20 * time.Second)
	return c
}

// URL is the member's client URL.
func (m *NATSMember) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(m.Port) }

// Start runs (or runs again) the member as deploy/cluster.sh does.
func (m *NATSMember) Start() {
	m.t.Helper()
	m.Proc = StartProcess(m.t, m.Name, m.bin, "-n", m.Name, "-a", "127.0.0.1", "-p", strconv.Itoa(m.Port),
		"-js", "-sd", m.dir, "--cluster_name", "duplex",
		"--cluster", "nats://127.0.0.1:"+strconv.Itoa(m.CPort),
		"--routes", strings.Join(m.routes, ","))
}

// Stop sends sig (SIGKILL to crash it) and waits up to timeout.
func (m *NATSMember) Stop(sig syscall.Signal, timeout time.Duration) { m.Proc.Stop(sig, timeout) }

// URLs are every member's client URL, comma-separated (NATS_URL).
func (c *NATSCluster) URLs() string {
	var u []string
	for _, m := range c.Members {
		u = append(u, m.URL())
	}
	return strings.Join(u, ",")
}

// JetStream connects to whichever members run, for inspecting JetStream.
func (c *NATSCluster) JetStream() (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(c.URLs(), nats.Timeout(time.Second), nats.MaxReconnects(0))
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

// WaitJetStream waits until the cluster answers JetStream requests (it
// has elected a metadata leader); a member that exited fails the test.
func (c *NATSCluster) WaitJetStream(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range c.Members {
			if !m.Proc.Running() {
				c.t.Fatalf("%s exited: %v\n%s", m.Name, m.Proc.Err(), m.Proc.Output())
			}
		}
		if c.jetStreamAnswers() {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("NATS JetStream did not answer within %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *NATSCluster) jetStreamAnswers() bool {
	nc, js, err := c.JetStream()
	if err != nil {
		return false
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err == nil
}

// StreamLeader is the name of the member leading stream.
func (c *NATSCluster) StreamLeader(stream string) string {
	c.t.Helper()
	nc, js, err := c.JetStream()
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
