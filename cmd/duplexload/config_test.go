package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseEchoFlagsDefaults(t *testing.T) {
	cfg, err := parseEchoFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := echoConfig{
		commonConfig: commonConfig{URL: "ws://127.0.0.1:8088/ws", Conns: 50, Duration: 10 * time.Second, Timeout: 5 * time.Second},
		Size:         16,
		Expect:       expectTutorial,
	}
	if cfg != want {
		t.Fatalf("defaults = %+v, want %+v", cfg, want)
	}
}

func TestParseEchoFlagsValues(t *testing.T) {
	cfg, err := parseEchoFlags(strings.Fields(
		"-url ws://localhost:9/x -conns 3 -size 100 -duration 1500ms -warmup 2s -timeout 250ms -json -expect verbatim"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := echoConfig{
		commonConfig: commonConfig{URL: "ws://localhost:9/x", Conns: 3, Duration: 1500 * time.Millisecond,
			Warmup: 2 * time.Second, Timeout: 250 * time.Millisecond, JSON: true},
		Size:   100,
		Expect: expectVerbatim,
	}
	if cfg != want {
		t.Fatalf("parsed = %+v, want %+v", cfg, want)
	}
}

func TestParseEchoFlagsRejects(t *testing.T) {
	for _, args := range []string{
		"-expect echo",
		"-url http://127.0.0.1/ws",
		"-url ws://",
		"-url ://x",
		"-conns 0",
		"-conns 1000000",
		"-size 0",
		"-duration 0s",
		"-duration -1s",
		"-warmup -1s",
		"-timeout 0s",
		"-bogus 1",
		"extra",
	} {
		if _, err := parseEchoFlags(strings.Fields(args), io.Discard); err == nil {
			t.Errorf("%q: accepted, want an error", args)
		}
	}
	if _, err := parseEchoFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
}

func TestRunDispatchAndExitCodes(t *testing.T) {
	var out, errOut strings.Builder
	if code := run(nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "echo") {
		t.Errorf("no args: code %d, stderr %q", code, errOut.String())
	}
	if code := run([]string{"nosuchmode"}, &out, &errOut); code != 2 {
		t.Errorf("unknown mode: code %d", code)
	}
	if code := run([]string{"echo", "-conns", "0"}, &out, &errOut); code != 2 {
		t.Errorf("bad flag: code %d", code)
	}
	if code := run([]string{"echo", "-h"}, &out, &errOut); code != 0 {
		t.Errorf("-h: code %d", code)
	}
}
