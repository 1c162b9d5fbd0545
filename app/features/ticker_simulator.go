package features

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/duplex/duplex/realtime"
)

const (
	// priceLimit is how far a simulated price may move from the previous
	// close: ±10 %, the daily limit of China's A-share market.
	priceLimit = 0.10
	// stepVolatility is the standard deviation of one step's relative move.
	stepVolatility = 0.002
)

// tickerSimulator publishes a random walk for every symbol, every
// interval, while TICKER_SIMULATOR is on. Start and Stop are called by the
// app, once each; the walk runs on one goroutine that Stop ends.
type tickerSimulator struct {
	settings *tickerSettings
	serviceLoop
}

// Start begins the walk, unless the simulator is off.
func (s *tickerSimulator) Start(_ context.Context, hub *realtime.Hub) error {
	if !s.settings.simulate {
		return nil
	}
	walk := newRandomWalk(s.settings.parsed, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)))
	s.start(func(ctx context.Context) { s.run(ctx, hub, walk) })
	return nil
}

// Stop ends the walk and waits for its goroutine, or for ctx.
func (s *tickerSimulator) Stop(ctx context.Context) error { return s.stop(ctx) }

func (s *tickerSimulator) run(ctx context.Context, hub *realtime.Hub, walk *randomWalk) {
	var failing sync.Once // log the first failure, not one per tick
	every(ctx, s.settings.interval, func(now time.Time) {
		for _, q := range walk.step(now) {
			data, _ := json.Marshal(q) // plain struct: cannot fail
			if _, err := hub.Publish(ctx, QuoteNamespace+":"+q.Symbol, data, nil); err != nil && !errors.Is(err, context.Canceled) {
				failing.Do(func() { slog.Warn("ticker simulator: publish failed", "err", err) })
			}
		}
	})
}

// randomWalk moves each symbol's price by a small random step, kept
// within priceLimit of its previous close. It is used by one goroutine.
type randomWalk struct {
	symbols []Symbol
	prices  []float64
	rnd     *rand.Rand
}

func newRandomWalk(symbols []Symbol, rnd *rand.Rand) *randomWalk {
	w := &randomWalk{symbols: symbols, prices: make([]float64, len(symbols)), rnd: rnd}
	for i, s := range symbols {
		w.prices[i] = s.PrevClose
	}
	return w
}

// step moves every price once and returns the quotes, stamped now.
func (w *randomWalk) step(now time.Time) []Quote {
	out := make([]Quote, len(w.symbols))
	stamp := now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	for i, s := range w.symbols {
		lo, hi := roundUp(s.PrevClose*(1-priceLimit)), roundDown(s.PrevClose*(1+priceLimit))
		p := round2(w.prices[i] * (1 + w.rnd.NormFloat64()*stepVolatility))
		p = math.Min(math.Max(p, lo), hi)
		w.prices[i] = p
		change := round2(p - s.PrevClose)
		out[i] = Quote{
			Symbol: s.Code, Price: p, PrevClose: s.PrevClose, Change: change,
			Percent: round2(change / s.PrevClose * 100), Time: stamp,
		}
	}
	return out
}

// Prices are in cents: rounding keeps them to two decimals, and the limits
// are rounded inward so that a rounded price never leaves them.
func round2(v float64) float64    { return math.Round(v*100) / 100 }
func roundUp(v float64) float64   { return math.Ceil(v*100-1e-9) / 100 }
func roundDown(v float64) float64 { return math.Floor(v*100+1e-9) / 100 }
