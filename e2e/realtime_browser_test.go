package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/duplex/duplex/internal/testbin"
)

// What the real-time pages show.
const (
	rtConnected = "已连接（WebSocket）"
)

// enterChat opens /chat, types the nickname and the room, clicks 进入 and
// waits until the page says it is connected over WebSocket.
func enterChat(t *testing.T, ctx context.Context, s *testbin.Server, name, room string) {
	t.Helper()
	enterChatShowing(t, ctx, s.URL, name, room, rtConnected)
}

// enterChatShowing is enterChat on the server (or proxy) at base for a
// page whose status line says connected as status (it names the
// transport).
func enterChatShowing(t *testing.T, ctx context.Context, base, name, room, status string) {
	t.Helper()
	navigateTo(t, ctx, base+"/chat")
	typeInto(t, ctx, "name", name)
	typeInto(t, ctx, "room", room)
	clickButton(t, ctx, "join", "进入")
	waitVisibleText(t, ctx, "room-title", "房间 "+room, 5*time.Second)
	waitVisibleText(t, ctx, "status", status, 10*time.Second)
}

// sendChat types text into the message box and clicks 发送.
func sendChat(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	typeInto(t, ctx, "text", text)
	clickButton(t, ctx, "send", "发送")
}

const describeMessages = `Array.from(document.querySelectorAll('#messages li'), li => li.innerText.replace(/\n/g, ' | ')).join(' // ')`

// waitMessage waits until the chat shows a sent (not pending) message
// from who with exactly text.
func waitMessage(t *testing.T, ctx context.Context, who, text string, timeout time.Duration) {
	t.Helper()
	waitFor(t, ctx, "message "+strconv.Quote(text)+" from "+who, timeout, describeMessages,
		`(who, text) => Array.from(document.querySelectorAll('#messages li.msg')).some(li =>
			!li.classList.contains('pending') && li.getClientRects().length > 0 &&
			li.querySelector('.who').innerText === who && li.querySelector('.text').innerText === text)`,
		who, text)
}

// waitSystemLine waits for a join/leave/notice line with exactly text.
func waitSystemLine(t *testing.T, ctx context.Context, text string, timeout time.Duration) {
	t.Helper()
	waitFor(t, ctx, "line "+strconv.Quote(text), timeout, describeMessages,
		`(text) => Array.from(document.querySelectorAll('#messages li.sys')).some(li => li.innerText === text)`, text)
}

// messageCount is how many chat messages show exactly text.
func messageCount(t *testing.T, ctx context.Context, text string) int {
	t.Helper()
	n := 0
	for _, s := range innerTexts(t, ctx, "#messages li.msg .text") {
		if s == text {
			n++
		}
	}
	return n
}

// waitOnline waits until the member list shows exactly names (any order)
// and the count says len(names).
func waitOnline(t *testing.T, ctx context.Context, names []string, timeout time.Duration) {
	t.Helper()
	waitFor(t, ctx, "online members "+strings.Join(names, ", "), timeout,
		`document.getElementById('online-title').innerText + ': ' + Array.from(document.querySelectorAll('#online li'), li => li.innerText).join(', ')`,
		`(names) => {
			const got = Array.from(document.querySelectorAll('#online li'), li => li.innerText).sort();
			return document.getElementById('online-title').innerText === '在线 ' + names.length + ' 人' &&
				JSON.stringify(got) === JSON.stringify(names.slice().sort());
		}`, names)
}

// TestRealtimeChatTwoPages: two people in the same room see who is online,
// each other's messages (user text shown as text, never as HTML), the
// other's arrival, and the other's departure when the tab closes.
func TestRealtimeChatTwoPages(t *testing.T) {
	s := realtimeServer(t, 0)
	a := newBrowser(t, 1000, 760, false)
	b, closeB := newTab(t, a)

	enterChat(t, a, s, "李旺", "e2e-two")
	waitOnline(t, a, []string{"李旺（我）"}, 5*time.Second)
	enterChat(t, b, s, "张三", "e2e-two")

	waitOnline(t, a, []string{"李旺（我）", "张三"}, 5*time.Second)
	waitOnline(t, b, []string{"李旺", "张三（我）"}, 5*time.Second)
	waitSystemLine(t, a, "张三 进入了房间", 5*time.Second)

	hostile := `你好，张三！<img src=x onerror="window.pwned=1"><b>粗</b>`
	sendChat(t, a, hostile)
	waitMessage(t, b, "李旺", hostile, 5*time.Second)
	waitMessage(t, a, "李旺", hostile, 5*time.Second)
	sendChat(t, b, "你好，李旺 👋")
	waitMessage(t, a, "张三", "你好，李旺 👋", 5*time.Second)

	for _, tab := range []context.Context{a, b} {
		bad, err := chromedp.Run(tab, chromedp.Evaluate[bool](
			`window.pwned === 1 || document.querySelector('#messages img, #messages b') !== null`))
		if err != nil || bad {
			t.Fatalf("user text became HTML in the chat (%v)", err)
		}
		if n := messageCount(t, tab, hostile); n != 1 {
			t.Errorf("the message shows %d times, want once", n)
		}
	}
	saveShot(t, a, "chat-desktop.png")

	// B leaves by closing the tab.
	closeB()
	waitSystemLine(t, a, "张三 离开了房间", 10*time.Second)
	waitOnline(t, a, []string{"李旺（我）"}, 5*time.Second)
}

// TestRealtimeChatHistoryAndPhone: a late comer sees the history of the
// room on entering, and the chat fits a phone's width.
func TestRealtimeChatHistoryAndPhone(t *testing.T) {
	s := realtimeServer(t, 0)
	for i := 1; i <= 3; i++ {
		apiCall(t, s, "POST", "/api/publish", map[string]any{
			"channel": "chat:e2e-history", "data": map[string]any{"text": "历史消息 " + strconv.Itoa(i)},
		}, nil)
	}
	ctx := newBrowser(t, 390, 844, true)
	enterChat(t, ctx, s, "王五", "e2e-history")
	for i := 1; i <= 3; i++ {
		waitMessage(t, ctx, "系统", "历史消息 "+strconv.Itoa(i), 5*time.Second)
	}
	got := innerTexts(t, ctx, "#messages li.msg .text")
	if want := []string{"历史消息 1", "历史消息 2", "历史消息 3"}; !slices.Equal(got, want) {
		t.Errorf("history shows %q, want %q in order", got, want)
	}
	sendChat(t, ctx, "手机上发的")
	waitMessage(t, ctx, "王五", "手机上发的", 5*time.Second)
	checkFits(t, ctx, "messages", "text", "send-button", "online")
	saveShot(t, ctx, "chat-phone.png")
}

// A history larger than one reply (100 messages of 15 KB are 1.5 MB; a
// reply holds at most 256 KiB) comes in pages; the page shows all of it,
// in order, the newest last.
func TestRealtimeChatLongHistory(t *testing.T) {
	s := realtimeServer(t, 0)
	pad := strings.Repeat("长", 5000) // 15,000 bytes
	for i := 1; i <= 100; i++ {
		apiCall(t, s, "POST", "/api/publish", map[string]any{
			"channel": "chat:e2e-long", "data": map[string]any{"text": strconv.Itoa(i) + pad},
		}, nil)
	}
	ctx := newBrowser(t, 1280, 800, false)
	enterChat(t, ctx, s, "赵六", "e2e-long")
	waitMessage(t, ctx, "系统", "100"+pad, 10*time.Second)
	got := innerTexts(t, ctx, "#messages li.msg .text")
	if len(got) != 100 {
		t.Fatalf("history shows %d messages, want all 100", len(got))
	}
	for i, text := range got {
		if text != strconv.Itoa(i+1)+pad {
			t.Fatalf("message %d is %.10q…, want %d… in order", i, text, i+1)
		}
	}
}

// TestRealtimeChatSurvivesRestart: the server stops (SIGTERM) under two
// open chat pages and starts again on the same port. The pages say they
// lost the connection (1001), reconnect by themselves, and then show, each
// exactly once: the message from before the restart, a message another
// client sent right after the restart (before or while the pages came
// back: the new server's history has it, the pages reload and merge), a
// message typed while disconnected (it waited in the outbox), and a new
// one.
func TestRealtimeChatSurvivesRestart(t *testing.T) {
	first := realtimeServer(t, 0)
	a := newBrowser(t, 1000, 760, false)
	b, _ := newTab(t, a)
	const room = "e2e-restart"
	enterChat(t, a, first, "李旺", room)
	enterChat(t, b, first, "张三", room)
	chatSurvivesRestart(t, first, room, a, b, rtConnected, rtConnected)
}

// chatSurvivesRestart is the restart of TestRealtimeChatSurvivesRestart
// under the chat pages a (李旺) and b (张三), both in room on server first:
// each comes back showing statusA and statusB (their transports).
func chatSurvivesRestart(t *testing.T, first *testbin.Server, room string, a, b context.Context, statusA, statusB string) {
	t.Helper()
	waitOnline(t, a, []string{"李旺（我）", "张三"}, 5*time.Second)

	sendChat(t, a, "重启前的消息")
	waitMessage(t, b, "李旺", "重启前的消息", 5*time.Second)

	for _, tab := range []context.Context{a, b} {
		if err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](`(() => {
			const el = document.getElementById('status');
			window.statusSeen = [];
			new MutationObserver(() => window.statusSeen.push(el.innerText))
				.observe(el, {childList: true, characterData: true, subtree: true});
		})()`)); err != nil {
			t.Fatal(err)
		}
	}
	if code := first.Stop(); code != 0 {
		t.Fatalf("server exited %d after SIGTERM, want 0", code)
	}
	for _, tab := range []context.Context{a, b} {
		waitFor(t, tab, "status 连接已断开（代码 1001…", 5*time.Second, `JSON.stringify(window.statusSeen)`,
			`() => window.statusSeen.some(s => s.startsWith('连接已断开（代码 1001'))`)
	}
	// Typed while the server is down: it waits in the outbox.
	sendChat(t, b, "断线时发的消息")

	second := realtimeServer(t, first.Port)
	// Right after the restart, before the pages are back (their backoff
	// has grown to seconds), another client says something.
	other := dialRealtime(t, second, "name="+url.QueryEscape("王五"))
	if pos := other.Publish("chat:"+room, `{"text":"重启后王五的消息"}`); pos.Offset == 0 {
		t.Fatalf("publish after restart answered %+v", pos)
	}

	// Both back first: the message typed on b goes out only once b is.
	for i, tab := range []context.Context{a, b} {
		waitVisibleText(t, tab, "status", []string{statusA, statusB}[i], 25*time.Second)
	}
	for _, tab := range []context.Context{a, b} {
		// The new server's streams have new epochs: recovery fails, and
		// the page says it reloads the history.
		waitSystemLine(t, tab, "已重新连接，正在重新加载历史消息", 5*time.Second)
		waitMessage(t, tab, "王五", "重启后王五的消息", 10*time.Second)
		waitMessage(t, tab, "张三", "断线时发的消息", 10*time.Second)
	}
	waitOnline(t, a, []string{"李旺（我）", "张三"}, 5*time.Second)

	sendChat(t, a, "重启后的新消息")
	waitMessage(t, b, "李旺", "重启后的新消息", 5*time.Second)
	waitMessage(t, a, "李旺", "重启后的新消息", 5*time.Second)

	// A barrier before counting: one more publication on the same
	// channel. The server delivers a channel's pushes in order, so once
	// both pages show it, any late duplicate of the earlier messages would
	// have arrived before it.
	const barrier = "最后一条（同步标记）"
	other.Publish("chat:"+room, `{"text":"`+barrier+`"}`)
	for _, tab := range []context.Context{a, b} {
		waitMessage(t, tab, "王五", barrier, 5*time.Second)
	}
	t.Logf("page 1 shows: %s", strings.Join(innerTexts(t, a, "#messages li"), " // "))
	saveShot(t, a, "chat-after-restart.png")
	for i, tab := range []context.Context{a, b} {
		for _, text := range []string{"重启前的消息", "断线时发的消息", "重启后王五的消息", "重启后的新消息"} {
			if n := messageCount(t, tab, text); n != 1 {
				t.Errorf("page %d shows %q %d times, want once; messages: %s", i+1, text, n,
					strings.Join(innerTexts(t, tab, "#messages li"), " // "))
			}
		}
	}
}

// TestRealtimeLiveBullets: a bullet comment sent from one /live page flies
// across the other's stage; both show two viewers. Under a burst of
// comments the server samples its tick and the page says so with the
// room's counts; the stage keeps to its cap and keeps animating.
func TestRealtimeLiveBullets(t *testing.T) {
	s := realtimeServer(t, 0)
	a := newBrowser(t, 1000, 760, false)
	b, _ := newTab(t, a)
	navigate(t, a, s, "/live?room=e2e&name="+url.QueryEscape("观众甲"))
	navigate(t, b, s, "/live?room=e2e&name="+url.QueryEscape("观众乙"))
	for _, tab := range []context.Context{a, b} {
		waitVisibleText(t, tab, "status", rtConnected, 10*time.Second)
		waitVisibleText(t, tab, "viewers", "2 人在看", 10*time.Second)
	}

	typeInto(t, a, "text", "前方高能！")
	clickButton(t, a, "send", "发送")
	onStage := `(text) => {
		const stage = document.getElementById('stage').getBoundingClientRect();
		return Array.from(document.querySelectorAll('#bullets .bullet')).some(el => {
			const r = el.getBoundingClientRect();
			return el.innerText === text && r.top >= stage.top && r.bottom <= stage.bottom &&
				r.right > stage.left && r.left < stage.right;
		});
	}`
	describeStage := `Array.from(document.querySelectorAll('#bullets .bullet'), e => e.innerText).join(' | ')`
	waitFor(t, b, "bullet 前方高能！ on the other page's stage", 5*time.Second, describeStage, onStage, "前方高能！")
	waitFor(t, a, "own bullet 前方高能！ on the sender's stage", 5*time.Second, describeStage, onStage, "前方高能！")
	if got := innerTexts(t, b, "#recent li"); !slices.Contains(got, "观众甲前方高能！") {
		t.Errorf("recent comments on the other page: %q, want 观众甲 前方高能！", got)
	}
	saveShot(t, b, "live-desktop.png")

	// A flood: 300 comments at once from the server. The stage must stay
	// within its cap, say it skipped some, and keep animating.
	if err := chromedp.Do(b, chromedp.Evaluate[chromedp.Void](`(() => {
		window.maxBullets = 0; window.maxGap = 0; let last = performance.now();
		const tick = now => {
			window.maxBullets = Math.max(window.maxBullets, document.querySelectorAll('#bullets .bullet').length);
			window.maxGap = Math.max(window.maxGap, now - last); last = now;
			window.flooding && requestAnimationFrame(tick);
		};
		window.flooding = true; requestAnimationFrame(tick);
	})()`)); err != nil {
		t.Fatal(err)
	}
	channels := make([]string, 0, 300)
	for range 300 {
		channels = append(channels, "live:e2e")
	}
	apiCall(t, s, "POST", "/api/broadcast", map[string]any{"channels": channels, "data": map[string]any{"text": "刷屏"}}, nil)
	waitFor(t, b, "the page shows the room's count and the sample", 10*time.Second,
		`document.getElementById('flow').innerText`,
		`() => { const m = /^(\d+) 条\/秒，显示 (\d+) 条$/.exec(document.getElementById('flow').innerText);
			return m && +m[1] >= 100 && +m[2] < +m[1]; }`)
	saveShot(t, b, "live-flood.png")
	time.Sleep(time.Second)
	stats, err := chromedp.Run(b, chromedp.Evaluate[map[string]float64](
		`(() => { window.flooding = false; return {max: window.maxBullets, gap: window.maxGap}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flood: at most %v bullets on stage, longest frame %.0f ms", stats["max"], stats["gap"])
	if stats["max"] > 60 {
		t.Errorf("%v bullets on stage at once, want at most 60", stats["max"])
	}
	// After the flood, a new comment still gets through.
	typeInto(t, a, "text", "洪水之后")
	clickButton(t, a, "send", "发送")
	waitFor(t, b, "bullet 洪水之后 after the flood", 10*time.Second, describeStage, onStage, "洪水之后")
}

// TestRealtimePushAPI: notifications published with the HTTP API appear on
// /push: an announcement (push:news) for everyone, and a personal one
// (user:42) only for the page signed in as user 42 with a token minted by
// the API. The page shows curl commands for this very server.
func TestRealtimePushAPI(t *testing.T) {
	s := realtimeServer(t, 0)
	var tok struct {
		Token string `json:"token"`
	}
	apiCall(t, s, "POST", "/api/token", map[string]any{"user": "42", "name": "李旺"}, &tok)
	if tok.Token == "" {
		t.Fatal("POST /api/token gave no token")
	}

	signedIn := newBrowser(t, 1000, 900, false)
	guest, _ := newTab(t, signedIn)
	navigate(t, signedIn, s, "/push?token="+url.QueryEscape(tok.Token))
	navigate(t, guest, s, "/push")
	waitVisibleText(t, signedIn, "status", rtConnected, 10*time.Second)
	waitVisibleText(t, guest, "status", rtConnected, 10*time.Second)
	waitVisibleText(t, signedIn, "who", "已登录：用户 42（李旺），同时接收私信", 5*time.Second)
	waitVisibleText(t, signedIn, "subs", "已订阅：push:news，user:42", 5*time.Second)
	waitVisibleText(t, guest, "who", "访客（未登录）：只接收公告", 5*time.Second)
	waitVisibleText(t, guest, "subs", "已订阅：push:news", 5*time.Second)

	if cmd := innerTexts(t, guest, "#curl-publish"); len(cmd) != 1 ||
		!strings.Contains(cmd[0], "curl -X POST "+s.URL+"/api/publish") || !strings.Contains(cmd[0], `"channel":"push:news"`) {
		t.Errorf("curl command for push:news: %q", cmd)
	}
	if cmd := innerTexts(t, signedIn, "#curl-user"); len(cmd) != 1 || !strings.Contains(cmd[0], `"channel":"user:42"`) {
		t.Errorf("curl command for user:42: %q", cmd)
	}
	if cmd := innerTexts(t, guest, "#curl-token"); len(cmd) != 1 || !strings.Contains(cmd[0], s.URL+"/api/token") {
		t.Errorf("curl command for a token: %q", cmd)
	}

	apiCall(t, s, "POST", "/api/publish", map[string]any{
		"channel": "push:news", "data": map[string]any{"title": "系统公告", "text": "今晚 22:00 维护"}}, nil)
	apiCall(t, s, "POST", "/api/publish", map[string]any{
		"channel": "user:42", "data": map[string]any{"title": "私信", "text": "你的订单已发货"}}, nil)

	note := `(tag, title, body) => Array.from(document.querySelectorAll('#notifications li.note')).some(li =>
		li.querySelector('.tag').innerText === tag && li.querySelector('.title').innerText === title &&
		li.querySelector('.body').innerText === body)`
	describe := `Array.from(document.querySelectorAll('#notifications li'), li => li.innerText.replace(/\n/g, ' | ')).join(' // ')`
	waitFor(t, signedIn, "announcement on the signed-in page", 5*time.Second, describe, note, "公告 · push:news", "系统公告", "今晚 22:00 维护")
	waitFor(t, signedIn, "personal message on the signed-in page", 5*time.Second, describe, note, "私信 · user:42", "私信", "你的订单已发货")
	waitFor(t, guest, "announcement on the guest page", 5*time.Second, describe, note, "公告 · push:news", "系统公告", "今晚 22:00 维护")
	saveShot(t, signedIn, "push-desktop.png")

	// The commands the page shows work as they are, pasted into a shell.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Logf("curl not installed: not running the page's curl commands")
	} else {
		cmd := innerTexts(t, signedIn, "#curl-publish")[0]
		out := runShell(t, cmd)
		if !strings.Contains(out, `"offset":`) {
			t.Errorf("the page's publish command printed %q, want a position", out)
		}
		waitFor(t, guest, "announcement sent with the page's curl command", 5*time.Second, describe, note,
			"公告 · push:news", "系统公告", "今晚 22:00 维护，预计 10 分钟")
		out = runShell(t, innerTexts(t, guest, "#curl-token")[0])
		var minted struct{ Token, User string }
		if err := json.Unmarshal([]byte(out), &minted); err != nil || minted.Token == "" || minted.User != "42" {
			t.Errorf("the page's token command printed %q (%v)", out, err)
		}
	}

	// The personal message was published before the announcement reached
	// the guest, so by now it would have arrived too.
	for _, text := range innerTexts(t, guest, "#notifications li") {
		if strings.Contains(text, "你的订单已发货") || strings.Contains(text, "user:42") {
			t.Errorf("the guest page shows user 42's message: %q", text)
		}
	}
}

// runShell runs a command as a person pasting it into a shell would, with
// API_KEY exported, and returns what it prints.
func runShell(t *testing.T, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Env = append(os.Environ(), "API_KEY="+testAPIKey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", command, err, out, stderr.Bytes())
	}
	return string(out)
}

// checkFits fails t if the page scrolls sideways or an element with one
// of ids sticks out of the viewport.
func checkFits(t *testing.T, ctx context.Context, ids ...string) {
	t.Helper()
	problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`((ids) => {
		const vw = document.documentElement.clientWidth, out = [];
		if (document.documentElement.scrollWidth > vw)
			out.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + vw);
		for (const id of ids) {
			const r = document.getElementById(id).getBoundingClientRect();
			if (r.left < 0 || r.right > vw || r.width < 1 || r.height < 1)
				out.push('#' + id + ' not inside the viewport: ' + JSON.stringify(r));
		}
		return out;
	})(`+jsonString(ids)+`)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Errorf("layout: %s", strings.Join(problems, "; "))
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// saveShot keeps a screenshot of the viewport in the test's artifact
// directory (go test -artifacts), for people to look at.
func saveShot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name), buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRealtimePagesOnPhone: /live and /push fit a phone's width, with
// nothing scrolling sideways.
func TestRealtimePagesOnPhone(t *testing.T) {
	s := realtimeServer(t, 0)
	ctx := newBrowser(t, 390, 844, true)

	navigate(t, ctx, s, "/live?room=phone")
	waitVisibleText(t, ctx, "status", rtConnected, 10*time.Second)
	waitVisibleText(t, ctx, "viewers", "1 人在看", 10*time.Second)
	typeInto(t, ctx, "text", "手机弹幕")
	clickButton(t, ctx, "send", "发送")
	waitFor(t, ctx, "own bullet on the phone", 5*time.Second, `document.getElementById('bullets').innerText`,
		`() => Array.from(document.querySelectorAll('#bullets .bullet')).some(e => e.innerText === '手机弹幕')`)
	checkFits(t, ctx, "stage", "text", "send-button", "viewers", "status")
	saveShot(t, ctx, "live-phone.png")

	navigate(t, ctx, s, "/push")
	waitVisibleText(t, ctx, "status", rtConnected, 10*time.Second)
	checkFits(t, ctx, "topic", "token", "login", "empty", "curl-publish", "curl-token")
	saveShot(t, ctx, "push-phone.png")
}
