package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChartGroupsRunsAndDrawsMedians(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("floor-1.json", `{"msgs_per_s":100,"server":{"cpu":1}}`)
	write("floor-2.json", `{"msgs_per_s":300,"server":{"cpu":2}}`)
	write("floor-3.json", `{"msgs_per_s":200,"server":{"cpu":3}}`)
	write("duplex-1.json", `{"msgs_per_s":150,"server":{"cpu":4}}`)
	write("notes.txt", "ignored")

	groups, err := load(dir, "msgs_per_s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].name != "duplex" || groups[1].name != "floor" {
		t.Fatalf("groups = %+v", groups)
	}
	if m := groups[1].median(); m != 200 {
		t.Fatalf("median of floor = %v, want 200", m)
	}
	if v, ok := lookup(map[string]any{"server": map[string]any{"cpu": 2.5}}, "server.cpu"); !ok || v != 2.5 {
		t.Fatalf("lookup = %v %v", v, ok)
	}

	out := filepath.Join(dir, "c.svg")
	if err := run([]string{"-dir", dir, "-metric", "server.cpu", "-title", "a<b", "-o", out}, nil); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(out)
	for _, want := range []string{"<svg", "a&lt;b", ">duplex<", ">floor<", "2.00 ", "median of the runs"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("svg lacks %q:\n%s", want, svg)
		}
	}
	if err := run([]string{"-dir", dir, "-metric", "nope"}, nil); err == nil {
		t.Fatal("a missing metric was not an error")
	}
}
