package features

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/realtime"
)

func loadScores(env map[string]string) (*Feature, config.Config, error) {
	f := Scores()
	cfg, err := config.Load(nil, func(k string) string { return env[k] }, io.Discard, ConfigExtensions([]*Feature{f})...)
	return f, cfg, err
}

// scoresLoaded is the feature with env loaded, and its simulator.
func scoresLoaded(t *testing.T, env map[string]string) (*Feature, *scoresSimulator, config.Config) {
	t.Helper()
	f, cfg, err := loadScores(env)
	if err != nil {
		t.Fatal(err)
	}
	return f, f.Services[0].(*scoresSimulator), cfg
}

func TestScoresSettings(t *testing.T) {
	f, sim, _ := scoresLoaded(t, nil)
	if sim.settings.simulate || sim.settings.interval != time.Second || len(sim.settings.parsed) != 3 {
		t.Errorf("defaults = %+v, want the simulator off, every 1s, three matches", sim.settings)
	}
	if got := f.Pages[0].Data["matches"](nil); !strings.Contains(got, `{"id":"csl-1","sport":"football","league":"中超","home":"上海海港","away":"山东泰山"}`) {
		t.Errorf("page data matches = %s", got)
	}
	for _, bad := range []map[string]string{
		{"SCORES_MATCHES": "csl-1:football:中超:上海海港"},
		{"SCORES_MATCHES": "csl-1:curling:中超:上海海港:山东泰山"},
		{"SCORES_MATCHES": "a:football:L:A:B,a:football:L:C:D"},
		{"SCORES_MATCHES": "a#b:football:L:A:B"},
		{"SCORES_MATCHES": "a:football:L:A:A"},
		{"SCORES_MATCHES": "a:football: :A:B"},
		{"SCORES_MATCHES": "a:football:L:" + strings.Repeat("队", maxScoresNameRunes+1) + ":B"},
		{"SCORES_MATCHES": " , "},
		{"SCORES_INTERVAL": "1ms"},
		{"SCORES_SIMULATOR": "sometimes"},
	} {
		if _, _, err := loadScores(bad); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
}

// TestScoresSimulatedPlay: over many seeded games of every
// sport, a side's score never goes down, the clock moves on every step of
// play, every match ends, and a finished match never changes again.
func TestScoresSimulatedPlay(t *testing.T) {
	// Every match ends well within maxSteps (the longest, table tennis,
	// in a few hundred rallies); the steps after show it stays ended.
	const games, maxSteps = 300, 5000
	matches := []Match{
		{ID: "f", Sport: SportFootball, League: "中超", Home: "上海海港", Away: "山东泰山"},
		{ID: "b", Sport: SportBasketball, League: "NBA", Home: "湖人", Away: "勇士"},
		{ID: "t", Sport: SportTableTennis, League: "乒乓球", Home: "樊振东", Away: "王楚钦"},
	}
	goals, overtimes := 0, 0
	for seed := range uint64(games) {
		b := newScoreboard(matches, rand.New(rand.NewPCG(seed, 1)))
		last := map[string]Score{}
		for _, s := range b.all(time.Unix(0, 0)) {
			last[s.Match] = s
		}
		finishedAt := map[string]int{}
		for step := 1; step <= maxSteps; step++ {
			// The clock of a match in play moves on every step (the last
			// one, that ends it, included).
			playedBefore := map[string]int{}
			for _, m := range b.matches {
				if m.status == StatusLive {
					playedBefore[m.ID] = m.played
				}
			}
			for _, s := range b.step(time.Unix(int64(step), 0)) {
				prev := last[s.Match]
				if at, done := finishedAt[s.Match]; done {
					t.Fatalf("seed %d: %s changed at step %d after it finished at %d: %+v", seed, s.Match, step, at, s)
				}
				if s.Home < prev.Home || s.Away < prev.Away {
					t.Fatalf("seed %d: %s went from %d:%d to %d:%d", seed, s.Match, prev.Home, prev.Away, s.Home, s.Away)
				}
				if s.Minute < prev.Minute {
					t.Fatalf("seed %d: %s's clock went back from %d to %d", seed, s.Match, prev.Minute, s.Minute)
				}
				goals += s.Home + s.Away - prev.Home - prev.Away
				if s.Status == StatusFinished {
					finishedAt[s.Match] = step
				}
				last[s.Match] = s
			}
			for _, m := range b.matches {
				if before, live := playedBefore[m.ID]; live && m.played != before+1 {
					t.Fatalf("seed %d: %s in play but its clock went from %d to %d", seed, m.ID, before, m.played)
				}
			}
		}
		if len(finishedAt) < len(matches) {
			t.Fatalf("seed %d: matches still playing after %d steps: %+v", seed, maxSteps, last)
		}
		f, bb, tt := last["f"], last["b"], last["t"]
		if f.Minute != 90 || f.Period != "下半场" {
			t.Errorf("seed %d: football ended at %d′ %s, want 90′ 下半场", seed, f.Minute, f.Period)
		}
		if bb.Home == bb.Away || bb.Minute < 48 || (bb.Minute-48)%5 != 0 {
			t.Errorf("seed %d: basketball ended %d:%d at %d′", seed, bb.Home, bb.Away, bb.Minute)
		}
		if bb.Minute > 48 {
			overtimes++
		}
		if max(tt.Home, tt.Away) != gamesToWin || min(tt.Home, tt.Away) >= gamesToWin {
			t.Errorf("seed %d: table tennis ended %d:%d in games", seed, tt.Home, tt.Away)
		}
	}
	// The checks above only mean something if play scored and ran into
	// overtime now and then.
	if goals == 0 || overtimes == 0 {
		t.Errorf("%d points and %d overtimes in %d games: the simulation did not exercise the checks", goals, overtimes, games)
	}
}

func TestScoresPeriods(t *testing.T) {
	for _, c := range []struct {
		sport  string
		played int
		want   string
	}{
		{SportFootball, 0, "上半场"}, {SportFootball, 45, "上半场"}, {SportFootball, 46, "下半场"}, {SportFootball, 90, "下半场"},
		{SportBasketball, 12, "第1节"}, {SportBasketball, 13, "第2节"}, {SportBasketball, 48, "第4节"},
		{SportBasketball, 49, "加时1"}, {SportBasketball, 53, "加时1"}, {SportBasketball, 54, "加时2"},
	} {
		m := &simMatch{rules: sports[c.sport], status: StatusLive, played: c.played}
		if got := m.period(); got != c.want {
			t.Errorf("%s at %d′: %q, want %q", c.sport, c.played, got, c.want)
		}
	}
}

func TestScoresSimulatorPublishesUntilStopped(t *testing.T) {
	_, sim, cfg := scoresLoaded(t, map[string]string{"SCORES_SIMULATOR": "on", "SCORES_INTERVAL": "10ms",
		"SCORES_MATCHES": "m1:basketball:NBA:湖人:勇士"})
	hub, err := realtime.NewHub(realtime.HubConfig{Namespaces: cfg.Namespaces})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := sim.Start(ctx, hub); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, err := hub.History(ctx, "score:m1", nil, 1)
		var s Score
		if err == nil && len(h.Publications) == 1 && json.Unmarshal(h.Publications[0].Data, &s) == nil && s.Minute >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scores published: %+v %v", h, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := sim.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sim.done:
	default:
		t.Fatal("Stop returned before the simulator's goroutine ended")
	}
}

func TestScoresSimulatorOffPublishesNothingAndStops(t *testing.T) {
	_, sim, _ := scoresLoaded(t, nil)
	if err := sim.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if sim.done != nil {
		t.Fatal("the simulator started although SCORES_SIMULATOR is off")
	}
	if err := sim.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
