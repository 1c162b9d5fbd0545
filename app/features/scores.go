package features

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/duplex/duplex/config"
	"github.com/duplex/duplex/handlers"
	"github.com/duplex/duplex/realtime"
)

// Scores is the live sports score board (体育实况): page /scores
// (views/scores.html, public/js/scores.js) lists matches, each on its own
// channel score:<match id> where only the server publishes: a backend
// through POST /api/publish, or the built-in simulator
// (SCORES_SIMULATOR=on), which plays every match through. A channel keeps
// its latest score, which a page gets at once when it subscribes
// (latest: 1), and a slow reader loses old scores rather than its
// connection. Files: app/features/scores*.go, views/scores.html,
// public/js/scores.js, public/css/scores.css, e2e/scores_browser_test.go.
func Scores() *Feature {
	s := &scoresSettings{
		matches:  defaultScoresMatches,
		interval: defaultScoresInterval,
	}
	interval := config.DurationSetting("SCORES_INTERVAL", "scores-interval",
		"how often the simulator plays one step (a minute, or a rally) of every match", &s.interval)
	interval.Validate = atLeast(&s.interval, minScoresInterval)
	matches := config.StringSetting("SCORES_MATCHES", "scores-matches",
		"the score board's matches, comma-separated id:sport:league:home:away", &s.matches)
	matches.Validate = s.parseMatches
	return &Feature{
		Name: "scores",
		Namespaces: realtime.Namespaces{ScoreNamespace: {
			// The latest score is all a late joiner needs; a reader that
			// cannot keep up skips to newer scores.
			HistorySize: 1, HistoryTTL: 24 * time.Hour,
			SlowPolicy: realtime.PolicyDropOldest,
		}},
		Settings: []config.Setting{
			config.BoolSetting("SCORES_SIMULATOR", "scores-simulator",
				"publish simulated scores (every match kicks off, scores now and then, and ends)", &s.simulate),
			interval,
			matches,
		},
		Pages:    []Page{{Path: "/scores", View: "scores", Title: "体育实况", Data: handlers.PageData{"matches": s.matchesJSON}}},
		Services: []Service{&scoresSimulator{settings: s}},
	}
}

// ScoreNamespace is the score board's namespace: channel score:<match id>
// carries the score of one match.
const ScoreNamespace = "score"

// The sports the simulator knows how to play; a backend may publish any
// match listed in SCORES_MATCHES, whatever its sport.
const (
	SportFootball    = "football"
	SportBasketball  = "basketball"
	SportTableTennis = "table_tennis"
)

// The states of a match, in Score.Status; the page shows them as 未开始,
// 进行中 and 已结束.
const (
	StatusScheduled = "scheduled"
	StatusLive      = "live"
	StatusFinished  = "finished"
)

const (
	defaultScoresMatches = "csl-1:football:中超:上海海港:山东泰山," +
		"nba-1:basketball:NBA:湖人:勇士," +
		"wtt-1:table_tennis:乒乓球 WTT 男单:樊振东:王楚钦"
	defaultScoresInterval = time.Second
	minScoresInterval     = 10 * time.Millisecond
	maxScoresMatches      = 50
	// maxScoresNameRunes bounds a league's or team's name, so that one
	// row of the board stays one line.
	maxScoresNameRunes = 32
)

// matchID is what may follow "score:" (a channel name's own rules, kept
// short).
var matchID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// Match is one row of the score board.
type Match struct {
	ID     string `json:"id"`
	Sport  string `json:"sport"`
	League string `json:"league"`
	Home   string `json:"home"`
	Away   string `json:"away"`
}

// Score is one publication on score:<match id>, from the simulator or a
// backend: the match's score and where the match stands.
type Score struct {
	Match  string `json:"match"`
	Home   int    `json:"home"` // goals, points, or games won
	Away   int    `json:"away"`
	Status string `json:"status"` // StatusScheduled, StatusLive or StatusFinished
	// Period is what the page shows of where play is: 上半场, 第3节,
	// 第2局 5:3 (empty before kick-off).
	Period string `json:"period"`
	// Minute is the minutes played in a timed sport; 0 where play is not
	// timed (table tennis) or has not begun.
	Minute int    `json:"minute"`
	Time   string `json:"time"` // RFC 3339 with milliseconds
}

// scoresSettings are the score board's settings, set by config.Load and
// only read afterwards.
type scoresSettings struct {
	simulate bool
	interval time.Duration
	matches  string
	parsed   []Match // from matches, by parseMatches (run by Load's validation)
}

// parseMatches reads "id:sport:league:home:away,…".
func (s *scoresSettings) parseMatches() error {
	items, err := listItems(s.matches, "id:sport:league:home:away")
	if err != nil {
		return err
	}
	var out []Match
	seen := map[string]bool{}
	for _, parts := range items {
		m := Match{ID: parts[0], Sport: parts[1], League: parts[2], Home: parts[3], Away: parts[4]}
		switch {
		case !matchID.MatchString(m.ID):
			return fmt.Errorf("match id %q must be 1-32 of A-Z a-z 0-9 _ . -", m.ID)
		case seen[m.ID]:
			return fmt.Errorf("match %s is listed twice", m.ID)
		case sports[m.Sport] == nil:
			return fmt.Errorf("match %s: sport %q must be %s, %s or %s", m.ID, m.Sport, SportFootball, SportBasketball, SportTableTennis)
		case m.Home == m.Away:
			return fmt.Errorf("match %s: home and away must be two sides, got %q twice", m.ID, m.Home)
		}
		for _, name := range []string{m.League, m.Home, m.Away} {
			if name == "" || utf8.RuneCountInString(name) > maxScoresNameRunes {
				return fmt.Errorf("match %s: league and team names must be 1 to %d characters", m.ID, maxScoresNameRunes)
			}
		}
		seen[m.ID] = true
		out = append(out, m)
	}
	if len(out) == 0 || len(out) > maxScoresMatches {
		return fmt.Errorf("must list 1 to %d matches", maxScoresMatches)
	}
	s.parsed = out
	return nil
}

// matchesJSON gives /scores its match list, which the script reads from
// data-matches.
func (s *scoresSettings) matchesJSON(*fiber.Ctx) string {
	b, _ := json.Marshal(s.parsed) // plain structs: cannot fail
	return string(b)
}
