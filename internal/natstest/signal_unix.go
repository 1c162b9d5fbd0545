//go:build unix

package natstest

import "syscall"

// Freeze and Thaw's signals.
var stopSignal, contSignal = syscall.SIGSTOP, syscall.SIGCONT
