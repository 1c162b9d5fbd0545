// Package testbin runs the real duplex binary in tests: it builds the
// binary once per test process, starts it on a free port with a chosen
// environment (and optionally as another user), waits until /healthz
// answers, and stops it with SIGTERM, reporting the exit code.
//
// Every process started here is stopped by t.Cleanup, killed if it does
// not exit in time, and killed by the kernel if the test process dies
// (Pdeathsig), so no test leaves a server behind.
//
// A package that uses Binary, Start or Run should call Main from its
// TestMain, so the build directory is removed when its tests end:
//
//	func TestMain(m *testing.M) { testbin.Main(m) }
package testbin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Version is the version stamped into the binary that Binary builds, with
// -ldflags "-X main.version=...", as the Dockerfile does. Tests can compare
// it with what /healthz and "duplex version" report.
const Version = "testbin-e2e"

// Defaults for the bounded waits; each can be changed per call in Options.
const (
	DefaultReadyTimeout = 10 * time.Second
	DefaultStopTimeout  = 15 * time.Second
	DefaultRunTimeout   = 30 * time.Second
	buildTimeout        = 5 * time.Minute
)

// build is the binary shared by every test of the process.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary returns the path of the duplex binary, building it on the first
// call of the test process with the same command as the Dockerfile:
//
//	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=<Version>" -o <dir>/duplex <module root>
//
// The module root is found with "go env GOMOD". A failed build fails t
// (and every later caller) with the compiler output.
//
// Concurrency: safe to call from parallel tests; the build runs once and
// the others wait for it. The returned file must not be modified.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.dir, build.path, build.err = buildBinary() })
	if build.err != nil {
		t.Fatalf("testbin: %v", build.err)
	}
	return build.path
}

func buildBinary() (dir, path string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "duplex-testbin-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "duplex")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X main.version="+Version, "-o", path, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("go build in %s: %w\n%s", cmd.Dir, err, out)
	}
	return dir, path, nil
}

// moduleRoot is the directory of the module's go.mod ("go env GOMOD").
func moduleRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(mod), nil
}

// Main builds the binary, runs the tests of a package, and then removes
// the build. Building first keeps the (possibly long, on a cold cache)
// build out of the first test's time; a build error fails every test that
// calls Binary. Call it from TestMain; it does not return.
func Main(m *testing.M) {
	build.once.Do(func() { build.dir, build.path, build.err = buildBinary() })
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
// Another process may take it before it is used; with the kernel's
// ephemeral port rotation that is rare enough for tests.
//
// Concurrency: safe to call from any goroutine.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testbin: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreePorts returns n different free TCP ports on 127.0.0.1. It holds
// every listener open until it has all n, so the kernel cannot hand the
// same port out twice, as n calls of FreePort may (a closed listener's
// port is free again at once). Safe from any goroutine.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testbin: free port: %v", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Options says how to run the binary. The zero value runs Binary(t) with
// an empty environment in the current directory as the current user.
type Options struct {
	// Binary is the executable to run; empty means Binary(t).
	Binary string
	// Args are the command-line arguments after the program name.
	Args []string
	// Env is the whole environment of the process: nothing is inherited
	// but InheritedEnv. Start adds PORT=<Port> after it, so a PORT given
	// here is replaced.
	Env []string
	// Dir is the working directory; empty means the test's own.
	Dir string
	// Credential, if set, runs the process as that uid/gid (the test
	// process must be root to switch user; Linux only).
	Credential *Credential
	// Port is the port Start gives the server; 0 means FreePort. Run
	// ignores it.
	Port int
	// ReadyTimeout bounds Start's wait for /healthz (default 10s).
	ReadyTimeout time.Duration
	// StopTimeout bounds Stop's wait after SIGTERM before it kills the
	// process (default 15s).
	StopTimeout time.Duration
	// RunTimeout bounds Run; the process is killed after it (default 30s).
	RunTimeout time.Duration
}

// InheritedEnv is what Start passes on from the test process's own
// environment, after opts.Env: WS_POLLER, when set, so that
// `WS_POLLER=off go test ./...` runs every server on the goroutine-per-
// connection path that systems other than Linux have.
func InheritedEnv() []string {
	if v, ok := os.LookupEnv("WS_POLLER"); ok {
		return []string{"WS_POLLER=" + v}
	}
	return nil
}

// Server is one running duplex process started by Start.
//
// Concurrency: every method may be called from any goroutine, also while
// another is running. Stop and Kill act once; later calls return the same
// exit code.
type Server struct {
	// Port is the TCP port the server listens on.
	Port int
	// URL is http://127.0.0.1:<Port>, without a trailing slash.
	URL string

	t           testing.TB
	cmd         *exec.Cmd
	out         *SyncBuffer
	stopTimeout time.Duration

	done     chan struct{} // closed once the process has exited and been reaped
	exitCode int           // valid after done is closed
	waitErr  error         // valid after done is closed

	stopOnce sync.Once
	signaled atomic.Bool // a signal was sent, by the test or by Stop
	killed   atomic.Bool // Stop had to kill the process
}

// Start runs the server with opts and returns once GET /healthz on
// 127.0.0.1:<Port> has answered 200 with {"status":"ok"} and the process
// is still running. It fails t, with the server's output, if the process
// exits first or does not become ready within opts.ReadyTimeout. The
// server must listen on 127.0.0.1 (HOST unset, 0.0.0.0 or 127.0.0.1).
//
// t.Cleanup stops the server with SIGTERM (see Stop) if it still runs, and
// fails the test if it then does not exit 0 in time, or if it exited
// before with no signal sent. If the test failed, the server's output is
// logged.
//
// Concurrency: safe to call from parallel tests; each call starts its own
// process.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	port := opts.Port
	if port == 0 {
		port = FreePort(t)
	}
	opts.Env = append(append(append([]string(nil), opts.Env...), InheritedEnv()...), "PORT="+strconv.Itoa(port))
	s := &Server{
		Port:        port,
		URL:         "http://127.0.0.1:" + strconv.Itoa(port),
		t:           t,
		out:         &SyncBuffer{},
		stopTimeout: orDefault(opts.StopTimeout, DefaultStopTimeout),
		done:        make(chan struct{}),
	}
	s.cmd = command(t, opts, s.out)
	if err := startAndReap(s.cmd, s.done, &s.exitCode, &s.waitErr); err != nil {
		t.Fatalf("testbin: start %s: %v", s.cmd.Path, err)
	}
	t.Cleanup(func() {
		select {
		case <-s.done:
			// Start has already failed the test if it ended before it was
			// ready; an exit later that no signal asked for is a crash.
			if !s.signaled.Load() && !t.Failed() {
				t.Errorf("testbin: server on port %d exited by itself with code %d", s.Port, s.exitCode)
			}
		default:
			code := s.Stop()
			if s.killed.Load() {
				t.Errorf("testbin: server on port %d ignored SIGTERM for %s and was killed", s.Port, s.stopTimeout)
			} else if code != 0 {
				t.Errorf("testbin: server on port %d exited %d after SIGTERM", s.Port, code)
			}
		}
		if t.Failed() {
			t.Logf("testbin: output of server on port %d:\n%s", s.Port, s.Output())
		}
	})
	if err := s.waitReady(orDefault(opts.ReadyTimeout, DefaultReadyTimeout)); err != nil {
		t.Fatalf("testbin: server on port %d: %v\n--- output ---\n%s", s.Port, err, s.Output())
	}
	return s
}

// waitReady polls /healthz until it answers 200 {"status":"ok"}.
func (s *Server) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-s.done:
			return fmt.Errorf("exited with code %d before it was ready (last probe: %v)", s.exitCode, last)
		default:
		}
		last = probe(client, s.URL+"/healthz")
		if last == nil {
			// Make sure it was our process that answered, not one that
			// took the port first.
			select {
			case <-s.done:
				return fmt.Errorf("exited with code %d, yet /healthz answered: port taken by another process?", s.exitCode)
			default:
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/healthz not ready after %s: %v", timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func probe(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %s, body not JSON: %w", url, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || body.Status != "ok" {
		return fmt.Errorf("%s: %s, status %q", url, resp.Status, body.Status)
	}
	return nil
}

// PID is the process id of the server.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Output is everything the process has written to stdout and stderr so far.
func (s *Server) Output() string { return s.out.String() }

// Done is closed when the process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Signal sends sig to the process without waiting. Sending to a process
// that has exited is not an error. After a Signal, the cleanup no longer
// checks how the process ended (the test does, with Wait); it still kills
// it if it runs.
func (s *Server) Signal(sig os.Signal) error {
	s.signaled.Store(true)
	select {
	case <-s.done:
		return nil
	default:
	}
	err := s.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 if a signal ended it); exited is false if it is still running.
func (s *Server) Wait(timeout time.Duration) (code int, exited bool) {
	select {
	case <-s.done:
		return s.exitCode, true
	default:
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-s.done:
		return s.exitCode, true
	case <-timer.C:
		return 0, false
	}
}

// Stop sends SIGTERM and waits for the process to exit, for at most the
// StopTimeout of its Options; after that it kills it. It returns the exit
// code: 0 after a clean shutdown, -1 if a signal ended the process (also
// when it had to be killed; see Killed).
func (s *Server) Stop() int {
	s.stopOnce.Do(func() {
		if err := s.Signal(syscall.SIGTERM); err != nil {
			s.t.Errorf("testbin: SIGTERM to server on port %d: %v", s.Port, err)
		}
		if _, ok := s.Wait(s.stopTimeout); !ok {
			s.kill()
		}
	})
	<-s.done
	return s.exitCode
}

// Killed reports whether Stop had to kill the process because it did not
// exit within the stop timeout after SIGTERM.
func (s *Server) Killed() bool { return s.killed.Load() }

func (s *Server) kill() {
	s.killed.Store(true)
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Result is how a process run by Run ended.
type Result struct {
	// Code is the exit code, -1 if a signal ended the process.
	Code int
	// Output is its stdout and stderr, interleaved.
	Output string
}

// Run runs the binary with opts (for a subcommand such as "healthcheck", or
// a configuration expected to be refused) and waits for it to exit. If it
// is still running after opts.RunTimeout it is killed and t fails.
//
// Concurrency: safe to call from parallel tests.
func Run(t testing.TB, opts Options) Result {
	t.Helper()
	out := &SyncBuffer{}
	cmd := command(t, opts, out)
	done := make(chan struct{})
	var code int
	var waitErr error
	if err := startAndReap(cmd, done, &code, &waitErr); err != nil {
		t.Fatalf("testbin: start %s: %v", cmd.Path, err)
	}
	timeout := orDefault(opts.RunTimeout, DefaultRunTimeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("testbin: %s %q still running after %s, killed\n%s", cmd.Path, opts.Args, timeout, out.String())
	}
	if code == -1 && waitErr != nil {
		t.Logf("testbin: %s %q: %v", cmd.Path, opts.Args, waitErr)
	}
	return Result{Code: code, Output: out.String()}
}

func command(t testing.TB, opts Options, out *SyncBuffer) *exec.Cmd {
	t.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = Binary(t)
	}
	cmd := exec.Command(bin, opts.Args...)
	cmd.Env = append([]string{}, opts.Env...) // non-nil: inherit nothing
	cmd.Dir = opts.Dir
	cmd.Stdout = out
	cmd.Stderr = out
	attr, err := sysProcAttr(opts.Credential)
	if err != nil {
		t.Fatalf("testbin: %v", err)
	}
	cmd.SysProcAttr = attr
	return cmd
}

// Credential is a user and group to run the binary as.
type Credential struct{ Uid, Gid uint32 }

// startAndReap starts cmd and waits for it on a goroutine locked to its OS
// thread: Pdeathsig fires when the thread that forked the child exits, so
// that thread must live as long as the child (go.dev/issue/27505).
// *code and *waitErr are written before done is closed.
func startAndReap(cmd *exec.Cmd, done chan struct{}, code *int, waitErr *error) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		*waitErr = cmd.Wait()
		*code = cmd.ProcessState.ExitCode()
		close(done)
	}()
	return <-started
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads, for
// collecting a child process's output while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ChildAttr is what a test gives any other process it starts (a NATS
// server, nginx): on Linux the kernel kills it if the test process dies.
func ChildAttr() *syscall.SysProcAttr {
	attr, _ := sysProcAttr(nil)
	return attr
}
