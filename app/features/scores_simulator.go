package features

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/duplex/duplex/realtime"
)

// scoresSimulator plays every listed match through, one step every
// interval, while SCORES_SIMULATOR is on: it publishes each match's state
// at once, then every change. Start and Stop are called by the app, once
// each; the play runs on one goroutine that Stop ends.
type scoresSimulator struct {
	settings *scoresSettings
	serviceLoop
}

// Start begins play, unless the simulator is off.
func (s *scoresSimulator) Start(_ context.Context, hub *realtime.Hub) error {
	if !s.settings.simulate {
		return nil
	}
	board := newScoreboard(s.settings.parsed, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)))
	s.start(func(ctx context.Context) { s.run(ctx, hub, board) })
	return nil
}

// Stop ends play and waits for its goroutine, or for ctx.
func (s *scoresSimulator) Stop(ctx context.Context) error { return s.stop(ctx) }

func (s *scoresSimulator) run(ctx context.Context, hub *realtime.Hub, board *scoreboard) {
	var failing sync.Once // log the first failure, not one per step
	publish := func(scores []Score) {
		for _, sc := range scores {
			data, _ := json.Marshal(sc) // plain struct: cannot fail
			if _, err := hub.Publish(ctx, ScoreNamespace+":"+sc.Match, data, nil); err != nil && !errors.Is(err, context.Canceled) {
				failing.Do(func() { slog.Warn("scores simulator: publish failed", "err", err) })
			}
		}
	}
	publish(board.all(time.Now()))
	every(ctx, s.settings.interval, func(now time.Time) { publish(board.step(now)) })
}

const (
	// kickoffStagger is how many steps apart the simulated matches kick
	// off, so that the board shows all three states at once for a while.
	kickoffStagger = 5
	// goalChance is a football side's chance to score in one minute:
	// about 1.35 goals a side in 90 minutes.
	goalChance = 0.015
	// possessionsPerMinute, basketChance and basketPoints give a
	// basketball side about 2.3 points a minute, some 110 in a game.
	possessionsPerMinute = 2
	basketChance         = 0.5
	// A table-tennis game is won at gamePoints with a lead of two; the
	// match at gamesToWin games (best of five).
	gamePoints = 11
	gamesToWin = 3
)

// sportRules say how the simulator plays a sport's clock. A timed sport
// plays periods of periodMinutes, one minute a step, then, while level,
// overtimes of overtimeMinutes (0: a draw stands); an untimed one
// (periodMinutes 0, table tennis) plays a rally a step.
type sportRules struct {
	periods         int
	periodMinutes   int
	overtimeMinutes int
	periodName      func(n int) string // n from 1; past periods, an overtime (timed sports only)
	// minute is what one minute of play adds to one side's score.
	minute func(rnd *rand.Rand) int
}

// basketPoints are what a scoring possession may be worth, drawn evenly:
// a free throw one time in ten, a two half the time, else a three.
var basketPoints = [...]int{1, 2, 2, 2, 2, 2, 3, 3, 3, 3}

// sports are the sports the simulator plays, and so SCORES_MATCHES accepts.
var sports = map[string]*sportRules{
	SportFootball: {
		periods: 2, periodMinutes: 45,
		periodName: func(n int) string { return [...]string{"上半场", "下半场"}[n-1] },
		minute: func(rnd *rand.Rand) int {
			if rnd.Float64() < goalChance {
				return 1
			}
			return 0
		},
	},
	SportBasketball: {
		periods: 4, periodMinutes: 12, overtimeMinutes: 5,
		periodName: func(n int) string {
			if n > 4 {
				return fmt.Sprintf("加时%d", n-4)
			}
			return fmt.Sprintf("第%d节", n)
		},
		minute: func(rnd *rand.Rand) int {
			points := 0
			for range possessionsPerMinute {
				if rnd.Float64() < basketChance {
					points += basketPoints[rnd.IntN(len(basketPoints))]
				}
			}
			return points
		},
	},
	SportTableTennis: {}, // untimed: games of rallies, see rally
}

// simMatch is one match as the simulator plays it.
type simMatch struct {
	Match
	rules   *sportRules
	kickoff int // steps before play begins
	steps   int // steps taken, the wait before kick-off included
	played  int // the clock: minutes (timed) or rallies (untimed) played
	status  string
	home    int // goals, points, or games won
	away    int
	// points in the current table-tennis game, and the last game's
	// result once the match has ended.
	gameHome, gameAway int
}

// scoreboard plays every match. It is used by one goroutine.
type scoreboard struct {
	matches []*simMatch
	rnd     *rand.Rand
}

func newScoreboard(matches []Match, rnd *rand.Rand) *scoreboard {
	b := &scoreboard{rnd: rnd}
	for i, m := range matches {
		b.matches = append(b.matches, &simMatch{Match: m, rules: sports[m.Sport], kickoff: i * kickoffStagger, status: StatusScheduled})
	}
	return b
}

// all is every match's score, stamped now.
func (b *scoreboard) all(now time.Time) []Score {
	out := make([]Score, len(b.matches))
	for i, m := range b.matches {
		out[i] = m.score(now)
	}
	return out
}

// step plays one step of every match and returns the scores of those
// that changed, stamped now. A finished match does not change.
func (b *scoreboard) step(now time.Time) []Score {
	var out []Score
	for _, m := range b.matches {
		if m.step(b.rnd) {
			out = append(out, m.score(now))
		}
	}
	return out
}

// step plays one step and says whether the match changed.
func (m *simMatch) step(rnd *rand.Rand) bool {
	if m.status == StatusFinished {
		return false
	}
	m.steps++
	if m.steps <= m.kickoff {
		return false
	}
	if m.status == StatusScheduled {
		m.status = StatusLive // kick-off: the clock starts at 0
		return true
	}
	m.played++
	if m.rules.periodMinutes == 0 {
		m.rally(rnd)
		return true
	}
	m.home += m.rules.minute(rnd)
	m.away += m.rules.minute(rnd)
	if m.played >= m.fullTime() && (m.home != m.away || m.rules.overtimeMinutes == 0) {
		m.status = StatusFinished
	}
	return true
}

// fullTime is the minute at which play ends if the scores differ: the
// regular periods, and every overtime begun.
func (m *simMatch) fullTime() int {
	regular := m.rules.periods * m.rules.periodMinutes
	if m.played <= regular {
		return regular
	}
	return regular + m.overtimes()*m.rules.overtimeMinutes
}

// overtimes is how many overtimes play has begun (minute 46 of a
// 45-minute half is the second half's first).
func (m *simMatch) overtimes() int {
	past := m.played - m.rules.periods*m.rules.periodMinutes
	if past <= 0 {
		return 0
	}
	return (past-1)/m.rules.overtimeMinutes + 1
}

// rally plays one table-tennis point; a won game starts the next, and the
// third won game ends the match.
func (m *simMatch) rally(rnd *rand.Rand) {
	if rnd.IntN(2) == 0 {
		m.gameHome++
	} else {
		m.gameAway++
	}
	lead := m.gameHome - m.gameAway
	if max(m.gameHome, m.gameAway) < gamePoints || lead*lead < 4 {
		return
	}
	if lead > 0 {
		m.home++
	} else {
		m.away++
	}
	if m.home == gamesToWin || m.away == gamesToWin {
		m.status = StatusFinished // the last game's points stay shown
		return
	}
	m.gameHome, m.gameAway = 0, 0
}

// period is where play is, as the page shows it.
func (m *simMatch) period() string {
	switch {
	case m.status == StatusScheduled:
		return ""
	case m.rules.periodMinutes == 0:
		game := m.home + m.away + 1
		if m.status == StatusFinished {
			game-- // the last game, already counted in the score
		}
		return fmt.Sprintf("第%d局 %d:%d", game, m.gameHome, m.gameAway)
	case m.overtimes() > 0:
		return m.rules.periodName(m.rules.periods + m.overtimes())
	}
	// A period's last minute is its own: minute 45 is the first half's.
	return m.rules.periodName(max(m.played-1, 0)/m.rules.periodMinutes + 1)
}

func (m *simMatch) score(now time.Time) Score {
	sc := Score{
		Match: m.ID, Home: m.home, Away: m.away, Status: m.status, Period: m.period(),
		Time: now.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
	}
	if m.rules.periodMinutes > 0 {
		sc.Minute = m.played
	}
	return sc
}
