// Command duplexload is duplex's WebSocket load tool.
//
//	duplexload echo -url ws://127.0.0.1:8088/ws -conns 50 -size 16 -duration 10s [-warmup 2s] [-json]
//
// Each mode lives in its own file and registers itself with registerMode from
// an init function, so further modes (broadcast, idle, connect, ...) are
// sibling files that reuse config.go (common flags), stats.go (histogram and
// error tally) and report.go (text and JSON output).
//
// Exit status: 0 when the run happened (counted errors are printed, not
// turned into a failure), 1 when it could not be set up (e.g. no connection
// opened), 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// mode is one load pattern. run gets the arguments after the mode name and
// returns the exit status.
type mode struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var modes = map[string]mode{}

func registerMode(m mode) {
	if _, dup := modes[m.name]; dup {
		panic("duplexload: mode registered twice: " + m.name)
	}
	modes[m.name] = m
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	m, ok := modes[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "duplexload: unknown mode %q\n", args[0])
		usage(stderr)
		return 2
	}
	return m.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: duplexload MODE [flags]   (duplexload MODE -h for the flags)")
	fmt.Fprintln(w, "modes:")
	names := make([]string, 0, len(modes))
	for n := range modes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, modes[n].summary)
	}
}

// runMode is the command every mode shares: it parses args with parse (exit
// 0 for -h, 2 for bad flags), then calls runReport with a context that
// Ctrl-C or SIGTERM cancels (the run ends early and still reports what was
// measured), stdout, and warnf, which prints "duplexload NAME: ..." lines on
// stderr. runReport runs the load, warns about what went wrong during it and
// writes the report; an error from it (the run could not be set up, or the
// report could not be written) is printed the same way and exits 1.
func runMode[C any](name string, args []string, stdout, stderr io.Writer,
	parse func(args []string, out io.Writer) (C, error),
	runReport func(ctx context.Context, cfg C, stdout io.Writer, warnf func(format string, a ...any)) error,
) int {
	prefix := "duplexload " + name + ":"
	cfg, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, prefix, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	warnf := func(format string, a ...any) {
		fmt.Fprintln(stderr, prefix, fmt.Sprintf(format, a...))
	}
	if err := runReport(ctx, cfg, stdout, warnf); err != nil {
		fmt.Fprintln(stderr, prefix, err)
		return 1
	}
	return 0
}
