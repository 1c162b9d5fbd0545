package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/duplex/duplex/internal/testbin"
)

// scoresServer starts duplex with the HTTP API on, the default matches,
// and the score board's simulator on (a step every 50 ms) or off; port 0
// picks a free one.
func scoresServer(t *testing.T, port int, simulate bool) *testbin.Server {
	t.Helper()
	sim := "SCORES_SIMULATOR=off"
	if simulate {
		sim = "SCORES_SIMULATOR=on"
	}
	return testbin.Start(t, testbin.Options{
		Port: port,
		Env: []string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text", "API_KEY=" + testAPIKey,
			sim, "SCORES_INTERVAL=50ms"},
	})
}

// scoresRowJS, called with a match id, is its row as
// "home|away|period|status|highlighted sides".
const scoresRowJS = `(id) => {
	const tr = document.querySelector('#rows tr[data-match="' + id + '"]');
	if (!tr) return 'no row';
	const text = c => tr.querySelector('.' + c).innerText;
	const lit = Array.from(tr.querySelectorAll('.score span.scored'), s => s.className.split(' ')[0]).join(',');
	return [text('home-score'), text('away-score'), text('period'), text('state'), lit].join('|');
}`

// scoresBoardJS is every row's score and period, one row per line.
const scoresBoardJS = `Array.from(document.querySelectorAll('#rows tr'), tr => tr.querySelector('td.score').innerText + ' ' + tr.querySelector('td.period').innerText).join('\n')`

func waitScoresRow(t *testing.T, tab context.Context, id, want string) {
	t.Helper()
	waitFor(t, tab, id+" shows "+want, 10*time.Second, `(`+scoresRowJS+`)('`+id+`')`,
		`(id, want) => (`+scoresRowJS+`)(id) === want`, id, want)
}

// TestScoresBrowser: /scores in headless Chromium. A score published
// through the API before the page opens shows at once (latest on
// subscribe); a goal updates the row live and highlights the side that
// scored for a moment. After a server restart (with the simulator on)
// the page reconnects by itself and shows the simulated matches being
// played, scoring, and ending.
func TestScoresBrowser(t *testing.T) {
	first := scoresServer(t, 0, false)
	publishScore := func(id string, home, away int, status, period string, minute int) {
		t.Helper()
		apiCall(t, first, "POST", "/api/publish", map[string]any{"channel": "score:" + id, "data": map[string]any{
			"match": id, "home": home, "away": away, "status": status, "period": period, "minute": minute,
			"time": time.Now().UTC().Format(time.RFC3339)}}, nil)
	}
	publishScore("csl-1", 1, 0, "live", "下半场", 67)

	tab := newBrowser(t, 1000, 760, false)
	navigate(t, tab, first, "/scores")
	waitVisibleText(t, tab, "status", rtConnected, 10*time.Second)
	recordStatus(t, tab)
	// Published before the page opened: shown at once, not highlighted.
	waitScoresRow(t, tab, "csl-1", "1|0|下半场 67′|进行中|")
	waitScoresRow(t, tab, "nba-1", "—|—|—|—|")

	publishScore("csl-1", 2, 0, "live", "下半场", 71)
	waitScoresRow(t, tab, "csl-1", "2|0|下半场 71′|进行中|home-score")
	// The highlight is for a moment only.
	waitScoresRow(t, tab, "csl-1", "2|0|下半场 71′|进行中|")
	publishScore("csl-1", 2, 0, "finished", "下半场", 90)
	waitScoresRow(t, tab, "csl-1", "2|0|下半场 90′|已结束|")

	if code := first.Stop(); code != 0 {
		t.Fatalf("server exited %d after SIGTERM, want 0", code)
	}
	waitFor(t, tab, "status 连接已断开（代码 1001）…", 5*time.Second, `JSON.stringify(window.statusSeen)`,
		`() => window.statusSeen.some(s => /^status closed\|连接已断开（代码 1001），\d+\.\d 秒后重连…$/.test(s))`)

	scoresServer(t, first.Port, true)
	waitVisibleText(t, tab, "status", rtConnected, 25*time.Second)
	// The new server's simulator starts every match again from 0:0.
	waitFor(t, tab, "simulated scores for every match", 10*time.Second, scoresBoardJS,
		`() => Array.from(document.querySelectorAll('#rows .score span')).every(s => /^\d+$/.test(s.innerText))`)
	seen, err := chromedp.Run(tab, chromedp.Evaluate[string](scoresBoardJS))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the board to move", 10*time.Second, scoresBoardJS, `(seen) => (`+scoresBoardJS+`) !== seen`, seen)
	waitFor(t, tab, "a simulated point highlighted", 10*time.Second, scoresBoardJS,
		`() => document.querySelector('#rows .score span.scored') !== null`)
	// Basketball (48 minutes, a step each 50 ms) ends within seconds.
	waitFor(t, tab, "the basketball match to end", 15*time.Second, `(`+scoresRowJS+`)('nba-1')`,
		`() => /^\d+\|\d+\|(第4节|加时\d) \d+′\|已结束\|/.test((`+scoresRowJS+`)('nba-1'))`)
}
