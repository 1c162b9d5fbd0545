//go:build unix

// Package selfcpu reads how much CPU the current process has used, for
// the load tool's and the benchmarks' reports.
package selfcpu

import (
	"syscall"
	"time"
)

// Used is this process's user+system CPU time so far. It is safe to call
// from any goroutine.
func Used() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
