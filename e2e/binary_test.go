//go:build linux

// The image the Dockerfile builds is Linux: these tests read /proc and the
// ELF header of the static binary.

package e2e

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/duplex/duplex/internal/testbin"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// The Docker image runs the binary as a non-root user in a directory that
// holds nothing else; nobody/nogroup stands in for distroless's nonroot.
const nobody = 65534

// defaultShutdownTimeout is config.Default().ShutdownTimeout, the bound
// that applies when only PORT is set.
const defaultShutdownTimeout = 10 * time.Second

// imageLike copies the binary into a fresh directory that other users can
// enter, as /duplex sits alone in the image, and returns the directory,
// the copy and the credential to run it with: nobody when the tests run as
// root, else nil, since the current user is then not root already.
func imageLike(t *testing.T) (dir, bin string, cred *testbin.Credential) {
	t.Helper()
	src := testbin.Binary(t)
	dir, err := os.MkdirTemp("", "duplex-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "duplex")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}

	if os.Geteuid() != 0 {
		t.Logf("not root: running the binary as the current user %d, which is not root either", os.Geteuid())
		return dir, bin, nil
	}
	// Every directory above must be enterable by others, or nobody cannot
	// reach the binary (t.TempDir would not do: it is 0700).
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s (%v) is not enterable by other users; set TMPDIR to a directory that is", d, fi.Mode())
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return dir, bin, &testbin.Credential{Uid: nobody, Gid: nobody}
}

// TestBinaryRunsAsTheImageDoes proves what the Dockerfile relies on: the
// binary alone, as a non-root user, in an empty directory, with nothing in
// its environment but PORT, serves the page, its script, the echo socket
// and /healthz; "duplex healthcheck" tells up from down; and SIGTERM closes
// a connected client with 1001 and exits 0 within the shutdown timeout.
func TestBinaryRunsAsTheImageDoes(t *testing.T) {
	dir, bin, cred := imageLike(t)
	s := testbin.Start(t, testbin.Options{Binary: bin, Dir: dir, Credential: cred})

	// The process is who and where the image runs it, with PORT only.
	status := procFile(t, s.PID(), "status")
	if cred != nil && !regexp.MustCompile(`(?m)^Uid:\s+65534\s+65534\s+65534\s+65534$`).MatchString(status) {
		t.Errorf("server does not run as uid %d:\n%s", nobody, status)
	}
	if cred != nil && !regexp.MustCompile(`(?m)^Gid:\s+65534\s+65534\s+65534\s+65534$`).MatchString(status) {
		t.Errorf("server does not run as gid %d:\n%s", nobody, status)
	}
	want := ""
	for _, kv := range append(testbin.InheritedEnv(), "PORT="+strconv.Itoa(s.Port)) {
		want += kv + "\x00"
	}
	if env := procFile(t, s.PID(), "environ"); env != want {
		t.Errorf("server environment is %q, want only %q", env, want)
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", s.PID())); err != nil || cwd != dir {
		t.Errorf("server runs in %q (%v), want %q", cwd, err, dir)
	}

	page := get(t, s.URL+"/", http.StatusOK)
	if !strings.Contains(page, "请输入您的昵称") {
		t.Errorf("GET / does not contain the input's placeholder 请输入您的昵称:\n%s", page)
	}
	if js := get(t, s.URL+"/static/js/echo.js", http.StatusOK); !strings.Contains(js, "new WebSocket(") {
		t.Errorf("GET /static/js/echo.js is not the page's script:\n%.300s", js)
	}

	conn, resp, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(
		"ws://127.0.0.1:"+strconv.Itoa(s.Port)+"/ws", nil)
	if err != nil {
		t.Fatalf("dial /ws: %v (response %v)", err, resp)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("李旺")); err != nil {
		t.Fatal(err)
	}
	kind, msg, err := conn.ReadMessage()
	if err != nil || kind != websocket.TextMessage || string(msg) != reply("李旺") {
		t.Fatalf("echo of 李旺 = %d %q, %v; want text %q", kind, msg, err, reply("李旺"))
	}

	var h map[string]any
	if err := json.Unmarshal([]byte(get(t, s.URL+"/healthz", http.StatusOK)), &h); err != nil {
		t.Fatalf("/healthz is not JSON: %v", err)
	}
	if h["status"] != "ok" {
		t.Errorf("/healthz status = %v, want ok", h["status"])
	}
	if h["version"] != testbin.Version {
		t.Errorf("/healthz version = %v, want %q (stamped with -X main.version)", h["version"], testbin.Version)
	}
	if up, ok := h["uptime_seconds"].(float64); !ok || up < 0 || up != float64(int64(up)) {
		t.Errorf("/healthz uptime_seconds = %#v, want a whole number >= 0", h["uptime_seconds"])
	}
	if n, ok := h["connections"].(float64); !ok || n != 1 {
		t.Errorf("/healthz connections = %#v, want 1 (the client above)", h["connections"])
	}

	hc := testbin.Run(t, testbin.Options{Binary: bin, Dir: dir, Credential: cred,
		Env: []string{"PORT=" + strconv.Itoa(s.Port)}, Args: []string{"healthcheck"}})
	if hc.Code != 0 {
		t.Errorf("duplex healthcheck against the running server exited %d, want 0:\n%s", hc.Code, hc.Output)
	}
	closed := testbin.FreePort(t)
	hc = testbin.Run(t, testbin.Options{Binary: bin, Dir: dir, Credential: cred,
		Env: []string{"PORT=" + strconv.Itoa(closed)}, Args: []string{"healthcheck"}})
	if hc.Code == 0 || !strings.Contains(hc.Output, "healthcheck") {
		t.Errorf("duplex healthcheck against closed port %d exited %d with %q; want non-zero and a message", closed, hc.Code, hc.Output)
	}

	// SIGTERM with the client connected: it is told 1001, going away, and
	// the process exits 0 within the shutdown timeout.
	start := time.Now()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(defaultShutdownTimeout))
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("after SIGTERM the client read %v, want a close frame with code 1001", err)
	}
	code, exited := s.Wait(defaultShutdownTimeout + time.Second)
	elapsed := time.Since(start)
	if !exited {
		t.Fatalf("still running %s after SIGTERM", elapsed)
	}
	if code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	if elapsed > defaultShutdownTimeout {
		t.Errorf("took %s to exit after SIGTERM, more than the shutdown timeout %s", elapsed, defaultShutdownTimeout)
	}
	t.Logf("SIGTERM to exit: %s", elapsed)
}

// TestBinaryRefusesInvalidConfig: a bad setting stops the process at once
// with exit code 2 and a message that names the setting.
func TestBinaryRefusesInvalidConfig(t *testing.T) {
	dir, bin, cred := imageLike(t)
	for _, env := range []string{"PORT=0", "PORT=http", "WS_MAX_MESSAGE_BYTES=abc", "SHUTDOWN_TIMEOUT=-1s"} {
		t.Run(env, func(t *testing.T) {
			r := testbin.Run(t, testbin.Options{Binary: bin, Dir: dir, Credential: cred,
				Env: []string{env}, RunTimeout: 10 * time.Second})
			name, _, _ := strings.Cut(env, "=")
			if r.Code != 2 || !strings.Contains(r.Output, name) {
				t.Errorf("%s: exit %d, output %q; want exit 2 and a message naming %s", env, r.Code, r.Output, name)
			}
		})
	}
}

// TestBinaryIsStatic: the build the Dockerfile uses (CGO_ENABLED=0) must
// be statically linked, or it cannot run in distroless/static.
func TestBinaryIsStatic(t *testing.T) {
	if err := staticELF(testbin.Binary(t)); err != nil {
		t.Fatal(err)
	}
	// The check itself must tell a dynamic binary apart.
	if err := staticELF("/bin/sh"); err == nil {
		t.Fatal("staticELF accepts /bin/sh, a dynamically linked program")
	}
}

// staticELF returns an error unless path is an ELF executable with no
// program interpreter and no shared-library dependencies.
func staticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		switch p.Type {
		case elf.PT_INTERP:
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
			return fmt.Errorf("%s has a program interpreter %q: dynamically linked", path, strings.TrimRight(string(interp), "\x00"))
		case elf.PT_DYNAMIC:
			libs, _ := f.ImportedLibraries()
			return fmt.Errorf("%s has a dynamic segment (needs %q): dynamically linked", path, libs)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %q (%v)", path, libs, err)
	}
	return nil
}

// TestDockerfileMatchesTestedBuild keeps the Dockerfile to what the tests
// above prove: the same build command, a static base, a non-root user,
// the healthcheck subcommand and the port the server defaults to.
func TestDockerfileMatchesTestedBuild(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM (--platform=\S+ )?golang:1\.26 AS build$`),
		regexp.MustCompile(`CGO_ENABLED=0 .*\s+go build -trimpath -ldflags "-s -w -X main\.version=\$VERSION"`),
		regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`),
		regexp.MustCompile(`(?m)^COPY --from=build /out/duplex /duplex$`),
		regexp.MustCompile(`(?m)^ENV PORT=8088$`),
		regexp.MustCompile(`(?m)^EXPOSE 8088$`),
		regexp.MustCompile(`(?m)^USER nonroot$`),
		regexp.MustCompile(`(?m)^HEALTHCHECK .*(\\\n.*)*CMD \["/duplex", ?"healthcheck"\]$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/duplex"\]$`),
	} {
		if !want.MatchString(df) {
			t.Errorf("Dockerfile has nothing matching %s", want)
		}
	}
	// The server's default port, which healthcheck also falls back to.
	r := testbin.Run(t, testbin.Options{Args: []string{"-h"}})
	if !strings.Contains(r.Output, `"8088"`) {
		t.Errorf("duplex -h does not show 8088 as the default port; the Dockerfile's EXPOSE and ENV PORT must follow:\n%s", r.Output)
	}
}

// get fetches url, checks the status and returns the body.
func get(t *testing.T, url string, want int) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d\n%s", url, resp.Status, want, body)
	}
	return string(body)
}

// procFile reads /proc/<pid>/<name>.
func procFile(t *testing.T, pid int, name string) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
