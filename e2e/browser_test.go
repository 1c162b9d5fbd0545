// Package e2e tests the built duplex binary from outside: in a real browser
// (this file) and as the Docker image runs it (binary_test.go).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/duplex/duplex/internal/testbin"
)

// chromiumPath is Debian's chromium, as CI installs it with apt.
const chromiumPath = "/usr/bin/chromium"

// What the page shows.
const (
	connectedResult = "已连接上!"
	connectedStatus = "已连接"
	sendButton      = `//form[@id="form"]//button[normalize-space(.)="发送"]`
)

func reply(name string) string {
	return "服务端已收到消息:" + name + "服务端发来消息: Hello," + name
}

// browserServer starts duplex for a browser test, on loopback only.
func browserServer(t *testing.T, port int) *testbin.Server {
	t.Helper()
	return testbin.Start(t, testbin.Options{
		Port: port,
		Env:  []string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text"},
	})
}

// newBrowser starts a headless chromium for t, with a viewport of
// width x height, and returns the context of its one tab. The browser is
// closed, and its processes gone, by the time t's cleanups finish.
// chromedp gives each browser a fresh user-data-dir and removes it.
func newBrowser(t *testing.T, width, height int64, mobile bool) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("chromium not found at %s (%v); CI must install it: apt-get install chromium", chromiumPath, err)
		}
		t.Skipf("chromium not found at %s (%v): skipping browser test; install it with apt-get install chromium (with CI=true this fails)", chromiumPath, err)
	}

	var browserLog testbin.SyncBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(int(width), int(height)),
		chromedp.CombinedOutput(&browserLog),
	)
	// Registered first, so it runs last, after the browser has exited.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chromium output (D-Bus noise left out):\n%s", withoutDBus(browserLog.String()))
		}
	})
	timeout, cancelTimeout := context.WithTimeout(context.Background(), 50*time.Second)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(timeout, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()   // closes the browser
		cancelAlloc() // waits until its processes are gone
		cancelTimeout()
	})

	viewport := []chromedp.EmulateViewportOption{}
	if mobile {
		viewport = append(viewport, chromedp.EmulateMobile, chromedp.EmulatePortrait)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height, viewport...)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// openPage loads the echo page and waits until it says it is connected.
func openPage(t *testing.T, ctx context.Context, s *testbin.Server) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/")); err != nil {
		t.Fatalf("open %s: %v", s.URL, err)
	}
	waitText(t, ctx, "result", connectedResult, 10*time.Second)
	waitText(t, ctx, "status", connectedStatus, time.Second)
}

// waitText waits until the element with id is visible and its rendered
// text (innerText, what a person sees) is exactly want.
func waitText(t *testing.T, ctx context.Context, id, want string, timeout time.Duration) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[chromedp.Void](`(id, want) => {
		const e = document.getElementById(id);
		return e !== null && e.getClientRects().length > 0 && e.innerText === want;
	}`, chromedp.WithPollingArgs(id, want), chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		t.Fatalf("#%s: want %q within %s; the page shows %q (%v)", id, want, timeout, visibleText(ctx, id), err)
	}
}

// visibleText is the rendered text of the element with id, for messages.
func visibleText(ctx context.Context, id string) string {
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`(document.getElementById(`+strconv.Quote(id)+`) || {innerText: "<no such element>"}).innerText`))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return text
}

// typeName types name over whatever the input holds, as a person does
// who selects the old text first.
func typeName(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Focus(chromedp.ID("m")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('m').select()`),
		chromedp.SendKeys(chromedp.ID("m"), name),
	); err != nil {
		t.Fatalf("type %q: %v", name, err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("m"))); err != nil || got != name {
		t.Fatalf("input holds %q after typing %q (%v)", got, name, err)
	}
}

// sendByClick types name and clicks 发送.
func sendByClick(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	typeName(t, ctx, name)
	if err := chromedp.Do(ctx, chromedp.Click(sendButton)); err != nil {
		t.Fatalf("click 发送: %v", err)
	}
}

// screenshot captures the viewport and checks it is a PNG of the given width.
func screenshot(t *testing.T, ctx context.Context, width int) []byte {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(buf))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if w := img.Bounds().Dx(); w != width {
		t.Fatalf("screenshot is %d px wide, want %d", w, width)
	}
	return buf
}

// TestBrowserEcho is the tutorial as a person uses it: the page connects,
// a name sent with the 发送 button comes back as the server's greeting,
// and so does one sent with the Enter key.
func TestBrowserEcho(t *testing.T) {
	ctx := newBrowser(t, 900, 640, false)
	s := browserServer(t, 0)
	openPage(t, ctx, s)

	sendByClick(t, ctx, "李旺")
	waitText(t, ctx, "result", reply("李旺"), 5*time.Second)

	shot := screenshot(t, ctx, 900)
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "desktop.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		path := filepath.Join("..", "docs", "screenshot.png")
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}

	typeName(t, ctx, "张三")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
		t.Fatalf("press Enter: %v", err)
	}
	waitText(t, ctx, "result", reply("张三"), 5*time.Second)
	waitText(t, ctx, "status", connectedStatus, time.Second)
}

// TestBrowserReconnectsAfterRestart stops the server under an open page and
// starts a new one on the same port: the page must say it lost the
// connection (code 1001, going away), then reconnect by itself, and echo.
func TestBrowserReconnectsAfterRestart(t *testing.T) {
	ctx := newBrowser(t, 900, 640, false)
	first := browserServer(t, 0)
	openPage(t, ctx, first)
	sendByClick(t, ctx, "李旺")
	waitText(t, ctx, "result", reply("李旺"), 5*time.Second)

	recordStatus(t, ctx)

	if code := first.Stop(); code != 0 {
		t.Fatalf("first server exited %d after SIGTERM, want 0", code)
	}
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](
		`window.statusSeen.some(s => s.startsWith('status closed|连接已断开（代码 1001）'))`,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(5*time.Second)))
	if err != nil {
		seen, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.statusSeen`))
		t.Fatalf("#status never said 连接已断开（代码 1001） after the server stopped; it showed %q (%v)", seen, err)
	}
	if st := visibleText(ctx, "status"); st == connectedStatus {
		t.Fatalf("#status says %q while no server runs", st)
	}

	second := browserServer(t, first.Port)
	// The page's backoff is capped at 10 s; after a few failed attempts the
	// next one comes within about 4 s.
	waitText(t, ctx, "result", connectedResult, 15*time.Second)
	waitText(t, ctx, "status", connectedStatus, time.Second)

	sendByClick(t, ctx, "王五")
	waitText(t, ctx, "result", reply("王五"), 5*time.Second)
	if n := connections(t, second); n != 1 {
		t.Errorf("new server has %d connections, want the page's 1", n)
	}
}

// TestBrowserPhoneLayout checks the page at a phone's width: nothing
// scrolls sideways or sticks out, and the input and button are usable.
func TestBrowserPhoneLayout(t *testing.T) {
	ctx := newBrowser(t, 390, 844, true)
	s := browserServer(t, 0)
	openPage(t, ctx, s)
	sendByClick(t, ctx, "李旺")
	waitText(t, ctx, "result", reply("李旺"), 5*time.Second)

	problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => {
		const vw = document.documentElement.clientWidth, out = [];
		if (document.documentElement.scrollWidth > vw)
			out.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + vw);
		for (const id of ['status', 'm', 'send', 'result']) {
			const r = document.getElementById(id).getBoundingClientRect();
			if (r.left < 0 || r.right > vw || r.width < 1 || r.height < 1)
				out.push('#' + id + ' not inside the viewport: ' + JSON.stringify(r));
		}
		const m = document.getElementById('m').getBoundingClientRect();
		const b = document.getElementById('send').getBoundingClientRect();
		if (m.width < 0.5 * vw) out.push('input only ' + m.width + ' px wide');
		if (b.height < 40) out.push('button only ' + b.height + ' px tall');
		return out;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("layout at 390 px: %s", strings.Join(problems, "; "))
	}
	shot := screenshot(t, ctx, 390)
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "phone.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}
}

// connections is the "connections" field of the server's /healthz.
func connections(t *testing.T, s *testbin.Server) int {
	t.Helper()
	resp, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Connections *int `json:"connections"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Connections == nil {
		t.Fatalf("/healthz: no connections field (%v)", err)
	}
	return *h.Connections
}

// withoutDBus drops chromium's complaints about the missing D-Bus, which
// flood its log on machines without one and never matter here.
func withoutDBus(log string) string {
	var keep []string
	for line := range strings.Lines(log) {
		if !strings.Contains(line, "dbus/") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "")
}
