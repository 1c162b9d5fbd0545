package config

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/realtime"
)

// tickerLike is a feature's settings, bound the way a feature binds them.
type tickerLike struct {
	on       bool
	interval time.Duration
	symbols  string
	key      string
}

func (t *tickerLike) extension() Extension {
	t.interval, t.symbols = 500*time.Millisecond, "600519,AAPL"
	interval := DurationSetting("TICKER_INTERVAL", "ticker-interval", "how often", &t.interval)
	interval.Validate = func() error {
		if t.interval < 10*time.Millisecond {
			return errors.New("must be at least 10ms")
		}
		return nil
	}
	key := StringSetting("TICKER_KEY", "ticker-key", "a secret", &t.key)
	key.Secret = true
	return Extension{
		Name:       "ticker",
		Namespaces: realtime.Namespaces{"quote": {HistorySize: 1, HistoryTTL: time.Hour}},
		Settings: []Setting{
			BoolSetting("TICKER_SIMULATOR", "ticker-simulator", "simulate quotes", &t.on),
			interval,
			StringSetting("TICKER_SYMBOLS", "ticker-symbols", "symbols", &t.symbols),
			key,
		},
	}
}

func TestExtensionSettingsFromEnvThenFlags(t *testing.T) {
	var tk tickerLike
	cfg, err := Load([]string{"-ticker-simulator", "-ticker-interval", "2s"},
		env(map[string]string{"TICKER_INTERVAL": "1s", "TICKER_SYMBOLS": "AAPL", "TICKER_KEY": "hunter2"}),
		io.Discard, testExtension(), tk.extension())
	if err != nil {
		t.Fatal(err)
	}
	if !tk.on || tk.interval != 2*time.Second || tk.symbols != "AAPL" {
		t.Errorf("settings = %+v, want on (bare flag), 2s (flag over env), AAPL (env)", tk)
	}
	if _, ok := cfg.Namespaces["quote"]; !ok {
		t.Error("the extension's namespace is missing")
	}
	got := strings.Join(cfg.Effective(), " ")
	for _, want := range []string{"TICKER_SIMULATOR=on", "TICKER_INTERVAL=2s", "TICKER_SYMBOLS=AAPL", "TICKER_KEY=***"} {
		if !strings.Contains(got, want) {
			t.Errorf("Effective() lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, "hunter2") {
		t.Error("a secret extension setting was printed")
	}
}

func TestExtensionSettingsAreValidatedAndListed(t *testing.T) {
	var tk tickerLike
	_, err := Load(nil, env(map[string]string{"TICKER_INTERVAL": "1ms", "PORT": "0"}), io.Discard, testExtension(), tk.extension())
	if err == nil || !strings.Contains(err.Error(), "TICKER_INTERVAL: must be at least 10ms") || !strings.Contains(err.Error(), "PORT") {
		t.Errorf("err = %v, want the extension's and the core's errors together", err)
	}
	_, err = Load(nil, env(map[string]string{"TICKER_SIMULATOR": "maybe"}), io.Discard, testExtension(), tk.extension())
	if err == nil || !strings.Contains(err.Error(), `TICKER_SIMULATOR="maybe": must be on or off`) {
		t.Errorf("err = %v", err)
	}

	var out strings.Builder
	if _, err := Load([]string{"-h"}, env(nil), &out, testExtension(), tk.extension()); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(out.String(), "-ticker-interval") || !strings.Contains(out.String(), `default "500ms"`) {
		t.Errorf("help lacks the extension's setting and default:\n%s", out.String())
	}
}

func TestExtensionsMayNotClash(t *testing.T) {
	var a, b tickerLike
	for name, exts := range map[string][]Extension{
		"same namespace":  {testExtension(), {Name: "other", Namespaces: realtime.Namespaces{"chat": {}}}},
		"same setting":    {testExtension(), a.extension(), {Name: "b", Settings: b.extension().Settings[:1]}},
		"core's setting":  {testExtension(), {Name: "b", Settings: []Setting{StringSetting("PORT", "port2", "", new(string))}}},
		"core's flag":     {testExtension(), {Name: "b", Settings: []Setting{StringSetting("PORT2", "port", "", new(string))}}},
		"bad name":        {testExtension(), {Name: "b", Settings: []Setting{StringSetting("lower", "x", "", new(string))}}},
		"no namespace":    {},
		"namespace typos": {{Name: "b", Namespaces: realtime.Namespaces{"Bad Name": {}}}},
	} {
		if _, err := Load(nil, env(nil), io.Discard, exts...); err == nil {
			t.Errorf("%s: Load succeeded", name)
		}
	}
}
