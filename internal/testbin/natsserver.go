package testbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// NATSServerModule is the package whose main is nats-server, at the
// version go.mod requires.
const NATSServerModule = "github.com/nats-io/nats-server/v2"

// natsBuild is the nats-server binary shared by every test of the process.
var natsBuild struct {
	once     sync.Once
	path     string
	buildErr error // why the build failed, when path is a fallback
}

// NATSServer returns the path of a nats-server binary for tests that run
// NATS as processes (clusters, SIGSTOP), or "" when there is none:
//
//  1. $NATS_SERVER, when set: the caller's choice, used as it is;
//  2. else nats-server built from the module graph (NATSServerModule at
//     go.mod's version, v2.15.2 today), cached by version in the user's
//     cache directory, so it is built once and then reused by every test
//     process and every run;
//  3. only if that build fails, nats-server from PATH or /usr/sbin
//     (Debian's 2.9.10, which has nats-server issue 4320: after a stream
//     leader change two publications can be stored at one expected
//     subject sequence), logged as a fallback.
//
// Concurrency: safe to call from parallel tests; the build runs once.
func NATSServer(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("NATS_SERVER"); p != "" {
		return p
	}
	natsBuild.once.Do(func() {
		natsBuild.path, natsBuild.buildErr = buildNATSServer()
		if natsBuild.buildErr != nil {
			natsBuild.path = systemNATSServer()
		}
	})
	if natsBuild.buildErr != nil && natsBuild.path != "" {
		t.Logf("testbin: using %s: building nats-server from the module graph failed: %v", natsBuild.path, natsBuild.buildErr)
	}
	return natsBuild.path
}

// buildNATSServer builds NATSServerModule at go.mod's version into
// <user cache>/duplex-test/nats-server-<version>, unless it is there
// already. The build goes to a temporary directory first and is renamed
// into place, so a concurrent test process never runs half a binary.
func buildNATSServer() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	list := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", NATSServerModule)
	list.Dir = root
	v, err := list.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m %s: %w", NATSServerModule, err)
	}
	version := strings.TrimSpace(string(v))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "duplex-test")
	path := filepath.Join(dir, "nats-server-"+version)
	if isExecutable(path) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	built := filepath.Join(tmp, "nats-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", built, NATSServerModule)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", NATSServerModule, root, err, out)
	}
	if err := os.Rename(built, path); err != nil {
		return "", fmt.Errorf("nats-server build: %w", err)
	}
	return path, nil
}

// systemNATSServer is nats-server from PATH or /usr/sbin, or "".
func systemNATSServer() string {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if p := "/usr/sbin/nats-server"; isExecutable(p) {
		return p
	}
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
