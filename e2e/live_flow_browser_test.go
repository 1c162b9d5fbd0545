package e2e

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// liveFloodRate is the comments per second the browser test floods a
// room with through the API: far past the 50 a second the room shows.
const liveFloodRate = 300

// TestRealtimeLiveFlood: /live at a flood. The page shows the room's
// rate and what it shows ("N 条/秒，显示 M 条", M well below N); the
// viewer's own comment flies across its stage at once, marked as its
// own, and is marked 已发送 once the server confirmed it; a priority
// comment from the API reaches the other page however full the room;
// and the density control keeps one's own comments.
func TestRealtimeLiveFlood(t *testing.T) {
	s := realtimeServer(t, 0)
	a := newBrowser(t, 1000, 760, false)
	b, _ := newTab(t, a)
	navigate(t, a, s, "/live?room=flood&name="+url.QueryEscape("发送者"))
	navigate(t, b, s, "/live?room=flood&name="+url.QueryEscape("观众"))
	for _, tab := range []context.Context{a, b} {
		waitVisibleText(t, tab, "status", rtConnected, 10*time.Second)
		waitVisibleText(t, tab, "viewers", "2 人在看", 10*time.Second)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / liveFloodRate)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				apiCall(t, s, "POST", "/api/publish", map[string]any{"channel": "live:flood", "data": map[string]any{"text": "刷屏"}}, nil)
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	counts := `() => { const m = /^(\d+) 条\/秒，显示 (\d+) 条$/.exec(document.getElementById('flow').innerText);
		return !!m && +m[1] >= 150 && +m[2] >= 20 && +m[2] <= 60; }`
	for _, tab := range []context.Context{a, b} {
		waitFor(t, tab, "the room's rate and the shown rate", 10*time.Second,
			`document.getElementById('flow').innerText`, counts)
	}

	// The density control shows fewer of the others, never one's own.
	if err := chromedp.Do(a, chromedp.Evaluate[chromedp.Void](`document.getElementById('density').value = '0.1'`)); err != nil {
		t.Fatal(err)
	}
	typeInto(t, a, "text", "我的弹幕")
	clickButton(t, a, "send", "发送")
	ownOnStage := `(text) => Array.from(document.querySelectorAll('#bullets .bullet.mine')).some(el => el.innerText === text)`
	describeStage := `Array.from(document.querySelectorAll('#bullets .bullet'), e => e.className + ':' + e.innerText).slice(0, 20).join(' | ')`
	waitFor(t, a, "own bullet, marked, on the sender's stage during the flood", 3*time.Second, describeStage, ownOnStage, "我的弹幕")
	waitFor(t, a, "own comment marked 已发送", 5*time.Second,
		`Array.from(document.querySelectorAll('#recent li.mine'), e => e.innerText).join(' | ')`,
		`() => Array.from(document.querySelectorAll('#recent li.mine')).some(el => el.innerText.includes('我的弹幕') && el.innerText.includes('已发送'))`)

	apiCall(t, s, "POST", "/api/publish", map[string]any{"channel": "live:flood", "data": map[string]any{"text": "感谢老板的火箭"}, "priority": true}, nil)
	waitFor(t, b, "the priority comment on the other page", 5*time.Second,
		`Array.from(document.querySelectorAll('#recent li'), e => e.innerText).slice(0, 10).join(' | ')`,
		`() => Array.from(document.querySelectorAll('#recent li')).some(el => el.innerText.includes('感谢老板的火箭'))`)
	saveShot(t, a, "live-flow.png")
}
