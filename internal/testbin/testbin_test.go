package testbin_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/duplex/duplex/internal/testbin"
)

// helperEnv makes the test binary act as a stand-in server, so the paths
// the real server never takes (ignoring SIGTERM, dying at start) can be
// tested.
const helperEnv = "TESTBIN_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		testbin.Main(m)
	case "ignore-term":
		// Answers /healthz like duplex but never exits on SIGTERM.
		signal.Ignore(syscall.SIGTERM)
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, `{"status":"ok"}`)
		})
		fmt.Println("helper listening")
		err := http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
		fmt.Println(err)
		os.Exit(1)
	case "die":
		fmt.Println("helper: bad config")
		os.Exit(3)
	default:
		os.Exit(100)
	}
}

func TestStartServesAndStopExitsZero(t *testing.T) {
	s := testbin.Start(t, testbin.Options{Env: []string{"HOST=127.0.0.1", "LOG_FORMAT=text"}})

	resp, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Status, Version string }
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || h.Status != "ok" || h.Version != testbin.Version {
		t.Fatalf("/healthz = %+v, %v; want status ok, version %q (the -X main.version stamp)", h, err, testbin.Version)
	}
	if !strings.Contains(s.Output(), "listening") {
		t.Errorf("output does not show the start-up log:\n%s", s.Output())
	}

	start := time.Now()
	if code := s.Stop(); code != 0 || s.Killed() {
		t.Fatalf("Stop = %d, killed %v; want 0, false\n%s", code, s.Killed(), s.Output())
	}
	t.Logf("stopped in %s", time.Since(start))
	if code := s.Stop(); code != 0 {
		t.Errorf("second Stop = %d, want the same 0", code)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.Port), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after Stop", s.Port)
	}
}

func TestBinaryIsBuiltOnce(t *testing.T) {
	a, b := testbin.Binary(t), testbin.Binary(t)
	if a != b {
		t.Fatalf("Binary returned %q, then %q", a, b)
	}
	fi, err := os.Stat(a)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("binary %q: %v, mode %v", a, err, fi.Mode())
	}
}

func TestRunReturnsCodeAndOutput(t *testing.T) {
	r := testbin.Run(t, testbin.Options{Args: []string{"version"}})
	if r.Code != 0 || r.Output != testbin.Version+"\n" {
		t.Errorf("duplex version = %d %q, want 0 %q", r.Code, r.Output, testbin.Version+"\n")
	}
	r = testbin.Run(t, testbin.Options{Env: []string{"LOG_LEVEL=loud"}})
	if r.Code != 2 || !strings.Contains(r.Output, "LOG_LEVEL") {
		t.Errorf("bad LOG_LEVEL = %d %q, want 2 and a message naming LOG_LEVEL", r.Code, r.Output)
	}
}

func TestCleanupStopsServer(t *testing.T) {
	var s *testbin.Server
	t.Run("inner", func(t *testing.T) {
		s = testbin.Start(t, testbin.Options{Env: []string{"HOST=127.0.0.1"}})
	})
	select {
	case <-s.Done():
	default:
		t.Fatal("server still running after the test that started it ended")
	}
	if code, exited := s.Wait(0); !exited || code != 0 {
		t.Errorf("after cleanup: exited %v, code %d; want true, 0", exited, code)
	}
}

func TestStopKillsProcessThatIgnoresSIGTERM(t *testing.T) {
	s := testbin.Start(t, testbin.Options{
		Binary:      os.Args[0],
		Env:         []string{helperEnv + "=ignore-term"},
		StopTimeout: 300 * time.Millisecond,
	})
	start := time.Now()
	code := s.Stop()
	if code != -1 || !s.Killed() {
		t.Fatalf("Stop = %d, killed %v; want -1, true", code, s.Killed())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %s with a 300ms stop timeout", d)
	}
}

func TestCleanupReportsProcessThatIgnoresSIGTERM(t *testing.T) {
	ft := runFake(t, func(tb testing.TB) {
		testbin.Start(tb, testbin.Options{
			Binary:      os.Args[0],
			Env:         []string{helperEnv + "=ignore-term"},
			StopTimeout: 300 * time.Millisecond,
		})
	})
	if len(ft.fatals) != 0 || len(ft.errors) != 1 || !strings.Contains(ft.errors[0], "ignored SIGTERM") {
		t.Errorf("fatals %q, errors %q; want one error about SIGTERM", ft.fatals, ft.errors)
	}
}

func TestStartFailsFastWhenProcessExits(t *testing.T) {
	start := time.Now()
	ft := runFake(t, func(tb testing.TB) {
		testbin.Start(tb, testbin.Options{Binary: os.Args[0], Env: []string{helperEnv + "=die"}})
		tb.Errorf("Start returned")
	})
	if len(ft.fatals) != 1 || !strings.Contains(ft.fatals[0], "exited with code 3") ||
		!strings.Contains(ft.fatals[0], "helper: bad config") {
		t.Errorf("fatals %q; want one naming exit code 3 and showing the output", ft.fatals)
	}
	if len(ft.errors) != 0 {
		t.Errorf("errors %q, want none", ft.errors)
	}
	if d := time.Since(start); d > testbin.DefaultReadyTimeout/2 {
		t.Errorf("took %s to notice the process had exited", d)
	}
}

func TestRunKillsAfterTimeout(t *testing.T) {
	ft := runFake(t, func(tb testing.TB) {
		testbin.Run(tb, testbin.Options{
			Binary: os.Args[0],
			Env:    []string{helperEnv + "=ignore-term", "PORT=" + strconv.Itoa(testbin.FreePort(tb))},
			// Long enough for the helper to start and print even on a
			// loaded machine, so its output can be checked.
			RunTimeout: 2 * time.Second,
		})
	})
	if len(ft.fatals) != 1 || !strings.Contains(ft.fatals[0], "still running after 2s") ||
		!strings.Contains(ft.fatals[0], "helper listening") {
		t.Errorf("fatals %q; want one about the timeout, with the output", ft.fatals)
	}
}

// fakeT records failures instead of failing the real test, so the helpers'
// own failure paths can be checked. It runs cleanups when runFake ends.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	fatals   []string
	errors   []string
	cleanups []func()
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatals = append(f.fatals, fmt.Sprintf(format, args...))
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeT) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeT) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fatals)+len(f.errors) > 0
}

func (f *fakeT) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// runFake runs body with a fakeT on its own goroutine (Fatalf ends it
// with Goexit), then runs its cleanups in reverse order, as testing does.
func runFake(t *testing.T, body func(tb testing.TB)) *fakeT {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(ft)
	}()
	<-done
	for i := len(ft.cleanups) - 1; i >= 0; i-- {
		ft.cleanups[i]()
	}
	return ft
}

// NATSServer builds nats-server at the version go.mod requires (without
// NATS_SERVER), and a second call is the same cached binary.
func TestNATSServerIsTheModulesVersion(t *testing.T) {
	if os.Getenv("NATS_SERVER") != "" {
		t.Skip("NATS_SERVER is set: NATSServer returns it as it is")
	}
	want, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", testbin.NATSServerModule).Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	bin := testbin.NATSServer(t)
	if bin == "" {
		t.Fatal("no nats-server at all")
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	if v := strings.TrimSpace(string(want)); !strings.Contains(string(out), v) {
		t.Fatalf("%s --version says %q, want %s (the module's; a fallback was used?)", bin, out, v)
	}
	if again := testbin.NATSServer(t); again != bin {
		t.Errorf("second call: %s, want the cached %s", again, bin)
	}
}
