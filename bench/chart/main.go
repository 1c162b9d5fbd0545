// Command chart draws an SVG bar chart from the load tool's JSON results,
// so the charts in docs/ can be regenerated from a benchmark's output:
//
//	go run ./bench/chart -dir /tmp/bench-echo-final -metric msgs_per_s \
//	    -title "Echo, 50 connections, 16 B" -unit "msgs/s" -o docs/echo.svg
//
// Each file NAME-ROUND.json in -dir is one run (as bench/run-echo.sh and
// bench/run-broadcast.sh write them); runs are grouped by NAME. A bar is
// the median of a group, and each run is a dot on it. -metric is a field
// path into the JSON, such as latency_us.p99 or
// server.cpu_s_per_million_deliveries.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "chart:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("chart", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory of NAME-ROUND.json results (required)")
	metric := fs.String("metric", "msgs_per_s", "JSON field path to chart")
	include := fs.String("include", "", "only names matching this regular expression")
	title := fs.String("title", "", "chart title")
	unit := fs.String("unit", "", "unit shown after the values")
	out := fs.String("o", "", "SVG file to write (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required")
	}
	var filter *regexp.Regexp
	if *include != "" {
		var err error
		if filter, err = regexp.Compile(*include); err != nil {
			return fmt.Errorf("-include: %w", err)
		}
	}
	groups, err := load(*dir, *metric, filter)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return fmt.Errorf("no NAME-ROUND.json results with %s in %s", *metric, *dir)
	}
	svg := render(groups, *title, *unit)
	if *out == "" {
		_, err = io.WriteString(stdout, svg)
		return err
	}
	return os.WriteFile(*out, []byte(svg), 0o644)
}

// group is one server or configuration: its runs' values of the metric.
type group struct {
	name   string
	values []float64
}

func (g group) median() float64 {
	v := append([]float64(nil), g.values...)
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

var runFile = regexp.MustCompile(`^(.+)-(\d+)\.json$`)

// load reads every result file and groups the metric's values by name, in
// the order names first appear in the directory listing.
func load(dir, metric string, filter *regexp.Regexp) ([]group, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	index := map[string]int{}
	var groups []group
	for _, e := range entries {
		m := runFile.FindStringSubmatch(e.Name())
		if m == nil || (filter != nil && !filter.MatchString(m[1])) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		v, ok := lookup(doc, metric)
		if !ok {
			return nil, fmt.Errorf("%s has no number at %s", e.Name(), metric)
		}
		i, seen := index[m[1]]
		if !seen {
			i = len(groups)
			index[m[1]] = i
			groups = append(groups, group{name: m[1]})
		}
		groups[i].values = append(groups[i].values, v)
	}
	return groups, nil
}

// lookup follows a dotted path of object keys to a number.
func lookup(doc any, path string) (float64, bool) {
	for _, key := range strings.Split(path, ".") {
		obj, ok := doc.(map[string]any)
		if !ok {
			return 0, false
		}
		doc = obj[key]
	}
	v, ok := doc.(float64)
	return v, ok
}

// Layout of the chart, in SVG user units.
const (
	width     = 720
	barHeight = 26
	gap       = 14
	left      = 210 // room for the names
	right     = 110 // room for the median's label
	top       = 48
	bottom    = 28
)

// render draws one horizontal bar per group, scaled to the largest value.
func render(groups []group, title, unit string) string {
	maxV := 0.0
	for _, g := range groups {
		for _, v := range g.values {
			maxV = max(maxV, v)
		}
	}
	if maxV == 0 {
		maxV = 1
	}
	plot := float64(width - left - right)
	x := func(v float64) float64 { return left + v/maxV*plot }
	height := top + len(groups)*(barHeight+gap) + bottom

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="16" font-weight="bold">%s</text>`+"\n", 12, html.EscapeString(title))
	for i, g := range groups {
		y := top + i*(barHeight+gap)
		med := g.median()
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-10, y+barHeight/2+5, html.EscapeString(g.name))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, x(med)-left, barHeight, colour(g.name))
		for _, v := range g.values {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%d" r="3" fill="#222" fill-opacity="0.6"/>`+"\n", x(v), y+barHeight/2)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s %s</text>`+"\n", x(maxV)+8, y+barHeight/2+5, format(med), html.EscapeString(unit))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555" font-size="11">bar: median of %s; dots: each run</text>`+"\n",
		left, height-10, runsLabel(groups))
	b.WriteString("</svg>\n")
	return b.String()
}

func runsLabel(groups []group) string {
	n := len(groups[0].values)
	for _, g := range groups {
		if len(g.values) != n {
			return "the runs"
		}
	}
	return strconv.Itoa(n) + " runs"
}

// colour marks duplex's bars, so it stands out among its peers.
func colour(name string) string {
	if strings.Contains(name, "duplex") {
		return "#1f6feb"
	}
	return "#9aa4b2"
}

func format(v float64) string {
	switch {
	case v >= 1000:
		s := strconv.FormatFloat(v, 'f', 0, 64)
		var out []byte
		for i := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ' ')
			}
			out = append(out, s[i])
		}
		return string(out)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}
