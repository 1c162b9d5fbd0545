package testbin

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Process is a child process a test owns (nats-server, nginx): killed with
// the test process (ChildAttr's Pdeathsig) and stopped when the test ends,
// its output kept and logged if the test failed.
//
// Concurrency: its methods may be called from any goroutine; Stop must not
// run twice at once.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  SyncBuffer
	done chan struct{}
	code int
	err  error
}

// processStopTimeout bounds a stop at cleanup before the process is killed.
const processStopTimeout = 10 * time.Second

// StartProcess runs path with args until the test ends (SIGTERM then, and
// SIGKILL after processStopTimeout).
func StartProcess(t testing.TB, name, path string, args ...string) *Process {
	t.Helper()
	p := &Process{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = ChildAttr()
	if err := startAndReap(p.cmd, p.done, &p.code, &p.err); err != nil {
		t.Fatalf("testbin: start %s: %v", name, err)
	}
	t.Cleanup(func() {
		p.Stop(syscall.SIGTERM, processStopTimeout)
		if t.Failed() {
			t.Logf("--- output of %s (last 4 KiB) ---\n%s", name, Tail(p.out.String(), 4096))
		}
	})
	return p
}

// Stop sends sig and waits up to timeout for the exit, then kills. A
// process that has exited is left alone.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) {
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

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is how the process ended (nil while it runs, or after exit 0).
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Output is what the process wrote so far, stdout and stderr together.
func (p *Process) Output() string { return p.out.String() }

// Tail is the last n bytes of s, marked as cut when it was.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Tool returns the path of a program a multi-process test needs: for
// nats-server NATSServer's (NATS_SERVER, else built from the module
// graph, Debian's only if that build fails), for anything else the one
// on PATH, else in /usr/sbin. When it is missing the test is skipped, or
// fails when CI=true (CI must install it: apt-get install <name>).
func Tool(t testing.TB, name string) string {
	t.Helper()
	if name == "nats-server" {
		if p := NATSServer(t); p != "" {
			return p
		}
	} else if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; isExecutable(p) {
		return p
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s not found (PATH, /usr/sbin); CI must install it: apt-get install %s", name, name)
	}
	t.Skipf("%s not found (PATH, /usr/sbin): skipping a multi-process test; install it with apt-get install %s (with CI=true this fails)", name, name)
	return ""
}
