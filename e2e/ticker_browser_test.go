package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/duplex/duplex/internal/testbin"
)

// tickerServer starts duplex with the HTTP API on, and the ticker's
// simulator on or off; port 0 picks a free one.
func tickerServer(t *testing.T, port int, simulate bool) *testbin.Server {
	t.Helper()
	sim := "TICKER_SIMULATOR=off"
	if simulate {
		sim = "TICKER_SIMULATOR=on"
	}
	return testbin.Start(t, testbin.Options{
		Port: port,
		Env: []string{"HOST=127.0.0.1", "SHUTDOWN_TIMEOUT=5s", "LOG_FORMAT=text", "API_KEY=" + testAPIKey,
			sim, "TICKER_INTERVAL=100ms"},
	})
}

// tickerRowJS, called with a symbol code, is its row as
// "price|change|percent|colour" (up, down or flat).
const tickerRowJS = `(code) => {
	const tr = document.querySelector('#rows tr[data-code="' + code + '"]');
	if (!tr) return 'no row';
	const td = c => tr.querySelector('td.' + c).innerText;
	return [td('price'), td('change'), td('percent'), tr.className.replace(/ ?flash-(up|down)/, '')].join('|');
}`

// tickerPricesJS is every row's price, comma-separated.
const tickerPricesJS = `Array.from(document.querySelectorAll('#rows td.price'), td => td.innerText).join(',')`

func waitTickerRow(t *testing.T, tab context.Context, code, want string) {
	t.Helper()
	waitFor(t, tab, code+" shows "+want, 10*time.Second, `(`+tickerRowJS+`)('`+code+`')`,
		`(code, want) => (`+tickerRowJS+`)(code) === want`, code, want)
}

// TestTickerBrowser: /ticker in headless Chromium. A quote published
// through the API before the page opens shows at once (latest on
// subscribe), in red when up and green when down; a new one updates the
// row live. After a server restart (with the simulator on) the page
// reconnects by itself and shows the simulator's prices, which keep
// moving within ±10 % of the previous close.
func TestTickerBrowser(t *testing.T) {
	first := tickerServer(t, 0, false)
	publishQuote := func(s *testbin.Server, code string, price, prev float64) {
		t.Helper()
		change := price - prev
		apiCall(t, s, "POST", "/api/publish", map[string]any{"channel": "quote:" + code, "data": map[string]any{
			"symbol": code, "price": price, "prev_close": prev, "change": change, "percent": change / prev * 100,
			"time": time.Now().UTC().Format(time.RFC3339)}}, nil)
	}
	publishQuote(first, "600519", 1712.5, 1700)
	publishQuote(first, "000001", 11.27, 11.5)

	tab := newBrowser(t, 1000, 760, false)
	navigate(t, tab, first, "/ticker")
	waitVisibleText(t, tab, "status", rtConnected, 10*time.Second)
	recordStatus(t, tab)
	// Published before the page opened: shown at once, red up, green down.
	waitTickerRow(t, tab, "600519", "1712.50|+12.50|+0.74%|up")
	waitTickerRow(t, tab, "000001", "11.27|-0.23|-2.00%|down")
	waitTickerRow(t, tab, "AAPL", "—|—|—|")

	publishQuote(first, "600519", 1690, 1700)
	waitTickerRow(t, tab, "600519", "1690.00|-10.00|-0.59%|down")

	if code := first.Stop(); code != 0 {
		t.Fatalf("server exited %d after SIGTERM, want 0", code)
	}
	waitFor(t, tab, "status 连接已断开（代码 1001）…", 5*time.Second, `JSON.stringify(window.statusSeen)`,
		`() => window.statusSeen.some(s => /^status closed\|连接已断开（代码 1001），\d+\.\d 秒后重连…$/.test(s))`)

	tickerServer(t, first.Port, true)
	waitVisibleText(t, tab, "status", rtConnected, 25*time.Second)
	// The simulator starts from the previous close (AAPL 190.00) and
	// walks; every symbol shows a price, and the prices keep changing.
	waitFor(t, tab, "simulated prices for every symbol", 10*time.Second, tickerPricesJS,
		`() => Array.from(document.querySelectorAll('#rows td.price')).every(td => td.innerText !== '—')`)
	seen, err := chromedp.Run(tab, chromedp.Evaluate[string](tickerPricesJS))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the prices to move", 10*time.Second, tickerPricesJS, `(seen) => (`+tickerPricesJS+`) !== seen`, seen)
	aapl := `parseFloat(document.querySelector('#rows tr[data-code="AAPL"] td.price').innerText)`
	waitFor(t, tab, "AAPL within ±10 % of 190", time.Second, aapl, `() => { const p = `+aapl+`; return p >= 171 && p <= 209; }`)
}
