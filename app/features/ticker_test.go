package features

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/realtime"
)

func TestRandomWalkStaysWithinTheDailyLimit(t *testing.T) {
	symbols := []Symbol{{Code: "600519", Name: "贵州茅台", PrevClose: 1700}, {Code: "000001", Name: "平安银行", PrevClose: 11.5}}
	w := newRandomWalk(symbols, rand.New(rand.NewPCG(1, 2)))
	atLimit := 0
	for range 100_000 {
		for i, q := range w.step(time.Unix(0, 0)) {
			prev := symbols[i].PrevClose
			if q.Price < prev*(1-priceLimit)-1e-9 || q.Price > prev*(1+priceLimit)+1e-9 {
				t.Fatalf("%s at %.2f: outside ±10%% of %.2f", q.Symbol, q.Price, prev)
			}
			if cents := q.Price * 100; math.Abs(cents-math.Round(cents)) > 1e-6 {
				t.Fatalf("%s at %v: not whole cents", q.Symbol, q.Price)
			}
			if q.Change != round2(q.Price-prev) || q.Percent != round2(q.Change/prev*100) || q.PrevClose != prev {
				t.Fatalf("inconsistent quote %+v", q)
			}
			if q.Price == roundDown(prev*(1+priceLimit)) || q.Price == roundUp(prev*(1-priceLimit)) {
				atLimit++
			}
		}
	}
	// 100,000 steps of 0.2 % wander far past 10 %: the bound was tested.
	if atLimit == 0 {
		t.Error("the walk never reached its limit, so the bound was not exercised")
	}
}

func TestTickerSettings(t *testing.T) {
	load := func(env map[string]string) (*Feature, error) {
		f := Ticker()
		_, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard, ConfigExtensions([]*Feature{f})...)
		return f, err
	}
	f, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	sim := f.Services[0].(*tickerSimulator)
	if sim.settings.simulate || sim.settings.interval != 500*time.Millisecond || len(sim.settings.parsed) != 4 {
		t.Errorf("defaults = %+v, want the simulator off, every 500ms, four symbols", sim.settings)
	}
	if got := f.Pages[0].Data["symbols"](nil); !strings.Contains(got, `{"code":"600519","name":"贵州茅台","prev_close":1700}`) {
		t.Errorf("page data symbols = %s", got)
	}
	for _, bad := range []map[string]string{
		{"TICKER_SYMBOLS": "AAPL"},
		{"TICKER_SYMBOLS": "AAPL:Apple:-1"},
		{"TICKER_SYMBOLS": "AAPL:Apple:1,AAPL:Apple:2"},
		{"TICKER_SYMBOLS": "A#B:x:1"},
		{"TICKER_SYMBOLS": " , "},
		{"TICKER_INTERVAL": "1ms"},
		{"TICKER_SIMULATOR": "sometimes"},
	} {
		if _, err := load(bad); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}

func TestTickerSimulatorPublishesUntilStopped(t *testing.T) {
	f := Ticker()
	env := map[string]string{"TICKER_SIMULATOR": "on", "TICKER_INTERVAL": "10ms", "TICKER_SYMBOLS": "AAPL:Apple:190"}
	cfg, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard, ConfigExtensions([]*Feature{f})...)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := realtime.NewHub(realtime.HubConfig{Namespaces: cfg.Namespaces})
	if err != nil {
		t.Fatal(err)
	}
	sim := f.Services[0].(*tickerSimulator)
	ctx := context.Background()
	if err := sim.Start(ctx, hub); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, err := hub.History(ctx, "quote:AAPL", nil, 1)
		if err == nil && len(h.Publications) == 1 && h.Publications[0].Offset >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no quotes published: %+v %v", h, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := sim.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sim.done:
	default:
		t.Fatal("Stop returned before the walk's goroutine ended")
	}
}
