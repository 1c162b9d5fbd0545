// Package natstest runs a real NATS server with JetStream for tests: the
// embedded nats-server/v2 by default, or the binary named by
// DUPLEX_TEST_NATS_SERVER (for example Debian's /usr/sbin/nats-server 2.9)
// to check compatibility with older servers.
//
// A Server is driven by one test goroutine; its methods are not safe for
// concurrent use.
package natstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/duplex/duplex/internal/testbin"
)

// Server is a NATS server with JetStream for one test: embedded
// (nats-server/v2, the module's version) by default, or the binary named
// by DUPLEX_TEST_NATS_SERVER (e.g. Debian's /usr/sbin/nats-server 2.9) to
// check compatibility with older servers. Its store survives Restart.
type Server struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
	cmd  *exec.Cmd
	bin  string // the binary of a StartProcess server
}

// Start runs a server on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartOn(t, FreePort(t))
}

// StartOn runs a server on the given loopback port until the test ends.
func StartOn(t testing.TB, port int) *Server {
	t.Helper()
	n := &Server{t: t, dir: t.TempDir(), port: port}
	n.start()
	t.Cleanup(n.Shutdown)
	return n
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// URL is the client URL of the server.
func (n *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// StartProcess runs a nats-server binary on a free loopback port until the
// test ends, for tests that need a real process: Freeze and Thaw. The
// binary is DUPLEX_TEST_NATS_SERVER, else testbin.NATSServer's (NATS_SERVER,
// else built from the module graph, else Debian's as a fallback). Without
// one the test is skipped, or fails when CI=true.
func StartProcess(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("DUPLEX_TEST_NATS_SERVER")
	if bin == "" {
		bin = testbin.NATSServer(t)
	}
	if bin == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("no nats-server: the module build failed and none is on PATH or in /usr/sbin; CI must install it: apt-get install nats-server")
		}
		t.Skip("no nats-server: the module build failed and none is on PATH or in /usr/sbin: install it with apt-get install nats-server (with CI=true this fails)")
	}
	n := &Server{t: t, dir: t.TempDir(), port: FreePort(t), bin: bin}
	n.start()
	t.Cleanup(n.Shutdown)
	return n
}

func (n *Server) signal(sig os.Signal) {
	n.t.Helper()
	if n.cmd == nil {
		n.t.Fatalf("natstest: %v needs a server process (StartProcess)", sig)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("natstest: %v: %v", sig, err)
	}
}

func (n *Server) start() {
	n.t.Helper()
	bin := n.bin
	if bin == "" {
		bin = os.Getenv("DUPLEX_TEST_NATS_SERVER")
	}
	if bin != "" {
		n.cmd = exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-js", "-sd", n.dir)
		// The kernel kills the server if the test process dies.
		n.cmd.SysProcAttr = testbin.ChildAttr()
		if err := n.cmd.Start(); err != nil {
			n.t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.port), 100*time.Millisecond)
			if err == nil {
				c.Close()
				time.Sleep(200 * time.Millisecond) // JetStream starts after the listener
				return
			}
			if time.Now().After(deadline) {
				n.t.Fatalf("nats-server did not start: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	var err error
	for attempt := 0; ; attempt++ {
		n.srv, err = server.NewServer(&server.Options{
			Host: "127.0.0.1", Port: n.port, JetStream: true, StoreDir: n.dir,
			NoLog: true, NoSigs: true,
		})
		if err != nil {
			n.t.Fatal(err)
		}
		n.srv.Start()
		if n.srv.ReadyForConnections(5 * time.Second) {
			return
		}
		n.srv.Shutdown()
		if attempt == 20 {
			n.t.Fatal("embedded nats-server did not start")
		}
		time.Sleep(100 * time.Millisecond) // port still in use after a restart
	}
}

// Shutdown stops the server (idempotent).
func (n *Server) Shutdown() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
	if n.cmd != nil {
		_ = n.cmd.Process.Kill()
		_ = n.cmd.Wait()
		n.cmd = nil
	}
}

// Restart stops the server and starts it again on the same port and store.
func (n *Server) Restart() {
	n.t.Helper()
	n.Shutdown()
	n.start()
}
