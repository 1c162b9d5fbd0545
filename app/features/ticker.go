package features

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/handlers"
	"github.com/duplex/duplex/realtime"
)

// Ticker is the live stock and fund quotes (股票基金实时报价): page /ticker
// (views/ticker.html, public/js/ticker.js) shows a table of symbols, each
// on its own channel quote:<code> where only the server publishes: a
// backend through POST /api/publish, or the built-in random-walk
// simulator (TICKER_SIMULATOR=on). A channel keeps its latest quote,
// which a page gets at once when it subscribes (latest: 1), and a slow
// reader loses old quotes rather than its connection. Files:
// app/features/ticker*.go, views/ticker.html, public/js/ticker.js,
// e2e/ticker_browser_test.go.
func Ticker() *Feature {
	t := &tickerSettings{
		symbols:  defaultTickerSymbols,
		interval: defaultTickerInterval,
	}
	interval := config.DurationSetting("TICKER_INTERVAL", "ticker-interval",
		"how often the simulator publishes a quote for every symbol", &t.interval)
	interval.Validate = atLeast(&t.interval, minTickerInterval)
	symbols := config.StringSetting("TICKER_SYMBOLS", "ticker-symbols",
		"the ticker's symbols, comma-separated code:name:previous close", &t.symbols)
	symbols.Validate = t.parseSymbols
	sim := &tickerSimulator{settings: t}
	return &Feature{
		Name: "ticker",
		Namespaces: realtime.Namespaces{QuoteNamespace: {
			// The latest quote is all a late joiner needs; a reader that
			// cannot keep up skips to newer quotes.
			HistorySize: 1, HistoryTTL: 24 * time.Hour,
			SlowPolicy: realtime.PolicyDropOldest,
		}},
		Settings: []config.Setting{
			config.BoolSetting("TICKER_SIMULATOR", "ticker-simulator",
				"publish simulated quotes (a random walk within ±10% of the previous close)", &t.simulate),
			interval,
			symbols,
		},
		Pages:    []Page{{Path: "/ticker", View: "ticker", Title: "股票基金实时报价", Data: handlers.PageData{"symbols": t.symbolsJSON}}},
		Services: []Service{sim},
	}
}

// QuoteNamespace is the ticker's namespace: channel quote:<code> carries
// the quotes of one symbol.
const QuoteNamespace = "quote"

const (
	defaultTickerSymbols  = "600519:贵州茅台:1700.00,000001:平安银行:11.50,510300:沪深300ETF:3.90,AAPL:Apple:190.00"
	defaultTickerInterval = 500 * time.Millisecond
	minTickerInterval     = 10 * time.Millisecond
	maxTickerSymbols      = 50
)

// symbolCode is what may follow "quote:" (a channel name's own rules,
// kept short).
var symbolCode = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,16}$`)

// Symbol is one row of the ticker.
type Symbol struct {
	Code      string  `json:"code"`
	Name      string  `json:"name"`
	PrevClose float64 `json:"prev_close"`
}

// Quote is one publication on quote:<code>, from the simulator or a
// backend: the price, its change from the previous close, and when.
type Quote struct {
	Symbol    string  `json:"symbol"`
	Price     float64 `json:"price"`
	PrevClose float64 `json:"prev_close"`
	Change    float64 `json:"change"`
	Percent   float64 `json:"percent"`
	Time      string  `json:"time"` // RFC 3339 with milliseconds
}

// tickerSettings are the ticker's settings, set by config.Load and only
// read afterwards.
type tickerSettings struct {
	simulate bool
	interval time.Duration
	symbols  string
	parsed   []Symbol // from symbols, by parseSymbols (run by Load's validation)
}

// parseSymbols reads "code:name:previous close,…".
func (t *tickerSettings) parseSymbols() error {
	items, err := listItems(t.symbols, "code:name:previous close")
	if err != nil {
		return err
	}
	out := make([]Symbol, 0, len(items))
	seen := map[string]bool{}
	for _, it := range items {
		code, name := it[0], it[1]
		prev, err := strconv.ParseFloat(it[2], 64)
		switch {
		case !symbolCode.MatchString(code):
			return fmt.Errorf("symbol code %q must be 1-16 of A-Z a-z 0-9 _ . -", code)
		case seen[code]:
			return fmt.Errorf("symbol %s is listed twice", code)
		case name == "":
			return fmt.Errorf("symbol %s has no name", code)
		case err != nil || prev <= 0:
			return fmt.Errorf("symbol %s: previous close %q must be a positive number", code, it[2])
		}
		seen[code] = true
		out = append(out, Symbol{Code: code, Name: name, PrevClose: prev})
	}
	if len(out) == 0 || len(out) > maxTickerSymbols {
		return fmt.Errorf("must list 1 to %d symbols", maxTickerSymbols)
	}
	t.parsed = out
	return nil
}

// symbolsJSON gives /ticker its symbol list, which the script reads from
// data-symbols.
func (t *tickerSettings) symbolsJSON(*fiber.Ctx) string {
	b, _ := json.Marshal(t.parsed) // plain structs: cannot fail
	return string(b)
}
